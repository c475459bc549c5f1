"""The ``byzemu`` command line.

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

A bad config or argument prints one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import click

from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig
from protocol.errors import UserError


def user_errors() -> tuple[type[Exception], ...]:
    """Errors that end a command with one line, exit status 2, no traceback: every
    user-input error and a run that cannot proceed (``CoordinatorError``), all
    :class:`~protocol.errors.UserError`. Catching them imports nothing, so a bad argument
    is reported before torch is imported (a fraction of a second, not seconds)."""
    return (UserError,)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _load(config: str, overrides: tuple[str, ...]) -> RunConfig:
    return config_mod.load(config, overrides)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
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


config_arg = click.argument("config", type=click.Path(dir_okay=False))
set_opt = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config field, e.g. --set train.lr=0.1 (repeatable).",
)
tensorboard_opt = click.option(
    "--tensorboard", type=click.Path(file_okay=False), default=None, metavar="DIR",
    help="Also log each round's honest statistics to TensorBoard under DIR/<run folder name> "
    "(needs the tracking extra: pip install -e \".[tracking]\").",
)
out_opt = click.option(
    "--out", type=click.Path(file_okay=False), default=None,
    help="Results folder (default runs/NAME-TIMESTAMP).",
)


def slurm_options(func: Any) -> Any:
    """``--on slurm`` and what it asks of the allocation (launch/cluster/slurm.py)."""
    for option in reversed([
        click.option("--on", "on", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
                     help="Where the run(s) go: this machine, or a Slurm cluster (submitted with sbatch)."),
        click.option("--nodes", "slurm_nodes", type=int, default=None,
                     help="--on slurm: hosts per run (default 1); the peers are split evenly over them."),
        click.option("--partition", default=None, help="--on slurm: the Slurm partition."),
        click.option("--time", "time_limit", default=None, help="--on slurm: the job's time limit (e.g. 2:00:00)."),
        click.option("--sbatch-arg", "sbatch_args", multiple=True, metavar="OPTION",
                     help="--on slurm: one more sbatch option, e.g. --sbatch-arg=--mem=16G (repeatable)."),
        click.option("--dry-run", is_flag=True, help="--on slurm: print the sbatch script; write and submit nothing."),
    ]):
        func = option(func)
    return func


def _slurm_opts(on: str, nodes: int | None, partition: str | None, time_limit: str | None,
                sbatch_args: tuple[str, ...], dry_run: bool, jobs: int | None = None) -> Any:
    """The SlurmOptions of ``--on slurm``; None for a local run (where they are an error)."""
    given = [name for name, v in [("--nodes", nodes), ("--partition", partition), ("--time", time_limit),
                                  ("--sbatch-arg", sbatch_args or None), ("--dry-run", dry_run or None)] if v is not None]
    if on != "slurm":
        if given:
            _fail(f"{given[0]} needs --on slurm")
        return None
    from launch.cluster.slurm import SlurmOptions

    return SlurmOptions(nodes=1 if nodes is None else nodes, partition=partition, time=time_limit,
                        sbatch_args=tuple(sbatch_args), jobs=jobs)


_LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        logging.basicConfig(format=_LOG_FORMAT)
        logging.getLogger().setLevel(logging.INFO)


#: ``-v`` is accepted before and after the subcommand (``byzemu -v launch ...`` and
#: ``byzemu launch ... -v``)
verbose_opt = click.option(
    "-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose,
    help="Log coordinator and peer events.",
)


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
    logging.basicConfig(format=_LOG_FORMAT)  # WARNING and up, unless -v said INFO


def _run(
    kind: str, config: str | None, overrides: tuple[str, ...], out: str | None, quiet: bool,
    resume: str | None = None, tensorboard: str | None = None, **kw: Any,
) -> None:
    out_dir: Path | None = None
    try:
        point = None
        if resume is not None:
            from launch.run.resume import load_resume

            cfg, point = load_resume(resume, overrides, config)
            out = resume
        elif config is None:
            raise ConfigError("missing CONFIG (or --resume RUN_DIR)")
        else:
            cfg = _load(config, overrides)
        if kind == "launch":
            # started after the config loaded (a bad config starts nothing), before this
            # process imports torch (both imports then run at once, one per core)
            from launch.run.procs import prepare_forkserver

            prepare_forkserver(cfg)
        from launch.run.local import default_out_dir, launch_local
        from launch.run.progress import Progress
        from launch.run.tracking import TensorBoardLogger, fan_out

        out_dir = Path(out) if out else default_out_dir(cfg, overrides)
        tracker = TensorBoardLogger(log_dir=Path(tensorboard) / out_dir.name) if tensorboard else None
        try:
            if kind == "launch":
                summary = launch_local(cfg, out_dir, show_progress=not quiet, resume=point, on_round=tracker)
            elif kind == "reference":
                from launch.run.reference import run_reference

                summary = run_reference(cfg, out_dir, progress=fan_out(None if quiet else Progress(cfg.rounds), tracker))
            else:
                summary = _run_coordinator(cfg, out_dir, quiet=quiet, on_round=tracker, **kw)
        finally:
            if tracker is not None:
                tracker.close()
    except user_errors() as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _interrupted(out_dir)
    _print_summary(summary, out_dir)


def _interrupted(out_dir: Path | None) -> None:
    """Ctrl-C: one line saying what was kept and how to go on; exit status 130."""
    from coordinator.results import INTERRUPTED
    from launch.run.procs import INTERRUPTED_EXIT

    try:
        message = json.loads((out_dir / INTERRUPTED).read_text())["message"]  # type: ignore[operator]
    except (TypeError, OSError, ValueError, KeyError):
        if out_dir is not None and (out_dir / "rounds.jsonl").is_file():
            message = (f"the rounds completed so far are in {out_dir / 'rounds.jsonl'} "
                       "(no summary.json: the run is unfinished); rerun to start over")
        else:
            message = "stopped before the first round; nothing kept"
    lead = "\n" if sys.stderr.isatty() else ""  # after an in-place progress line
    click.echo(f"{lead}interrupted: {message}", err=True)
    sys.exit(INTERRUPTED_EXIT)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@set_opt
@out_opt
@click.option("--quiet", is_flag=True, help="No progress line.")
@tensorboard_opt
@click.option(
    "--resume", "resume", default=None, metavar="RUN_DIR",
    help="Go on with the killed run in RUN_DIR from its last complete checkpoint (its own config; "
    "--set may change runtime.* only; a CONFIG given must match).",
)
@slurm_options
def launch(
    config: str | None, overrides: tuple[str, ...], out: str | None, quiet: bool, tensorboard: str | None,
    resume: str | None, on: str, slurm_nodes: int | None, partition: str | None, time_limit: str | None,
    sbatch_args: tuple[str, ...], dry_run: bool,
) -> None:
    """Run CONFIG on this machine (a coordinator and one OS process per peer), or across
    a Slurm allocation with --on slurm."""
    if resume is not None and out is not None:
        _fail("--out and --resume: a resumed run writes to its own folder, RUN_DIR")
    opts = _slurm_opts(on, slurm_nodes, partition, time_limit, sbatch_args, dry_run)
    if opts is not None:
        if tensorboard is not None:
            _fail("--tensorboard with --on slurm: open the run's rounds.jsonl with byzemu export instead")
        _submit_run(config, overrides, out, resume, opts, dry_run)
        return
    _run("launch", config, overrides, out, quiet, resume=resume, tensorboard=tensorboard)


def _submit_run(config: str | None, overrides: tuple[str, ...], out: str | None, resume: str | None,
                opts: Any, dry_run: bool) -> None:
    if resume is not None:
        _fail("--resume with --on slurm: resume on the machine that holds the checkpoints (byzemu launch --resume)")
    if config is None:
        _fail("missing CONFIG")
    try:
        from launch.run.local import default_out_dir
        from launch.cluster.slurm import submit_run

        cfg = _load(config, overrides)
        run_dir = Path(out) if out else default_out_dir(cfg)
        job = submit_run(cfg, run_dir, opts, dry_run=dry_run, echo=click.echo)
    except user_errors() as exc:
        _fail(str(exc))
    if job is not None:
        where = run_dir.resolve()
        click.echo(
            f"submitted Slurm job {job}: {cfg.nodes} peers on {opts.nodes} host(s); results in {where}\n"
            f"follow it: byzemu status {where}   (log: {where}/slurm-{job}.out; squeue -j {job})"
        )


@main.command()
@config_arg
@set_opt
@out_opt
@click.option("--quiet", is_flag=True, help="No progress line.")
@tensorboard_opt
def reference(config: str, overrides: tuple[str, ...], out: str | None, quiet: bool, tensorboard: str | None) -> None:
    """Run CONFIG in one process with in-memory delivery (the correctness baseline)."""
    _run("reference", config, overrides, out, quiet, tensorboard=tensorboard)


def _run_coordinator(
    cfg: RunConfig, out_dir: Path, *, quiet: bool, bind: str, on_round: Any = None
) -> dict[str, Any]:
    from coordinator.plan import build_plan
    from coordinator.results import ResultsWriter
    from coordinator.server import Coordinator
    from launch.run.progress import Progress
    from launch.run.tracking import fan_out

    plan = build_plan(cfg)
    results = ResultsWriter(out_dir, cfg, mode="multihost")
    try:
        progress = fan_out(None if quiet else Progress(cfg.rounds), on_round)
        coord = Coordinator(plan, bind=bind, results=results, progress=progress)
    except OSError as exc:  # a bad or busy address (protocol.sockets.bind_router says which)
        raise ConfigError(f"--bind {bind}: {exc}") from None
    if coord.public_key is not None:
        (out_dir / "coordinator.key").write_text(coord.public_key + "\n")
        click.echo(
            f"CURVE on: coordinator public key {coord.public_key} (also in {out_dir / 'coordinator.key'}); "
            f"start peers with --coordinator-key {coord.public_key}",
            err=True,
        )
    click.echo(f"coordinator listening on {coord.address}; waiting for {cfg.nodes} peers", err=True)
    try:
        return coord.run()
    finally:
        coord.close()


@main.command()
@config_arg
@click.option("--bind", required=True, help="Control-plane address, e.g. tcp://0.0.0.0:5555.")
@set_opt
@out_opt
@click.option("--quiet", is_flag=True, help="No progress line.")
@tensorboard_opt
def coordinator(
    config: str, bind: str, overrides: tuple[str, ...], out: str | None, quiet: bool, tensorboard: str | None
) -> None:
    """Run only the coordinator of CONFIG; peers join with `byzemu peer`."""
    _run("coordinator", config, overrides, out, quiet, bind=bind, tensorboard=tensorboard)


@main.command()
@click.option("--coordinator", "address", required=True, help="tcp://HOST:PORT of the coordinator.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=1), help="Peers to start on this host.")
@click.option("--bind-host", default="0.0.0.0", show_default=True, help="Interface the data sockets bind on.")
@click.option("--advertise-host", default=None, help="Address other peers use to reach this host (default: this host's IP).")
@click.option("--data-root", default=None, type=click.Path(file_okay=False), help="Dataset folder on this host (overrides data.root).")
@click.option("--coordinator-key", "coordinator_key", default=None, metavar="KEY",
              help="The coordinator's CURVE public key (40 Z85 characters, printed by `byzemu coordinator` "
              "when runtime.curve is on); leave out when CURVE is off.")
@click.option("--checkpoint-dir", "checkpoint_dir", default=None, type=click.Path(file_okay=False),
              help="Folder on this host where the peers write their checkpoints (runtime.checkpoint_every); "
              "without it they write none.")
@click.option("--max-message-bytes", "max_message_bytes", default=None, type=click.IntRange(min=1024),
              help="Largest data message the peers' data sockets accept, fixed before they register; a run with "
              "a larger runtime.max_message_bytes refuses them. [default: 67108864, runtime.max_message_bytes's default]")
def peer(
    address: str, count: int, bind_host: str, advertise_host: str | None, data_root: str | None,
    coordinator_key: str | None, checkpoint_dir: str | None, max_message_bytes: int | None,
) -> None:
    """Start COUNT peers on this host that join the coordinator at ADDRESS."""
    if not address.startswith("tcp://"):
        _fail(f"--coordinator {address}: expected tcp://HOST:PORT")
    from protocol.assignment import is_z85_key

    if coordinator_key is not None and not is_z85_key(coordinator_key):
        _fail(f"--coordinator-key {coordinator_key}: expected the 40-character Z85 public key the coordinator printed")
    if data_root is not None and not Path(data_root).is_dir():
        _fail(f"--data-root {data_root}: no such folder")
    advertise = advertise_host or (bind_host if bind_host != "0.0.0.0" else _host_ip())
    from launch.run.procs import start_peers, stop_peers
    from peer.options import PeerOptions

    options = PeerOptions(
        coordinator=address, bind_host=bind_host, advertise_host=advertise,
        data_root=str(Path(data_root).resolve()) if data_root else None,
        coordinator_key=coordinator_key,
        checkpoint_dir=str(Path(checkpoint_dir).resolve()) if checkpoint_dir else None,
        **({"max_message_bytes": max_message_bytes} if max_message_bytes is not None else {}),
    )
    procs = start_peers(count, options)
    click.echo(f"{count} peer(s) started; data sockets advertised on {advertise}", err=True)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop_peers(procs, grace=0)
    codes = [p.exitcode for p in procs]
    sys.exit(0 if all(c == 0 for c in codes) else 1)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
              help="Run config (complete topology, >= 3 nodes, > 2 rounds); default: a small built-in one.")
@set_opt
@click.option("--curve", type=click.Choice(["both", "off", "on"]), default="both", show_default=True,
              help="Run the checks without CURVE, with it, or both.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the runs and your peer's output (default runs/conformance-TIMESTAMP).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def conformance(config: str | None, overrides: tuple[str, ...], curve: str, out: str | None,
                command: tuple[str, ...]) -> None:
    """Run COMMAND as one peer among byzemu peers and check it against docs/PROTOCOL.md.

    COMMAND gets the coordinator's address as {coordinator} in its arguments or
    $BYZEMU_COORDINATOR, and the coordinator's CURVE key as {coordinator_key} or
    $BYZEMU_COORDINATOR_KEY (empty without CURVE). Exit status 1 if a check fails.
    """
    import shutil
    import time

    from launch.tools.conformance import conformance_config, run_conformance

    if shutil.which(command[0]) is None:
        _fail(f"cannot run {command[0]!r}: no such program (give a path or a command on PATH after --)")
    try:
        cfg = conformance_config(config, overrides)
    except user_errors() as exc:
        _fail(str(exc))
    out_dir = Path(out) if out else Path("runs") / f"conformance-{time.strftime('%Y%m%d-%H%M%S')}"
    modes = ["off", "on"] if curve == "both" else [curve]
    sys.exit(run_conformance(list(command), cfg, curve_modes=modes, out_dir=out_dir, echo=click.echo))


def _host_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


@main.command()
@config_arg
@set_opt
def validate(config: str, overrides: tuple[str, ...]) -> None:
    """Check CONFIG (fields, topology, roles, data, model, defense, attack); start nothing."""
    try:
        from coordinator.plan import build_plan

        cfg = _load(config, overrides)
        plan = build_plan(cfg)
    except user_errors() as exc:
        _fail(str(exc))
    degrees = sorted({len(plan.assignment(i).neighbors) for i in range(cfg.nodes)})
    click.echo(
        f"ok: {cfg.nodes} peers, {cfg.topology.kind} topology (degrees {degrees}), "
        f"Byzantine {plan.byzantine or 'none'}, {cfg.rounds} rounds"
    )


@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option(
    "--out", type=click.Path(file_okay=False), default=None,
    help="Sweep folder (default runs/sweep-<file name>); rerun with the same --out to resume.",
)
@click.option(
    "--jobs", type=int, default=None,
    help="Runs at once (default: cores // largest node count, at least 1).",
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config field in every run, after the file's [set] and axes "
    "(e.g. --set data.root=/data/cifar10); repeatable.",
)
@click.option(
    "--plan", "show_plan", is_flag=True,
    help="List the runs and estimate their time on this machine (2-round probes in process); run nothing.",
)
@slurm_options
def sweep(sweep_file: str, out: str | None, jobs: int | None, overrides: tuple[str, ...],
          show_plan: bool, on: str, slurm_nodes: int | None, partition: str | None, time_limit: str | None,
          sbatch_args: tuple[str, ...], dry_run: bool) -> None:
    """Run every cell x repeat of SWEEP_FILE as a local cluster (or, with --on slurm, as
    one Slurm array task each, --jobs at once); skip runs already done."""
    if jobs is not None and jobs < 1:
        _fail(f"--jobs {jobs}: must be >= 1")
    if show_plan:
        _plan_sweep(sweep_file, overrides, jobs)
        return
    opts = _slurm_opts(on, slurm_nodes, partition, time_limit, sbatch_args, dry_run, jobs)
    if opts is not None:
        _submit_sweep(sweep_file, out, overrides, opts, dry_run)
        return
    try:
        from launch.sweeps.sweep import default_jobs, load_sweep, run_sweep

        sw = load_sweep(sweep_file, overrides)
        out_dir = Path(out) if out else Path("runs") / f"sweep-{Path(sweep_file).stem}"
        n = jobs if jobs is not None else default_jobs(sw)
        click.echo(
            f"sweep: {len(sw.cells)} configurations x {sw.repeats} repeats = {len(sw.runs)} runs, "
            f"{n} at once; results in {out_dir}"
        )
        if n == 1 and sw.runs:  # runs in this process: preload torch and the first run's data once
            from launch.run.procs import prepare_forkserver

            prepare_forkserver(sw.runs[0].cfg)
        counts = run_sweep(sw, out_dir, jobs=n, echo=click.echo)
    except user_errors() as exc:
        _fail(str(exc))
    except KeyboardInterrupt as exc:
        from launch.run.procs import INTERRUPTED_EXIT

        click.echo(f"interrupted: {exc or 'rerun the same command to go on (finished runs are kept)'}", err=True)
        sys.exit(INTERRUPTED_EXIT)
    click.echo(f"done: {counts['ran']} run(s) ran, {counts['skipped']} already done; "
               f"byzemu report {out_dir}")


def _plan_sweep(sweep_file: str, overrides: tuple[str, ...], jobs: int | None) -> None:
    try:
        from launch.sweeps.estimate import plan, plan_lines
        from launch.sweeps.sweep import default_jobs, load_sweep

        sw = load_sweep(sweep_file, overrides)
        n = jobs if jobs is not None else default_jobs(sw)
        click.echo(f"plan: {len(sw.cells)} configurations x {sw.repeats} repeats = {len(sw.runs)} runs, {n} at once")
        planned = plan(sw, jobs=n, echo=click.echo)
    except user_errors() as exc:
        _fail(str(exc))
    for line in plan_lines(planned, jobs=n):
        click.echo(line)


def _submit_sweep(sweep_file: str, out: str | None, overrides: tuple[str, ...], opts: Any, dry_run: bool) -> None:
    try:
        from launch.cluster.slurm import submit_sweep
        from launch.sweeps.sweep import load_sweep

        sw = load_sweep(sweep_file, overrides)
        out_dir = (Path(out) if out else Path("runs") / f"sweep-{Path(sweep_file).stem}").resolve()
        counts = submit_sweep(sw, out_dir, opts, dry_run=dry_run, echo=click.echo)
    except user_errors() as exc:
        _fail(str(exc))
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


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
def status(directory: str) -> None:
    """Progress of the run in DIRECTORY, or of every run under it (a sweep), from rounds.jsonl."""
    try:
        from launch.cluster.status import status_lines

        lines = status_lines(directory)
    except ConfigError as exc:
        _fail(str(exc))
    for line in lines:
        click.echo(line)


@main.command("slurm-job", hidden=True)
@click.argument("run_dir", type=click.Path(file_okay=False))
def slurm_job(run_dir: str) -> None:
    """Inside a Slurm job: the coordinator here, the peers through srun (launch/cluster/slurm_job.py)."""
    from launch.cluster.slurm_job import run_job

    try:
        summary = run_job(Path(run_dir).resolve(), echo=lambda line: click.echo(line, err=True))
    except user_errors() as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted (scancel or the time limit); rounds completed so far are in the results folder")
    _print_summary(summary, Path(run_dir))


@main.command("slurm-host", hidden=True)
def slurm_host() -> None:
    """Inside a Slurm job: this host's share of the peers (launch/cluster/slurm_job.py)."""
    from launch.cluster.slurm_job import run_host

    sys.exit(run_host(echo=lambda line: click.echo(line, err=True)))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where report.md, report.csv and the plots go (default DIRECTORY).")
