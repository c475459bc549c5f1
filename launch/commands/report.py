"""``byzemu report DIR``: one row per configuration over the runs under DIR, with plots
(:mod:`launch.analysis.report`)."""

from __future__ import annotations

from pathlib import Path

import click

from launch.commands.common import fail
from protocol.errors import UserError
from protocol.rundir import REPORT_CSV, REPORT_MD


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Where {REPORT_MD}, {REPORT_CSV} and the plots go (default DIRECTORY).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "pdf", "svg"]),
    default="png",
    show_default=True,
    help="File format of the plots: png, or pdf / svg (vector, fonts embedded) for a paper.",
)
def report(directory: str, out: str | None, fmt: str) -> None:
    """Summarize the results folders under DIRECTORY: report.md, report.csv, plots."""
    try:
        from launch.analysis.report import write_report

        res = write_report(directory, out, fmt)
    except UserError as exc:
        fail(str(exc))
    for where, why in res["unfinished"]:
        click.echo(f"warning: {where}: {why}; left out of the report", err=True)
    click.echo(f"{len(res['rows'])} configurations; report in {Path(res['out']) / REPORT_MD}")
