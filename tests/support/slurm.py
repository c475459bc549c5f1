"""A real Slurm cluster on this machine for the tests and benchmarks: ``munged``,
``slurmctld`` and two ``slurmd`` (nodes ``n1`` and ``n2``, ``slurmd -N``, each on its own
port), every file, socket and port of theirs under one folder or picked free, from Debian's
``slurm-wlm`` and ``munge``. Root only (``slurmd`` runs jobs as their user).

    cluster = start(folder)        # SlurmUnavailable(why) where it cannot start
    try:
        cluster.run("sinfo")       # SLURM_CONF is in cluster.env
    finally:
        stop(cluster)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_until


class SlurmUnavailable(Exception):
    """Why a test Slurm cluster cannot be brought up here (the message says)."""


@dataclass
class Slurm:
    root: Path
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *argv: str) -> str:
        proc = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60, check=False)
        return proc.stdout

    def logs(self) -> str:
        return "\n".join(
            f"----- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted((self.root / "log").glob("*"))
        )


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


SLURM_CONF = """\
ClusterName=byzemutest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=n1 NodeHostname={host} NodeAddr=127.0.0.1 Port={n1_port} CPUs={cpus} State=UNKNOWN
NodeName=n2 NodeHostname={host} NodeAddr=127.0.0.1 Port={n2_port} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""


def start(root: Path, *, cpus: int = 8) -> Slurm:
    """Bring the cluster up under ``root`` (created) and wait until both nodes are idle;
    ``cpus`` per node as Slurm sees them. Raises SlurmUnavailable, saying why."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        raise SlurmUnavailable("a test Slurm cluster needs root (slurmd runs jobs as their user); CI runs as root")
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue") if shutil.which(b) is None]
    if missing:
        raise SlurmUnavailable(
            f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge (.ci/run does)"
        )
    for sub in ("munge", "state", "spool/n1", "spool/n2", "log"):
        (root / sub).mkdir(parents=True)
    (root / "munge").chmod(0o755)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    ctld_port, slurmd_port, n1_port, n2_port = _free_ports(4)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            root=root,
            ctld_port=ctld_port,
            slurmd_port=slurmd_port,
            n1_port=n1_port,
            n2_port=n2_port,
            cpus=cpus,
        )
    )
    cluster = Slurm(root, {**os.environ, "SLURM_CONF": str(conf)})
    try:  # the job's peers reach the coordinator by its hostname, as on a real cluster
        socket.gethostbyname(socket.gethostname())
    except OSError:  # a container whose hostname does not resolve: every "host" is this machine
        cluster.env["BYZEMU_COORDINATOR_HOST"] = "127.0.0.1"

    def launch(*argv: str) -> None:
        with (root / "log" / f"{Path(argv[0]).name}-{len(cluster.procs)}.stderr").open("wb") as fh:
            cluster.procs.append(
                subprocess.Popen(
                    list(argv),
                    env=cluster.env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    m = root / "munge"
    launch(
        "munged",
        "-F",
        "--force",
        f"--key-file={key}",
        f"--socket={m / 'munge.socket'}",
        f"--pid-file={m / 'munged.pid'}",
        f"--log-file={root / 'log' / 'munged.log'}",
        f"--seed-file={m / 'munged.seed'}",
    )
    try:
        wait_until(lambda: (m / "munge.socket").exists(), timeout=30, what="munged's socket", interval=0.2)
        launch("slurmctld", "-D", "-f", str(conf))
        launch("slurmd", "-D", "-f", str(conf), "-N", "n1")
        launch("slurmd", "-D", "-f", str(conf), "-N", "n2")
        wait_until(
            lambda: cluster.run("sinfo", "-h", "-N", "-o", "%N %T").split() == ["n1", "idle", "n2", "idle"],
            timeout=60,
            what="both nodes idle (sinfo)",
            interval=0.2,
        )
    except TimeoutError as exc:
        stop(cluster)
        raise SlurmUnavailable(f"cannot start a test Slurm cluster here: {exc}\n{cluster.logs()}") from None
    return cluster


def stop(cluster: Slurm) -> None:
    """Cancel what is queued, then end the slurmds, slurmctld and munged."""
    cluster.run("scancel", "--me")
    for p in reversed(cluster.procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
