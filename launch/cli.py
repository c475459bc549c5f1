"""The ``byzemu`` command line: one click app that registers the commands of
``launch/commands/`` (one module each).

    byzemu launch CONFIG [--set key=value ...] [--out DIR]      one machine, N processes
    byzemu launch --resume RUN_DIR                              go on from the last checkpoint
    byzemu reference CONFIG [--set ...] [--out DIR]             same run in one process
    byzemu coordinator CONFIG --bind tcp://0.0.0.0:5555         multi-host: the coordinator
    byzemu peer --coordinator tcp://HOST:5555 [--count N]       multi-host: peers on a host
    byzemu validate CONFIG [--set ...]                          check a config, start nothing
    byzemu sweep SWEEP.toml [--out DIR] [--jobs N] [--set K=V]  grid of configs x repeats
    byzemu report DIR [--out REPORT_DIR]                        tables and plots over runs
    byzemu launch CONFIG --on slurm [--nodes H] [--dry-run]     one run across a Slurm allocation
    byzemu sweep SWEEP.toml --on slurm [--nodes H] [--jobs N]   a sweep as a Slurm job array
    byzemu status DIR                                           progress of a run or a sweep folder
    byzemu conformance [--curve on|off|both] -- CMD...          test a peer implementation
    byzemu export DIR [--out DIR] [--csv | --parquet]           tidy tables (pandas) as files
    byzemu list attacks|defenses|datasets|models                names, parameters, defaults
    byzemu sweep SWEEP.toml --plan                              the runs and their estimated time
    byzemu publish collect|render|check                         docs tables from committed results

A bad config or argument prints one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import logging

import click

from launch.commands.common import LOG_FORMAT, user_errors, verbose_opt
from launch.commands.conformance import conformance
from launch.commands.coordinator import coordinator
from launch.commands.export import export
from launch.commands.launch import launch
from launch.commands.listing import list_
from launch.commands.peer import peer
from launch.commands.publish import publish
from launch.commands.reference import reference
from launch.commands.report import report
from launch.commands.slurm import slurm_host, slurm_job
from launch.commands.status import status
from launch.commands.sweep import sweep
from launch.commands.validate import validate

__all__ = ["main", "user_errors"]


class _Group(click.Group):
    """Adds ``-v`` to every subcommand."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        verbose_opt(cmd)
        super().add_command(cmd, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="byzemu", prog_name="byzemu")
@verbose_opt
def main() -> None:
    """byzemu: multi-process emulator of Byzantine attacks and defenses in chunked
    decentralized learning."""
    logging.basicConfig(format=LOG_FORMAT)  # WARNING and up, unless -v said INFO


for _command in (
    launch,
    reference,
    coordinator,
    peer,
    conformance,
    validate,
    sweep,
    status,
    slurm_job,
    slurm_host,
    report,
    export,
    publish,
    list_,
):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
