"""``byzemu publish``: collect a sweep's results into a committed folder, render the docs'
tables from those folders, check that the docs equal their rendering
(:mod:`launch.analysis.published`; docs/EXPERIMENTS.md, *Results as code*).

    byzemu publish collect RUNS_DIR RESULTS_DIR [--sweep FILE]
    byzemu publish render [PAGE ...]
    byzemu publish check [PAGE ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from protocol.errors import UserError


@click.group()
def publish() -> None:
    """Results as code: tables in the docs rendered from committed results."""


@publish.command()
@click.argument("runs_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option(
    "--sweep",
    "sweep_file",
    default=None,
    help="The sweep file to record (default: the one the sweep folder names, relative to the project).",
)
def collect(runs_dirs: tuple[str, ...], results_dir: str, sweep_file: str | None) -> None:
    """Summarise the finished runs under RUNS_DIRS (sweep or run folders) into RESULTS_DIR
    (runs.csv, curves.csv, provenance.json), small enough to commit. A results folder among
    RUNS_DIRS (RESULTS_DIR itself, say) is carried forward: its runs first, unchanged."""
    from launch.analysis import published

    try:
        prov = published.collect(list(runs_dirs), results_dir, sweep_file=sweep_file)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    platforms = ", ".join(f"{k} ({n} runs)" for k, n in prov["platforms"].items())
    click.echo(f"collected {prov['runs']} runs into {results_dir} (sweep {prov['sweep']}; {platforms})")


def _pages(pages: tuple[str, ...]) -> list[Path] | None:
    return [Path(p) for p in pages] or None


@publish.command()
@click.argument("pages", nargs=-1, type=click.Path(dir_okay=False, exists=True))
def render(pages: tuple[str, ...]) -> None:
    """Re-render every table block (<!-- byzemu:table SPEC --> ... <!-- byzemu:end -->) in
    PAGES (default: README.md, BENCHMARKS.md and docs/**.md) from the committed results."""
    from launch.analysis import published

    try:
        changed = published.render_docs(_pages(pages))
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for page in changed:
        click.echo(f"rendered {page}")
    if not changed:
        click.echo("every table is current")


@publish.command()
@click.argument("pages", nargs=-1, type=click.Path(dir_okay=False, exists=True))
def check(pages: tuple[str, ...]) -> None:
    """Exit 1 if a table in PAGES is not what its committed results render to."""
    from launch.analysis import published

    try:
        stale = published.render_docs(_pages(pages), write=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for page in stale:
        click.echo(f"stale: {page} (run `byzemu publish render`)", err=True)
    sys.exit(1 if stale else 0)
