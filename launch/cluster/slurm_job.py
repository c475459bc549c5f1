"""Slurm, inside the allocation: the job that ``launch/cluster/slurm.py`` submits.

``byzemu slurm-job RUN_DIR`` (the batch step, on the allocation's first host) runs the
coordinator of ``RUN_DIR/config.toml`` bound on a free port of every interface, writes
``RUN_DIR/coordinator.address`` (``tcp://HOSTNAME:PORT``) and, with CURVE,
``RUN_DIR/coordinator.key``, and starts the peers with one ``srun`` task per host::

    srun --nodes=H --ntasks=H --ntasks-per-node=1 --cpus-per-task=K byzemu slurm-host

Each task (``byzemu slurm-host``) reads the coordinator's address and key, the results
folder and its host's share of the peers from the job environment, checks that this host
reads the results folder and the data root (one ``error: host NAME: ...`` line in the
run's log otherwise), and forks its peers from one torch-preloaded forkserver, as
``byzemu peer --count k`` does. Peers bind every interface and advertise the address of
this host that routes to the coordinator's host (``BYZEMU_ADVERTISE_HOST`` overrides).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from launch.cluster import slurm
from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig, is_loopback
from protocol.rundir import RunDir

log = logging.getLogger("byzemu.slurm")

#: seconds the peers get to exit after the coordinator's ``stop`` before srun is ended
STOP_GRACE_S = 30.0


def host_problem(run_dir: Path) -> str | None:
    """Why this host cannot take part in the run of ``run_dir`` (None: it can): the results
    folder or the data root is not readable here."""
    try:
        cfg = config_mod.load(RunDir(run_dir).config_toml)
    except (ConfigError, OSError) as exc:
        return (
            f"cannot read the run's config in the results folder {run_dir} ({exc}); the results folder "
            "must be on a filesystem that every host mounts at the same path"
        )
    if not os.access(run_dir, os.W_OK):
        return f"cannot write to the results folder {run_dir} (peers write their checkpoints there)"
    if cfg.data.dataset == "synthetic":
        return None
    from peer import data as datasets

    root = Path(cfg.data.root)
    try:
        datasets.prepare(cfg.data.dataset, root)
    except (ValueError, OSError) as exc:  # DatasetError is a ValueError
        return (
            f"cannot read the {cfg.data.dataset} data at data.root {root} ({exc}); the data root must be on a "
            "filesystem that every host mounts at the same path"
        )
    return None


def _route_address(host: str, port: int) -> str:
    """This host's address on the interface that routes to ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        return str(s.getsockname()[0])


