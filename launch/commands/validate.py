"""``byzemu validate CONFIG``: check a config as a run would (fields, topology, roles,
data, model, defense, attack) and start nothing."""

from __future__ import annotations

import click

from launch.commands.common import config_arg, fail, set_opt, user_errors


@click.command()
@config_arg
@set_opt
def validate(config: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG (fields, topology, roles, data, model, defense, attack); start nothing.
    Also print whether byzemu launch would start it on this machine (memory, threads, open
    files, ports)."""
    try:
        from launch import api

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
    from launch.run.capacity import describe

    click.echo(describe(cfg))
