"""``byzemu validate CONFIG``: check a config as a run would (fields, topology, roles,
data, model, defense, attack) and start nothing; given a sweep file, check every run of it."""

from __future__ import annotations

from pathlib import Path

import click

from launch.commands.common import config_arg, fail, set_opt, user_errors


@click.command()
@config_arg
@set_opt
def validate(config: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG (fields, topology, roles, data, model, defense, attack); start nothing.
    Also print whether byzemu launch would start it on this machine (memory, threads, open
    files, ports). CONFIG may be a sweep file: every run of it is checked."""
    try:
        from launch import api

        if _is_sweep_file(config):
            _validate_sweep(config, overrides)
            return
        cfg = api.load_config(config, None, *overrides)
        plan = api.validate(cfg)
    except user_errors() as exc:
        fail(str(exc))
    first = plan.rounds.round(1)  # the first round's graph (the only one unless topology.dynamic)
    degrees = sorted({len(first.receive_from[i]) for i in range(cfg.nodes)})
    changing = f", dynamic = {cfg.topology.dynamic}" if plan.rounds.dynamic else ""
    click.echo(
        f"ok: {cfg.nodes} peers, {cfg.topology.kind} topology (degrees {degrees}{changing}), "
        f"Byzantine {plan.byzantine or 'none'}, {cfg.rounds} rounds"
    )
    from launch.run import gpus
    from launch.run.capacity import describe

    click.echo(describe(cfg))
    gpu = gpus.describe(cfg)
    if gpu:
        click.echo(gpu)


def _is_sweep_file(path: str) -> bool:
    from protocol.config import looks_like_sweep
    from protocol.config_text import read_toml

    return looks_like_sweep(read_toml(Path(path), "config"))


def _validate_sweep(path: str, overrides: tuple[str, ...]) -> None:
    """Every run's config loaded and planned (``load_sweep`` does both), then the capacity
    line of the run with the most peers."""
    from launch.run.capacity import describe
    from launch.sweeps.sweepfile import load_sweep

    sweep = load_sweep(path, overrides)
    runs = sweep.runs
    largest = max(runs, key=lambda r: r.cfg.nodes)
    repeats = f"{sweep.repeats} repeat{'s' if sweep.repeats != 1 else ''}"
    click.echo(
        f"ok: sweep of {len(runs)} runs ({len(sweep.cells)} cells x {repeats}), every run's config and plan "
        f"checked; {_span([r.cfg.nodes for r in runs])} peers, {_span([r.cfg.rounds for r in runs])} rounds"
    )
    click.echo(f"the largest run ({largest.rel_dir}): {describe(largest.cfg)}")


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
