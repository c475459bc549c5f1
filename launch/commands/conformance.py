"""``byzemu conformance -- CMD...``: run a peer implementation among byzemu peers and check
it against docs/PROTOCOL.md (the checks are in :mod:`launch.tools.conformance`)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import click

from launch.commands.common import fail, set_opt, user_errors


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--config",
    "config",
    default=None,
    type=click.Path(dir_okay=False),
    help="Run config (complete static topology, >= 4 nodes, >= 4 rounds, no [churn]); default: a small built-in one.",
)
@set_opt
@click.option(
    "--curve",
    type=click.Choice(["both", "off", "on"]),
    default="both",
    show_default=True,
    help="Run the checks without CURVE, with it, or both.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the runs and your peer's output (default runs/conformance-TIMESTAMP).",
)
@click.option(
    "--register-last",
    is_flag=True,
    help="Start the byzemu peers first: your peer registers last and is the last node (with CURVE its "
    "ZAP handler must hold handshakes that arrive before its assign).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def conformance(
    config: str | None,
    overrides: tuple[str, ...],
    curve: str,
    out: str | None,
    register_last: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as one peer among byzemu peers and check it against docs/PROTOCOL.md.

    COMMAND gets the coordinator's address as {coordinator} in its arguments or
    $BYZEMU_COORDINATOR, and the coordinator's CURVE key as {coordinator_key} or
    $BYZEMU_COORDINATOR_KEY (empty without CURVE). Exit status 1 if a check fails.
    """
    from launch.tools.conformance import conformance_config, run_conformance

    if shutil.which(command[0]) is None:
        fail(f"cannot run {command[0]!r}: no such program (give a path or a command on PATH after --)")
    try:
        cfg = conformance_config(config, overrides)
    except user_errors() as exc:
        fail(str(exc))
    out_dir = Path(out) if out else Path("runs") / f"conformance-{time.strftime('%Y%m%d-%H%M%S')}"
    modes = ["off", "on"] if curve == "both" else [curve]
    sys.exit(
        run_conformance(
            list(command), cfg, curve_modes=modes, out_dir=out_dir, echo=click.echo, register_last=register_last
        )
    )
