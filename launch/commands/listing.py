"""``byzemu list attacks|defenses|datasets|models``: what a config can name, with
parameters and defaults, read from the registries (:mod:`launch.catalog`)."""

from __future__ import annotations

import click


@click.command(name="list")
@click.argument("kind", type=click.Choice(["attacks", "defenses", "datasets", "models"]))
def list_(kind: str) -> None:
    """What a config can name: every attack, defense, dataset or model with its
    parameters (``params``) and their defaults, read from the registries."""
    from launch.catalog import render

    click.echo(render(kind))
