"""``byzemu reference CONFIG``: the same run in one process, with in-memory delivery (the
correctness baseline), through :func:`launch.api.launch` with ``in_process=True``;
``byzemu reference --replay RUN_DIR`` reproduces a run whose deadlines dropped chunks
from its delivery log."""

from __future__ import annotations

import click

from launch.commands.common import out_opt, quiet_opt, set_opt, tensorboard_opt
from launch.commands.launch import run_config


@click.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@set_opt
@out_opt
@quiet_opt
@tensorboard_opt
@click.option(
    "--replay",
    "replay",
    default=None,
    metavar="RUN_DIR",
    help="Reproduce the finished run in RUN_DIR bit for bit: its config, and from its delivery log "
    "exactly the chunks each peer aggregated (no CONFIG, no --set).",
)
def reference(
    config: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    quiet: bool,
    tensorboard: str | None,
    replay: str | None,
) -> None:
    """Run CONFIG in one process with in-memory delivery (the correctness baseline)."""
    run_config(config, overrides, out, quiet=quiet, in_process=True, tensorboard=tensorboard, replay=replay)
