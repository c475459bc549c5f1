"""What the ``byzemu`` commands share: options, the one-line error exit, the summary lines.

A bad config or argument prints one line (``error: ...``) and exits with status 2
(:func:`fail`); Ctrl-C during a run prints what was kept and exits with status 130
(:func:`interrupted`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from protocol.errors import UserError
from protocol.rundir import SUMMARY, RunDir, read_json

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that end a command with one line, exit status 2, no traceback: every
    user-input error and a run that cannot proceed (``CoordinatorError``), all
    :class:`~protocol.errors.UserError`. Catching them imports nothing, so a bad argument
    is reported before torch is imported (a fraction of a second, not seconds)."""
    return (UserError,)


def fail(message: str) -> NoReturn:
    """``error: MESSAGE`` on stderr, exit status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """The lines a finished run ends with: honest accuracy, attack success, failed peers."""
    acc = summary.get("final_accuracy")
    if acc:
        click.echo(
            f"honest peers' final test accuracy (round {summary['final_round']}): "
            f"mean {acc['mean']:.4f} ± {acc['std']:.4f}, worst {acc['worst']:.4f} "
            f"over {acc['n']} honest peers"
        )
    asr = summary.get("final_attack_success_rate")
    if asr:  # a backdoor-type attack ran
        click.echo(
            f"honest peers' attack success rate (round {summary['final_round']}): "
            f"mean {asr['mean']:.4f} ± {asr['std']:.4f}, worst {asr['worst']:.4f}"
        )
    if summary.get("failed_peers"):
        click.echo(f"failed peers: {summary['failed_peers']}")
    click.echo(f"wall time {summary['wall_s']:.1f} s; results in {out}")


def interrupted(out_dir: Path | None) -> NoReturn:
    """Ctrl-C: one line saying what was kept and how to go on; exit status 130."""
    from launch.run.procs import INTERRUPTED_EXIT

    run = RunDir(out_dir) if out_dir is not None else None
    state = read_json(run.interrupted) if run is not None else None
    message = state.get("message") if state is not None else None
    if message is None:
        if run is not None and run.rounds.is_file():
            message = (
                f"the rounds completed so far are in {run.rounds} "
                f"(no {SUMMARY}: the run is unfinished); rerun to start over"
            )
        else:
            message = "stopped before the first round; nothing kept"
    lead = "\n" if sys.stderr.isatty() else ""  # after an in-place progress line
    click.echo(f"{lead}interrupted: {message}", err=True)
    sys.exit(INTERRUPTED_EXIT)


config_arg = click.argument("config", type=click.Path(dir_okay=False))
set_opt = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, e.g. --set train.lr=0.1 (repeatable).",
)
tensorboard_opt = click.option(
    "--tensorboard",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Also log each round's honest statistics to TensorBoard under DIR/<run folder name> "
    '(needs the tracking extra: pip install -e ".[tracking]").',
)
out_opt = click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Results folder (default runs/NAME-TIMESTAMP).",
)
quiet_opt = click.option("--quiet", is_flag=True, help="No progress line.")


def slurm_options(func: Any) -> Any:
    """``--on slurm`` and what it asks of the allocation (launch/cluster/slurm.py)."""
    for option in reversed(
        [
            click.option(
                "--on",
                "on",
                type=click.Choice(["local", "slurm"]),
                default="local",
                show_default=True,
                help="Where the run(s) go: this machine, or a Slurm cluster (submitted with sbatch).",
            ),
            click.option(
                "--nodes",
                "slurm_nodes",
                type=int,
                default=None,
                help="--on slurm: hosts per run (default 1); the peers are split evenly over them.",
            ),
            click.option("--partition", default=None, help="--on slurm: the Slurm partition."),
            click.option("--time", "time_limit", default=None, help="--on slurm: the job's time limit (e.g. 2:00:00)."),
            click.option(
                "--sbatch-arg",
                "sbatch_args",
                multiple=True,
                metavar="OPTION",
                help="--on slurm: one more sbatch option, e.g. --sbatch-arg=--mem=16G (repeatable).",
            ),
            click.option(
                "--dry-run",
                is_flag=True,
                help="--on slurm: write the config(s) and the sbatch script into the results folder and "
                "print the script; submit nothing.",
            ),
        ]
    ):
        func = option(func)
    return func


def slurm_opts(
    on: str,
    nodes: int | None,
    partition: str | None,
    time_limit: str | None,
    sbatch_args: tuple[str, ...],
    dry_run: bool,
    jobs: int | None = None,
) -> Any:
    """The SlurmOptions of ``--on slurm``; None for a local run (where they are an error)."""
    given = [
        name
        for name, v in [
            ("--nodes", nodes),
            ("--partition", partition),
            ("--time", time_limit),
            ("--sbatch-arg", sbatch_args or None),
            ("--dry-run", dry_run or None),
        ]
        if v is not None
    ]
    if on != "slurm":
        if given:
            fail(f"{given[0]} needs --on slurm")
        return None
    from launch.cluster.slurm import SlurmOptions

    return SlurmOptions(
        nodes=1 if nodes is None else nodes,
        partition=partition,
        time=time_limit,
        sbatch_args=tuple(sbatch_args),
        jobs=jobs,
    )


def set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``-v``: log INFO and up."""
    if value:
        logging.basicConfig(format=LOG_FORMAT)
        logging.getLogger().setLevel(logging.INFO)


#: ``-v`` is accepted before and after the subcommand (``byzemu -v launch ...`` and
#: ``byzemu launch ... -v``)
verbose_opt = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    callback=set_verbose,
    help="Log coordinator and peer events.",
)
