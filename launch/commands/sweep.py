"""``byzemu sweep SWEEP.toml``: every cell × repeat of a sweep file as a local cluster,
``--jobs`` at once (or, with ``--on slurm``, one Slurm array task each); runs already
done are skipped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from launch.commands.common import fail, slurm_options, slurm_opts, user_errors


def default_sweep_dir(sweep_file: str) -> Path:
    """``runs/sweep-<file name>``."""
    return Path("runs") / f"sweep-{Path(sweep_file).stem}"


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Sweep folder (default runs/sweep-<file name>); rerun with the same --out to resume.",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Runs at once (default: cores // largest node count, at least 1).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field in every run, after the file's [set] and axes "
    "(e.g. --set data.root=/data/cifar10); repeatable.",
)
@click.option(
    "--plan",
    "show_plan",
    is_flag=True,
    help="List the runs and estimate their time on this machine (2-round probes in process); run nothing.",
)
@click.option(
    "--quiet",
    is_flag=True,
    help="No live progress line; print only a line as each run ends.",
)
@click.option(
    "--progress-every",
    "progress_every",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="When the output is not a terminal: print the progress line at most this often (on a terminal it is "
    "rewritten in place every second).",
)
@slurm_options
def sweep(
    sweep_file: str,
    out: str | None,
    jobs: int | None,
    overrides: tuple[str, ...],
    show_plan: bool,
    quiet: bool,
    progress_every: float,
    on: str,
    slurm_nodes: int | None,
    partition: str | None,
    time_limit: str | None,
    sbatch_args: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Run every cell x repeat of SWEEP_FILE as a local cluster (or, with --on slurm, as
    one Slurm array task each, --jobs at once); skip runs already done."""
    if jobs is not None and jobs < 1:
        fail(f"--jobs {jobs}: must be >= 1")
    if show_plan:
        _plan_sweep(sweep_file, overrides, jobs)
        return
    opts = slurm_opts(on, slurm_nodes, partition, time_limit, sbatch_args, dry_run, jobs)
    if opts is not None:
        _submit_sweep(sweep_file, out, overrides, opts, dry_run)
        return
    try:
        from launch.sweeps.runner import default_jobs, run_sweep
        from launch.sweeps.sweepfile import load_sweep

        sw = load_sweep(sweep_file, overrides)
        out_dir = Path(out) if out else default_sweep_dir(sweep_file)
        n = jobs if jobs is not None else default_jobs(sw)
        click.echo(
            f"sweep: {len(sw.cells)} configurations x {sw.repeats} repeats = {len(sw.runs)} runs, "
            f"{n} at once; results in {out_dir}"
        )
        if n == 1 and sw.runs:  # runs in this process: preload torch and the first run's data once
            from launch.run.procs import prepare_forkserver

            prepare_forkserver(sw.runs[0].cfg)
        counts = run_sweep(sw, out_dir, jobs=n, echo=click.echo, progress_every=None if quiet else progress_every)
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:
        from launch.run.procs import INTERRUPTED_EXIT

        click.echo(f"interrupted: {exc or 'rerun the same command to go on (finished runs are kept)'}", err=True)
        sys.exit(INTERRUPTED_EXIT)
    click.echo(f"done: {counts['ran']} run(s) ran, {counts['skipped']} already done; byzemu report {out_dir}")


def _plan_sweep(sweep_file: str, overrides: tuple[str, ...], jobs: int | None) -> None:
    try:
        from launch.sweeps.estimate import plan, plan_lines
        from launch.sweeps.runner import default_jobs
        from launch.sweeps.sweepfile import load_sweep

        sw = load_sweep(sweep_file, overrides)
        n = jobs if jobs is not None else default_jobs(sw)
        click.echo(f"plan: {len(sw.cells)} configurations x {sw.repeats} repeats = {len(sw.runs)} runs, {n} at once")
        planned = plan(sw, jobs=n, echo=click.echo)
    except user_errors() as exc:
        fail(str(exc))
    for line in plan_lines(planned, jobs=n):
        click.echo(line)


def _submit_sweep(sweep_file: str, out: str | None, overrides: tuple[str, ...], opts: Any, dry_run: bool) -> None:
    try:
        from launch.cluster.slurm import submit_sweep
        from launch.sweeps.sweepfile import load_sweep

        sw = load_sweep(sweep_file, overrides)
        out_dir = (Path(out) if out else default_sweep_dir(sweep_file)).resolve()
        counts = submit_sweep(sw, out_dir, opts, dry_run=dry_run, echo=click.echo)
    except user_errors() as exc:
        fail(str(exc))
    if dry_run:
        return
    skipped = f"; {counts['skipped']} already done, skipped" if counts["skipped"] else ""
    if counts["job"] is None:
        click.echo(f"nothing to submit: all {counts['total']} runs are done; byzemu report {out_dir}")
        return
    limit = f", at most {opts.jobs} at once" if opts.jobs else ""
    click.echo(
        f"submitted Slurm job array {counts['job']}: {counts['submitted']} run(s){limit}, {opts.nodes} host(s) "
        f"each{skipped}; results in {out_dir}\nfollow it: byzemu status {out_dir}   (byzemu report {out_dir} "
        f"works as runs finish; squeue -j {counts['job']})"
    )
