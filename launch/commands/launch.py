"""``byzemu launch CONFIG``: one run on this machine (a coordinator and one OS process per
peer), ``--resume RUN_DIR`` to go on with a killed one, or ``--on slurm`` across a Slurm
allocation. The run goes through :func:`launch.api.launch`, as it does from Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from launch.commands.common import (
    fail,
    interrupted,
    out_opt,
    print_summary,
    quiet_opt,
    set_opt,
    slurm_options,
    slurm_opts,
    tensorboard_opt,
    user_errors,
)
from protocol import config as config_mod
from protocol.config import ConfigError


def resume_line(run_dir: Path, after: int, rounds: int) -> str:
    """What ``launch --resume`` says before it goes on: which checkpoint, which rounds."""
    from protocol.rundir import RunDir

    return (
        f"resuming {run_dir} from its round-{after} checkpoint ({RunDir(run_dir).checkpoints}): "
        f"rounds 1-{after} kept, rounds {after + 1}-{rounds} to run"
    )


def run_config(
    config: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    *,
    quiet: bool,
    in_process: bool,
    resume: str | None = None,
    tensorboard: str | None = None,
    ignore_capacity: bool = False,
    replay: str | None = None,
) -> None:
    """Load CONFIG (or the run to resume), run it with :func:`launch.api.launch`, print its
    summary: what ``byzemu launch`` and ``byzemu reference`` do."""
    out_dir: Path | None = None
    claimed: Path | None = None  # an auto-named folder this launch created
    try:
        point = None
        if resume is not None:
            from launch.run.resume import load_resume

            cfg, point = load_resume(resume, overrides, config)
            out = resume
            click.echo(resume_line(Path(resume), point.round, cfg.rounds), err=True)
        elif replay is not None:
            from launch.run.reference import replay_config

            if config is not None or overrides:
                raise ConfigError("--replay RUN_DIR runs that run's own config: give no CONFIG and no --set")
            cfg = replay_config(replay)
        elif config is None:
            raise ConfigError("missing CONFIG (or --resume RUN_DIR)")
        else:
            cfg = config_mod.load(config, overrides)
        if not in_process and not ignore_capacity:  # before the imports below pull in torch
            from launch.run import gpus
            from launch.run.capacity import check

            check(cfg)
            gpus.check(cfg)  # GPU peers (train.device): visible devices and their memory
        if not in_process:  # not root: [network] runs in a user namespace (one thread, before torch)
            from launch.net.rootless import enter_if_needed

            enter_if_needed(cfg)
        from launch import api
        from launch.run.claim import claim_out_dir
        from launch.run.local import default_out_dir

        out_dir = Path(out) if out else claim_out_dir(default_out_dir(cfg, overrides))
        claimed = None if out else out_dir
        api.launch(
            cfg,
            out_dir,
            in_process=in_process,
            progress=not quiet,
            tensorboard=tensorboard,
            resume=point,
            check_capacity=False,  # checked above
            replay=replay,
        )
    except user_errors() as exc:
        from launch.run.claim import release_out_dir

        release_out_dir(claimed)
        fail(str(exc))
    except KeyboardInterrupt:
        interrupted(out_dir)
    from protocol.rundir import RunDir

    print_summary(RunDir(out_dir).read_summary() or {}, out_dir)


@click.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@set_opt
@out_opt
@quiet_opt
@tensorboard_opt
@click.option(
    "--resume",
    "resume",
    default=None,
    metavar="RUN_DIR",
    help="Go on with the killed run in RUN_DIR from its last complete checkpoint (its own config; "
    "--set may change runtime.* only; a CONFIG given must match).",
)
@click.option(
    "--ignore-capacity",
    is_flag=True,
    help="Start the run even where the estimate (memory, threads, open files, ports; shown by "
    "byzemu validate) says it does not fit this machine.",
)
@slurm_options
def launch(
    config: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    quiet: bool,
    tensorboard: str | None,
    resume: str | None,
    ignore_capacity: bool,
    on: str,
    slurm_nodes: int | None,
    partition: str | None,
    time_limit: str | None,
    sbatch_args: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Run CONFIG on this machine (a coordinator and one OS process per peer), or across
    a Slurm allocation with --on slurm."""
    if resume is not None and out is not None:
        fail("--out and --resume: a resumed run writes to its own folder, RUN_DIR")
    opts = slurm_opts(on, slurm_nodes, partition, time_limit, sbatch_args, dry_run)
    if opts is not None:
        if tensorboard is not None:
            from protocol.rundir import ROUNDS

            fail(f"--tensorboard with --on slurm: open the run's {ROUNDS} with byzemu export instead")
        _submit_run(config, overrides, out, resume, opts, dry_run)
        return
    run_config(
        config,
        overrides,
        out,
        quiet=quiet,
        in_process=False,
        resume=resume,
        tensorboard=tensorboard,
        ignore_capacity=ignore_capacity,
    )


def _submit_run(
    config: str | None, overrides: tuple[str, ...], out: str | None, resume: str | None, opts: Any, dry_run: bool
) -> None:
    if resume is not None:
        fail("--resume with --on slurm: resume on the machine that holds the checkpoints (byzemu launch --resume)")
    if config is None:
        fail("missing CONFIG")
    claimed: Path | None = None
    try:
        from launch.cluster.slurm import submit_run
        from launch.run.claim import claim_out_dir
        from launch.run.local import default_out_dir

        cfg = config_mod.load(config, overrides)
        run_dir = Path(out) if out else claim_out_dir(default_out_dir(cfg))
        claimed = None if out else run_dir
        job = submit_run(cfg, run_dir, opts, dry_run=dry_run, echo=click.echo)
    except user_errors() as exc:
        from launch.run.claim import release_out_dir

        release_out_dir(claimed)
        fail(str(exc))
    if job is not None:
        where = run_dir.resolve()
        click.echo(
            f"submitted Slurm job {job}: {cfg.nodes} peers on {opts.nodes} host(s); results in {where}\n"
            f"follow it: byzemu status {where}   (log: {where}/slurm-{job}.out; squeue -j {job})"
        )
