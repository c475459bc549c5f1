"""``byzemu reference CONFIG``: the same run in one process, with in-memory delivery (the
correctness baseline), through :func:`launch.api.launch` with ``in_process=True``."""

from __future__ import annotations

import click

from launch.commands.common import config_arg, out_opt, quiet_opt, set_opt, tensorboard_opt
from launch.commands.launch import run_config


@click.command()
@config_arg
@set_opt
@out_opt
@quiet_opt
@tensorboard_opt
def reference(config: str, overrides: tuple[str, ...], out: str | None, quiet: bool, tensorboard: str | None) -> None:
    """Run CONFIG in one process with in-memory delivery (the correctness baseline)."""
    run_config(config, overrides, out, quiet=quiet, in_process=True, tensorboard=tensorboard)
