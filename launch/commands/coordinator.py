"""``byzemu coordinator CONFIG --bind ADDRESS``: only the coordinator of a run whose peers
join from other hosts with ``byzemu peer``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from launch.commands.common import (
    config_arg,
    fail,
    interrupted,
    out_opt,
    print_summary,
    quiet_opt,
    set_opt,
    tensorboard_opt,
    user_errors,
)
from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig


def reachable_address(address: str) -> str:
    """``tcp://HOST:PORT`` as a peer on another host dials it: a wildcard bind host
    (``0.0.0.0``, ``*``, ``::``) becomes this host's address."""
    from launch.commands.peer import host_ip

    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "*", "::", ""):
        return f"tcp://{host_ip()}:{port}"
    return address


def peer_command_hint(address: str, public_key: str | None, key_file: Path | None) -> str:
    """The ``byzemu peer ...`` lines a user pastes on a peer host, every argument
    shell-quoted (a Z85 key holds characters such as ``&``, ``$`` and ``<``)."""
    base = ["byzemu", "peer", "--coordinator", reachable_address(address)]
    if public_key is None:
        return f"start peers on each host (--count N for N of them):\n  {shlex.join(base)}"
    lines = [
        "start peers on each host (--count N for N of them), with the key:",
        f"  {shlex.join([*base, '--coordinator-key', public_key])}",
    ]
    if key_file is not None:
        lines += [
            "or with the key file copied to that host:",
            f"  {shlex.join([*base, '--coordinator-key-file', str(key_file)])}",
        ]
    return "\n".join(lines)


def run_coordinator(cfg: RunConfig, out_dir: Path, *, quiet: bool, bind: str, on_round: Any = None) -> dict[str, Any]:
    """Run the coordinator of ``cfg`` on ``bind`` until the run ends; return its summary."""
    from launch.run.progress import Progress
    from launch.run.setup import start_coordinator
    from launch.run.tracking import fan_out

    try:
        progress = fan_out(None if quiet else Progress(cfg.rounds), on_round)
        coord = start_coordinator(cfg, out_dir, bind=bind, mode="multihost", progress=progress)
    except OSError as exc:  # a bad or busy address (protocol.sockets.bind_router says which)
        raise ConfigError(f"--bind {bind}: {exc}") from None
    key_file = None
    if coord.public_key is not None:
        from protocol.rundir import RunDir

        key_file = RunDir(out_dir).coordinator_key.resolve()
        key_file.write_text(coord.public_key + "\n")
        click.echo(f"CURVE on: coordinator public key {coord.public_key} (also in {key_file})", err=True)
    click.echo(peer_command_hint(coord.address, coord.public_key, key_file), err=True)
    slots = sorted(coord.joins.slots)
    later = f"; the churn slots {slots} take processes that register later (byzemu peer --node N)" if slots else ""
    click.echo(
        f"coordinator listening on {coord.address}; waiting for {len(coord.joins.first_ids())} peers{later}", err=True
    )
    try:
        return coord.run()
    finally:
        coord.close()


@click.command()
@config_arg
@click.option("--bind", required=True, help="Control-plane address, e.g. tcp://0.0.0.0:5555.")
@set_opt
@out_opt
@quiet_opt
@tensorboard_opt
def coordinator(
    config: str, bind: str, overrides: tuple[str, ...], out: str | None, quiet: bool, tensorboard: str | None
) -> None:
    """Run only the coordinator of CONFIG; peers join with `byzemu peer`."""
    out_dir: Path | None = None
    try:
        cfg = config_mod.load(config, overrides)
        from launch.run.claim import claim_out_dir
        from launch.run.local import default_out_dir
        from launch.run.tracking import TensorBoardLogger

        out_dir = Path(out) if out else claim_out_dir(default_out_dir(cfg, overrides))
        tracker = TensorBoardLogger(log_dir=Path(tensorboard) / out_dir.name) if tensorboard else None
        try:
            summary = run_coordinator(cfg, out_dir, quiet=quiet, bind=bind, on_round=tracker)
        finally:
            if tracker is not None:
                tracker.close()
    except user_errors() as exc:
        if not out:
            from launch.run.claim import release_out_dir

            release_out_dir(out_dir)  # claimed above, still empty: nothing ran
        fail(str(exc))
    except KeyboardInterrupt:
        interrupted(out_dir)
    print_summary(summary, out_dir)
