"""Slurm, the submit side: one run across an allocation and a sweep as a job array.

``byzemu launch CONFIG --on slurm --nodes H`` writes ``RUN_DIR/config.toml`` (the resolved
config) and ``RUN_DIR/job.sbatch``, submits it with ``sbatch`` and records the job id in
``RUN_DIR/slurm.json``. The job (``launch/cluster/slurm_job.py``) runs the coordinator in the batch
step, on the allocation's first host, and one ``srun`` task per host, each forking that
host's share of the peers from one torch-preloaded forkserver, as ``byzemu peer --count
k`` does. The coordinator's address, its CURVE public key and the results folder reach the
peer tasks through the job environment (:data:`COORDINATOR_ENV`, :data:`KEY_ENV`,
:data:`RUN_DIR_ENV`); the results folder, the data root and the Python environment must
be on a filesystem that every host mounts at the same path.

``byzemu sweep SWEEP.toml --on slurm`` submits one array task per run that is not finished
(:func:`coordinator.results.is_finished`), at most ``--jobs N`` at once (``--array=0-M%N``);
each task is the same job as above for its run folder, on an allocation of its own.

Choices made here (also in docs/CLUSTER.md): peers are split
over the hosts as evenly as possible, the first hosts taking one more
(:func:`shares`); each host's task asks for as many CPUs as it runs peers (one torch
thread each); the default is one host; ``--dry-run`` prints the script and writes
nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.config import ConfigError, RunConfig, to_toml
from protocol.rundir import SWEEP, RunDir, read_json, write_json

#: environment of the job: the results folder, the coordinator's address and CURVE key,
#: the peers each host starts (in SLURM_NODEID order)
RUN_DIR_ENV = "BYZEMU_RUN_DIR"
COORDINATOR_ENV = "BYZEMU_COORDINATOR"
KEY_ENV = "BYZEMU_COORDINATOR_KEY"
SHARES_ENV = "BYZEMU_PEERS_PER_HOST"
#: optional overrides: the name peers use to reach the coordinator's host (default its
#: hostname), the address a host's peers advertise (default: the one that routes to it)
COORDINATOR_HOST_ENV = "BYZEMU_COORDINATOR_HOST"
ADVERTISE_ENV = "BYZEMU_ADVERTISE_HOST"

#: Slurm job states in which a run folder is still in use
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"})
#: filesystems that only the machine itself sees (a warning when a run spans hosts)
LOCAL_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "f2fs", "vfat", "zfs", "ramfs"})


class SlurmError(ConfigError):
    """Slurm cannot take the run as asked (no sbatch, too many hosts, a refused job)."""


@dataclass(kw_only=True)
class SlurmOptions:
    """What ``--on slurm`` asks of the allocation of each run."""

    nodes: int = 1  #: hosts per run (``--nodes``)
    partition: str | None = None
    time: str | None = None  #: time limit, in any format sbatch accepts
    sbatch_args: tuple[str, ...] = ()  #: further ``#SBATCH`` options, verbatim
    jobs: int | None = None  #: sweeps: array tasks at once (``%N``); None: no limit

    def check(self, runs: Iterable[RunConfig]) -> None:
        if self.nodes < 1:
            raise SlurmError(f"--nodes {self.nodes}: must be >= 1")
        if self.jobs is not None and self.jobs < 1:
            raise SlurmError(f"--jobs {self.jobs}: must be >= 1")
        for arg in self.sbatch_args:
            if not arg.startswith("-") or "\n" in arg:
                raise SlurmError(f"--sbatch-arg {arg!r}: expected one sbatch option, e.g. --sbatch-arg=--mem=8G")
        for cfg in runs:
            if cfg.nodes < self.nodes:
                raise SlurmError(
                    f"--nodes {self.nodes}: run {cfg.name!r} has only {cfg.nodes} peers; "
                    f"use --nodes {cfg.nodes} or fewer"
                )


def shares(peers: int, hosts: int) -> list[int]:
    """Peers per host: ``peers`` split as evenly as possible, the first hosts one more."""
    return [peers // hosts + (1 if i < peers % hosts else 0) for i in range(hosts)]


def shares_of(text: str, host_index: int) -> int:
    """Host ``host_index``'s share from the job's ``BYZEMU_PEERS_PER_HOST`` ("3 3 2")."""
    return int(text.split()[host_index])


def byzemu_argv() -> list[str]:
    """How a host of the cluster starts this very byzemu: the ``byzemu`` script next to
    this interpreter, else ``python -m launch.cli``."""
    script = Path(sys.executable).parent / "byzemu"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "launch.cli"]


def _header(opts: SlurmOptions, *, name: str, cpus: int, output: Path, workdir: Path, array: str | None) -> str:
    lines = [
        f"--job-name=byzemu-{name}",
        f"--nodes={opts.nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={cpus}",
        f"--output={output}",
        f"--chdir={workdir}",
    ]
    if array is not None:
        lines.append(f"--array={array}")
    if opts.partition:
        lines.append(f"--partition={opts.partition}")
    if opts.time:
        lines.append(f"--time={opts.time}")
    lines.extend(opts.sbatch_args)
    return "#!/bin/bash\n" + "".join(f"#SBATCH {shlex.quote(x)}\n" for x in lines)


_HOW = """\
# The coordinator runs in this batch step, on the allocation's first host: it binds a free
# port on every interface and starts one `srun` task per host, each forking that host's
# share of the peers from one torch-preloaded forkserver (as `byzemu peer --count k`).
# Its address and CURVE key reach the tasks through the job environment; the results
# folder, the data root and this Python environment must be on a filesystem that every
# host mounts at the same path. Follow it: byzemu status {follow}
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
"""


def run_script(cfg: RunConfig, run_dir: Path, opts: SlurmOptions) -> str:
    """The sbatch script of one run whose results folder is ``run_dir`` (absolute)."""
    per_host = shares(cfg.nodes, opts.nodes)
    head = _header(
        opts, name=cfg.name, cpus=max(per_host), output=run_dir / "slurm-%j.out", workdir=run_dir, array=None
    )
    return (
        f"{head}#\n# byzemu run {cfg.name!r}: {cfg.nodes} peers on {opts.nodes} host(s) {per_host}, "
        f"{cfg.rounds} rounds.\n# Written by `byzemu launch CONFIG --on slurm`; submit it again with "
        f"`sbatch {RunDir(run_dir).job_script}`.\n"
        + _HOW.format(follow=shlex.quote(str(run_dir)))
        + f"export {RUN_DIR_ENV}={shlex.quote(str(run_dir))}\n"
        + f'exec {shlex.join(byzemu_argv())} slurm-job "${RUN_DIR_ENV}"\n'
    )


def sweep_script(out: Path, runs: list[tuple[str, RunConfig]], opts: SlurmOptions, *, name: str) -> str:
    """The sbatch script of a job array: task i runs ``out / runs[i][0]``."""
    cpus = max(max(shares(cfg.nodes, opts.nodes)) for _, cfg in runs)
    array = f"0-{len(runs) - 1}" + (f"%{opts.jobs}" if opts.jobs else "")
    head = _header(opts, name=name, cpus=cpus, output=out / "slurm" / "array-%A_%a.out", workdir=out, array=array)
    listed = "".join(f"  {shlex.quote(rel)}\n" for rel, _ in runs)
    return (
        f"{head}#\n# byzemu sweep {name!r}: {len(runs)} run(s), one array task each, on {opts.nodes} host(s) per run.\n"
        "# Written by `byzemu sweep SWEEP.toml --on slurm`; "
        "rerun that command to resume (finished runs are skipped).\n"
        + _HOW.format(follow=shlex.quote(str(out)))
        + f"runs=(\n{listed})\n"
        + f'export {RUN_DIR_ENV}={shlex.quote(str(out))}/"${{runs[$SLURM_ARRAY_TASK_ID]}}"\n'
        + f'exec >"${RUN_DIR_ENV}/slurm-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.out" 2>&1\n'
        + f'exec {shlex.join(byzemu_argv())} slurm-job "${RUN_DIR_ENV}"\n'
    )


# ----------------------------------------------------------------------------- checks


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "" if unknown)."""
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    target = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def check_shared(cfgs: Iterable[RunConfig], results: Path, opts: SlurmOptions, warn: Callable[[str], None]) -> None:
    """What can be checked on the submit host: every data root exists and holds its
    dataset (SlurmError naming what is missing); with more than one host, a warning for
    each of the results folder, the data roots and the Python environment that lies on a
    filesystem only this machine sees."""
    from peer import data as datasets

    roots: dict[str, str] = {}
    for cfg in cfgs:
        if cfg.data.dataset != "synthetic":
            roots.setdefault(str(cfg.data.root), cfg.data.dataset)
    for root, dataset in roots.items():
        if not Path(root).is_dir():
            raise SlurmError(
                f"data.root {root}: no such folder on this host; with --on slurm the {dataset} files must be "
                "in a folder that every host of the allocation reads at this same path (a shared filesystem)"
            )
        datasets.prepare(dataset, Path(root))  # DatasetError names the missing files; decompress once
    if opts.nodes < 2:
        return
    for what, path in [
        ("results folder", results),
        *(("data root", Path(r)) for r in roots),
        ("Python environment", Path(sys.prefix)),
    ]:
        kind = filesystem_of(path)
        if kind in LOCAL_FS:
            warn(
                f"warning: the {what} {path} is on a local filesystem ({kind}); every host of the allocation "
                "must see it at the same path (a shared filesystem), or the job's peers fail there"
            )


