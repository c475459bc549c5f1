"""``byzemu status DIR``: how far the run in DIR, or every run under it, has got
(:mod:`launch.cluster.status`)."""

from __future__ import annotations

import click

from launch.commands.common import fail
from protocol.config import ConfigError


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
def status(directory: str) -> None:
    """Progress of the run in DIRECTORY, or of every run under it (a sweep), from rounds.jsonl."""
    try:
        from launch.cluster.status import status_lines

        lines = status_lines(directory)
    except ConfigError as exc:
        fail(str(exc))
    for line in lines:
        click.echo(line)
