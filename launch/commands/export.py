"""``byzemu export DIR``: the tidy tables of the runs under DIR as CSV or Parquet files
(:mod:`launch.analysis.tables`)."""

from __future__ import annotations

from pathlib import Path

import click

from launch.commands.common import fail
from protocol.config import ConfigError


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Where the tables go (default DIRECTORY/tables)."
)
@click.option("--csv", "fmt", flag_value="csv", default=True, help="CSV files (the default).")
@click.option("--parquet", "fmt", flag_value="parquet", help="Parquet files (needs pyarrow).")
@click.option("--unfinished", is_flag=True, help="Include unfinished (interrupted, killed) runs.")
def export(directory: str, out: str | None, fmt: str, unfinished: bool) -> None:
    """Write the tidy tables of the runs under DIRECTORY: peer_rounds (run, round, peer),
    rounds (run, round: honest statistics) and runs (one per run, config flattened)."""
    try:
        from launch.analysis.tables import export as export_tables

        paths = export_tables(
            directory, Path(out) if out else Path(directory) / "tables", fmt=fmt, unfinished=unfinished
        )
    except ConfigError as exc:
        fail(str(exc))
    click.echo("wrote " + ", ".join(str(p) for p in paths))