def active_jobs() -> dict[str, str] | None:
    """This user's queued and running Slurm jobs (array tasks one by one): id -> state;
    None where ``squeue`` is missing or fails."""
    if shutil.which("squeue") is None:
        return None
    proc = subprocess.run(
        ["squeue", "--me", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        return None
    jobs = {}
    for line in proc.stdout.splitlines():
        job, _, state = line.partition("|")
        if job:
            jobs[job.strip()] = state.strip()
    return jobs


def recorded_job(run_dir: Path) -> str | None:
    """The Slurm job id recorded in ``run_dir`` when it was submitted, if any."""
    try:
        return str((read_json(RunDir(run_dir).slurm_job) or {})["job_id"])
    except KeyError:
        return None


def _refuse_active(run_dirs: Iterable[Path]) -> None:
    recorded = {d: recorded_job(d) for d in run_dirs}
    if not any(recorded.values()):
        return
    queued = active_jobs() or {}
    for d, job in recorded.items():
        if job is not None and queued.get(job) in ACTIVE_STATES:
            raise SlurmError(
                f"{d}: its Slurm job {job} is still {queued[job].lower()}; wait for it or cancel it "
                f"(scancel {job}) before submitting this run again"
            )


# ----------------------------------------------------------------------------- submitting


def sbatch(script: Path) -> str:
    """Submit ``script``; return the job id."""
    if shutil.which("sbatch") is None:
        raise SlurmError(
            "sbatch not found on PATH: submit from a host of the Slurm cluster (--dry-run prints the script)"
        )
    proc = subprocess.run(
        ["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise SlurmError(f"sbatch refused {script}: {why}")
    return proc.stdout.strip().split(";")[0]


def _prepare_folder(run_dir: Path, cfg: RunConfig) -> None:
    """A fresh results folder holding only the run's resolved config (the job's input)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    RunDir(run_dir).config_toml.write_text(to_toml(cfg.to_dict()))


def _write_inputs(run_dir: Path, cfg: RunConfig) -> None:
    """What a dry run leaves for a user to inspect and ``sbatch`` by hand: the run's
    resolved config in ``run_dir`` (created), nothing else touched."""
    run_dir.mkdir(parents=True, exist_ok=True)
    RunDir(run_dir).config_toml.write_text(to_toml(cfg.to_dict()))


def _record(run_dir: Path, job: str, script: Path, hosts: int) -> None:
    write_json(
        RunDir(run_dir).slurm_job,
        {
            "job_id": job,
            "script": str(script),
            "hosts": hosts,
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def submit_run(
    cfg: RunConfig, run_dir: Path, opts: SlurmOptions, *, dry_run: bool, echo: Callable[..., None]
) -> str | None:
    """Submit one run (``byzemu launch CONFIG --on slurm``); return the job id (None on a
    dry run, which writes the config and the script into ``run_dir``, prints the script
    and submits nothing)."""
    from coordinator.plan import build_plan

    opts.check([cfg])
    run_dir = run_dir.resolve()
    check_shared([cfg], run_dir, opts, lambda line: echo(line, err=True))
    build_plan(cfg)  # every config error before anything is written or submitted
    script = run_script(cfg, run_dir, opts)
    if dry_run:
        path = RunDir(run_dir).job_script
        _write_inputs(run_dir, cfg)
        path.write_text(script)
        echo(
            f"dry run: wrote {RunDir(run_dir).config_toml} and {path}; nothing submitted "
            f"(submit by hand: sbatch {shlex.quote(str(path))})",
            err=True,
        )
        echo(script, nl=False)
        return None
    _refuse_active([run_dir])
    _prepare_folder(run_dir, cfg)
    path = RunDir(run_dir).job_script
    path.write_text(script)
    job = sbatch(path)
    _record(run_dir, job, path, opts.nodes)
    return job


def submit_sweep(
    sweep: Any, out: Path, opts: SlurmOptions, *, dry_run: bool, echo: Callable[..., None]
) -> dict[str, Any]:
    """Submit every run of ``sweep`` (``launch.sweeps.sweepfile.Sweep``) that is not finished as one
    job array; finished runs are kept (and must have the config the sweep asks for now)."""
    from launch.sweeps.runner import check_kept

    opts.check(r.cfg for r in sweep.runs)
    out = out.resolve()
    check_shared((r.cfg for r in sweep.runs), out, opts, lambda line: echo(line, err=True))
    todo = []
    for run in sweep.runs:
        if RunDir(out / run.rel_dir).is_finished():
            check_kept(run, out / run.rel_dir)
        else:
            todo.append(run)
    counts: dict[str, Any] = {
        "total": len(sweep.runs),
        "submitted": len(todo),
        "skipped": len(sweep.runs) - len(todo),
        "job": None,
    }
    if not todo:
        return counts
    script = sweep_script(out, [(r.rel_dir, r.cfg) for r in todo], opts, name=sweep.path.stem)
    path = out / "slurm" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
    if dry_run:
        for run in todo:
            _write_inputs(out / run.rel_dir, run.cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
        echo(
            f"dry run: wrote {len(todo)} run folder(s) with their {RunDir(out).config_toml.name} under {out} "
            f"and {path}; nothing submitted (submit by hand: sbatch {shlex.quote(str(path))})",
            err=True,
        )
        echo(script, nl=False)
        return counts
    _refuse_active(out / r.rel_dir for r in todo)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SWEEP, sweep.to_json())
    for run in todo:  # an interrupted run starts again from scratch, as in a local sweep
        _prepare_folder(out / run.rel_dir, run.cfg)
    path.parent.mkdir(exist_ok=True)
    path.write_text(script)
    job = sbatch(path)
    for i, run in enumerate(todo):
        _record(out / run.rel_dir, f"{job}_{i}", path, opts.nodes)
    counts["job"] = job
    return counts
