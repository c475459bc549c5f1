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
    degrees = sorted({len(plan.assignment(i).neighbors) for i in range(cfg.nodes)})
    click.echo(
        f"ok: {cfg.nodes} peers, {cfg.topology.kind} topology (degrees {degrees}), "
        f"Byzantine {plan.byzantine or 'none'}, {cfg.rounds} rounds"
    )
    from launch.run.capacity import describe

    click.echo(describe(cfg))
