"""The hidden commands a Slurm job runs (:mod:`launch.cluster.slurm_job`):
``byzemu slurm-job RUN_DIR`` in the batch step, ``byzemu slurm-host`` on every host."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from launch.commands.common import fail, print_summary, user_errors


@click.command("slurm-job", hidden=True)
@click.argument("run_dir", type=click.Path(file_okay=False))
def slurm_job(run_dir: str) -> None:
    """Inside a Slurm job: the coordinator here, the peers through srun (launch/cluster/slurm_job.py)."""
    from launch.cluster.slurm_job import run_job

    try:
        summary = run_job(Path(run_dir).resolve(), echo=lambda line: click.echo(line, err=True))
    except user_errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted (scancel or the time limit); rounds completed so far are in the results folder")
    print_summary(summary, Path(run_dir))


@click.command("slurm-host", hidden=True)
def slurm_host() -> None:
    """Inside a Slurm job: this host's share of the peers (launch/cluster/slurm_job.py)."""
    from launch.cluster.slurm_job import run_host

    sys.exit(run_host(echo=lambda line: click.echo(line, err=True)))