def report(directory: str, out: str | None) -> None:
    """Summarize the results folders under DIRECTORY: report.md, report.csv, PNG plots."""
    try:
        from launch.analysis.report import write_report

        res = write_report(directory, out)
    except UserError as exc:
        _fail(str(exc))
    for where, why in res["unfinished"]:
        click.echo(f"warning: {where}: {why}; left out of the report", err=True)
    click.echo(f"{len(res['rows'])} configurations; report in {Path(res['out']) / 'report.md'}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where the tables go (default DIRECTORY/tables).")
@click.option("--csv", "fmt", flag_value="csv", default=True, help="CSV files (the default).")
@click.option("--parquet", "fmt", flag_value="parquet", help="Parquet files (needs pyarrow).")
@click.option("--unfinished", is_flag=True, help="Include unfinished (interrupted, killed) runs.")
def export(directory: str, out: str | None, fmt: str, unfinished: bool) -> None:
    """Write the tidy tables of the runs under DIRECTORY: peer_rounds (run, round, peer),
    rounds (run, round: honest statistics) and runs (one per run, config flattened)."""
    try:
        from launch.analysis.tables import export as export_tables

        paths = export_tables(directory, Path(out) if out else Path(directory) / "tables", fmt=fmt, unfinished=unfinished)
    except ConfigError as exc:
        _fail(str(exc))
    click.echo("wrote " + ", ".join(str(p) for p in paths))


@main.command(name="list")
@click.argument("kind", type=click.Choice(["attacks", "defenses", "datasets", "models"]))
def list_(kind: str) -> None:
    """What a config can name: every attack, defense, dataset or model with its
    parameters (``params``) and their defaults, read from the registries."""
    from launch.catalog import render

    click.echo(render(kind))


if __name__ == "__main__":  # pragma: no cover
    main()


from launch.publish_command import publish  # noqa: E402  (registered after main is defined)

main.add_command(publish)