def _this_host() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def run_job(run_dir: Path, *, echo: Callable[[str], None]) -> dict[str, Any]:
    """The batch step: coordinator here, peers through srun; returns the run's summary.
    Raises ConfigError (a line for the run's log) when the run cannot start or the peers'
    step ends before every peer registered."""
    from coordinator.plan import build_plan
    from launch.run.progress import Progress
    from launch.run.setup import start_coordinator

    problem = host_problem(run_dir)
    if problem is not None:
        raise ConfigError(f"host {_this_host()}: {problem}")
    run = RunDir(run_dir)
    cfg = config_mod.load(run.config_toml)
    hosts = int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))
    per_host = slurm.shares(cfg.nodes, hosts)
    plan = build_plan(cfg)
    for stale in (run.summary, run.interrupted):  # of an earlier job (`sbatch job.sbatch` again)
        stale.unlink(missing_ok=True)
    coord = start_coordinator(
        cfg, run_dir, bind="tcp://0.0.0.0:*", mode="slurm", progress=Progress(cfg.rounds, stream=sys.stdout), plan=plan
    )
    port = int(coord.address.rsplit(":", 1)[1])
    address = f"tcp://{os.environ.get(slurm.COORDINATOR_HOST_ENV) or socket.gethostname()}:{port}"
    run.coordinator_address.write_text(address + "\n")
    if coord.public_key is not None:
        run.coordinator_key.write_text(coord.public_key + "\n")
    # one CPU per peer unless the job asked for another count (--sbatch-arg=--cpus-per-task=N)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK") or str(max(per_host))
    cmd = [
        "srun",
        f"--nodes={hosts}",
        f"--ntasks={hosts}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={cpus}",
        *slurm.byzemu_argv(),
        "slurm-host",
    ]
    echo(
        f"byzemu run {cfg.name!r}: coordinator on {_this_host()} at {address}, CURVE "
        f"{'on' if coord.public_key else 'off'}; {cfg.nodes} peers on {hosts} host(s) {per_host}\n$ {shlex.join(cmd)}"
    )
    env = {
        **os.environ,
        slurm.COORDINATOR_ENV: address,
        slurm.KEY_ENV: coord.public_key or "",
        slurm.RUN_DIR_ENV: str(run_dir),
        slurm.SHARES_ENV: " ".join(map(str, per_host)),
    }
    step = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    # the peers' step gone before every peer registered: nobody else will come, so stop
    # waiting (SIGINT reaches the coordinator's loop as KeyboardInterrupt); in the rounds
    # the dead-peer probe says the same
    done = threading.Event()

    def watch() -> None:
        step.wait()
        if not done.is_set() and len(coord.peers) < cfg.nodes:
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    coord.dead_probe = lambda: set(coord.peers) if step.poll() is not None else set()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # scancel, the time limit
    try:
        return coord.run()
    except KeyboardInterrupt:
        if step.poll() is not None and len(coord.peers) < cfg.nodes:
            raise ConfigError(
                f"the peers' srun step ended (exit status {step.returncode}) after {len(coord.peers)} of "
                f"{cfg.nodes} peers registered; the lines above say why"
            ) from None
        raise
    finally:
        done.set()
        signal.signal(signal.SIGTERM, previous)
        coord.close()
        _end_step(step)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _end_step(step: subprocess.Popen) -> None:
    try:
        step.wait(STOP_GRACE_S)
        return
    except subprocess.TimeoutExpired:
        pass
    step.terminate()  # srun forwards SIGTERM to the tasks
    try:
        step.wait(10)
    except subprocess.TimeoutExpired:
        step.kill()
        step.wait()


def run_host(*, echo: Callable[[str], None]) -> int:
    """One host's task: check this host, fork its share of the peers, wait for them."""
    from launch.run.procs import preload_data, start_peers, stop_peers
    from peer.options import PeerOptions

    name = _this_host()
    try:
        run_dir = Path(os.environ[slurm.RUN_DIR_ENV])
        address = os.environ[slurm.COORDINATOR_ENV]
        count = slurm.shares_of(os.environ[slurm.SHARES_ENV], int(os.environ.get("SLURM_NODEID", "0")))
    except (KeyError, ValueError, IndexError) as exc:
        echo(f"error: host {name}: not started by `byzemu slurm-job` (job environment incomplete: {exc})")
        return 2
    problem = host_problem(run_dir)
    if problem is not None:
        echo(f"error: host {name}: {problem}")
        return 2
    cfg: RunConfig = config_mod.load(RunDir(run_dir).config_toml)
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    advertise = os.environ.get(slurm.ADVERTISE_ENV) or _route_address(host, int(port))
    if is_loopback(advertise) and int(os.environ.get("SLURM_JOB_NUM_NODES", "1")) > 1:
        echo(
            f"warning: host {name}: peers advertise the loopback address {advertise} ({host} resolves to "
            f"loopback here); peers on other machines cannot reach them: set {slurm.ADVERTISE_ENV} or "
            f"{slurm.COORDINATOR_HOST_ENV} in the job's environment"
        )
    if count == 0:
        return 0
    preload_data(cfg)
    procs = start_peers(
        count,
        PeerOptions(
            coordinator=address,
            bind_host="0.0.0.0",
            advertise_host=advertise,
            coordinator_key=os.environ.get(slurm.KEY_ENV) or None,
            checkpoint_dir=str(RunDir(run_dir).checkpoints),
        ),
    )
    echo(f"host {name}: {count} peer(s) started, data sockets advertised on {advertise}")
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop_peers(procs, grace=0)
    return 0 if all(p.exitcode == 0 for p in procs) else 1
