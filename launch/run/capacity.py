"""Whether a local run fits this machine, decided before anything is started.

``byzemu launch`` runs one OS process per peer. A run too large for the machine does not
fail cleanly on its own: it forks peers until memory, process slots or ports run out, and
the machine with it. :func:`check` refuses such a run with one line (what is short, by how
much, and how to fix it) before the forkserver or any peer is forked; ``byzemu validate``
prints the same estimate (:func:`describe`), and ``byzemu launch --ignore-capacity``
starts anyway.

The estimate is arithmetic on measured costs (``bench/cost_curve.py`` and
``bench/soak.py``; figures in BENCHMARKS.md, section 8), never a probe, so it takes
microseconds and imports neither torch nor the peer code:

* **memory** = ``MARGIN`` x (N x (peer base + the model's figure + a trigger test set for
  backdoor-style attacks) + the dataset's float32 size twice (the forkserver's copy
  shared by all peers, and the peers' shards, which together hold the training set
  once) + launcher and forkserver), against ``MemAvailable``. A peer's *private* memory
  (USS) is what each new peer adds: the pages it shares with the forkserver (torch, the
  evaluation set) are counted once, in the forkserver.
* **tasks**: each peer is a process with ``THREADS_PER_PEER`` threads (the main thread,
  ZeroMQ's I/O and reaper threads, torch's), against ``kernel.pid_max`` and
  ``kernel.threads-max`` and, unless root, ``ulimit -u``.
* **file descriptors**: the launcher holds one connection and one process handle per
  peer, against its ``ulimit -n``.
* **ports**: every peer binds a data port from ``net.ipv4.ip_local_port_range``, and the
  coordinator accepts one connection per peer from that range.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from protocol.config import RunConfig
from protocol.errors import UserError
from protocol.names import ATTACK_PARAMS

MIB = 1024 * 1024

#: private memory (USS, MiB) of a peer beyond its model's share and its shard: mostly the
#: forkserver's pages it writes to (Python's reference counts and allocator in the pymalloc
#: arenas and the malloc heap it inherited, libpython's data), then the ZeroMQ contexts with
#: their threads and sockets and the node's bookkeeping (16 and 64 logreg peers,
#: bench/peer_memory.py; BENCHMARKS.md section 8, *A peer's private memory, cut*)
PEER_BASE_MIB = 11.0
#: private memory (MiB) a peer adds for its model, beyond PEER_BASE_MIB and its shard: the
#: parameters, gradients, momentum buffer, flattened vectors, received chunks and one
#: batch's activations (MNIST shapes; resnet18 on CIFAR-10): logreg and lenet measured by
#: bench/cost_curve.py, the others BENCHMARKS.md section 4's PSS at 16 peers less the parts
#: shared with the forkserver, rounded up. A model missing
#: here (registered by a user) counts as UNKNOWN_MODEL_MIB; tests/test_capacity.py holds
#: this table to the model registry.
MODEL_MIB: dict[str, float] = {
    "logreg": 0.5,
    "mlp": 2.0,
    "lenet": 6.5,
    "cnn_guo": 75.0,
    "cnn_masuda": 85.0,
    "resnet18": 400.0,
}
UNKNOWN_MODEL_MIB = 400.0
#: the launcher (coordinator, plan, torch imported) and the forkserver (torch and the peer
#: code imported), without the dataset (MiB)
FIXED_MIB = 550.0
#: training samples and float32 values per sample of each dataset (a dataset missing here
#: counts as MNIST-sized); synthetic's size is data.synthetic_size
DATASETS: dict[str, tuple[int, int]] = {
    "mnist": (60_000, 784),
    "fashion_mnist": (60_000, 784),
    "cifar10": (50_000, 3_072),
    "synthetic": (0, 784),
}
TEST_SAMPLES: dict[str, int] = {"cifar10": 10_000}
#: threads of one peer process (bench/soak.py: 5 at every sample)
THREADS_PER_PEER = 5
#: file descriptors the launcher holds per peer (its control connection, the process's
#: sentinel and the forkserver's pipe: 63 at 16 peers, 207 at 64), and besides them
LAUNCHER_FDS_PER_PEER = 3
LAUNCHER_FDS = 64
#: the estimate is multiplied by this before it is compared with what is available
MARGIN = 1.2
#: what to tell a user whose run does not fit
FIX = "fewer nodes, a smaller model, or Slurm across hosts (--on slurm); --ignore-capacity starts it anyway"


class CapacityError(UserError):
    """A run needs more of this machine than it has (one line: what, how much, the fix)."""


@dataclass(frozen=True)
class Host:
    """What this machine offers a run: memory, task and descriptor limits, ports."""

    mem_available_mib: float
    tasks_now: int  #: threads running on the machine now
    pid_max: int
    threads_max: int
    user_processes: int | None  #: soft ``ulimit -u``; None when unlimited or root (not enforced)
    open_files: int | None  #: soft ``ulimit -n`` of this process; None when unlimited
    ports: int  #: size of net.ipv4.ip_local_port_range

    @classmethod
    def here(cls) -> Host:
        """This machine, read from /proc and the process's limits."""
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        lo, hi = (int(x) for x in _proc("sys/net/ipv4/ip_local_port_range", "32768 60999").split())
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return cls(
            mem_available_mib=int(meminfo["MemAvailable"].split()[0]) / 1024,
            tasks_now=int(_proc("loadavg", "0 0 0 0/0 0").split()[3].split("/")[1]),
            pid_max=int(_proc("sys/kernel/pid_max", "32768")),
            threads_max=int(_proc("sys/kernel/threads-max", "32768")),
            user_processes=None if nproc == resource.RLIM_INFINITY or os.geteuid() == 0 else nproc,
            open_files=None if nofile == resource.RLIM_INFINITY else nofile,
            ports=hi - lo + 1,
        )


def _proc(path: str, default: str) -> str:
    try:
        return Path("/proc", path).read_text().strip()
    except OSError:
        return default


@dataclass(frozen=True)
class Estimate:
    """What a run of ``nodes`` peers needs on one machine (memory in MiB, margin included)."""

    nodes: int
    model: str
    per_peer_mib: float  #: each peer's private memory, margin included
    fixed_mib: float  #: launcher, forkserver and the dataset, margin included
    tasks: int
    launcher_fds: int
    ports: int

    @property
    def memory_mib(self) -> float:
        return self.fixed_mib + self.nodes * self.per_peer_mib

    def peers_fitting(self, host: Host) -> int:
        """How many peers of this kind fit in ``host``'s available memory."""
        return max(0, int((host.mem_available_mib - self.fixed_mib) / self.per_peer_mib))


def test_samples(cfg: RunConfig) -> int:
    """Images in a peer's evaluation set: ``data.test_samples``, else the dataset's test set."""
    return cfg.data.test_samples or TEST_SAMPLES.get(cfg.data.dataset, 10_000)


def builds_triggered_set(cfg: RunConfig) -> bool:
    """Whether every peer also builds a triggered copy of its evaluation set (the attack
    has a trigger: backdoor-style attacks, for their success rate)."""
    attack = cfg.byzantine.attack if cfg.byzantine.present else "none"
    return "trigger_size" in ATTACK_PARAMS.get(attack, ())


def estimate(cfg: RunConfig) -> Estimate:
    """The resources ``byzemu launch`` of ``cfg`` needs on one machine."""
    samples, values = DATASETS.get(cfg.data.dataset, DATASETS["mnist"])
    if cfg.data.dataset == "synthetic":
        samples = cfg.data.synthetic_size or 2000
    if cfg.data.samples_per_node:
        samples = min(samples, cfg.data.samples_per_node * cfg.nodes)
    dataset_mib = 2 * samples * values * 4 / MIB  # the forkserver's copy + the shards
    per_peer = PEER_BASE_MIB + MODEL_MIB.get(cfg.model.name, UNKNOWN_MODEL_MIB)
    if builds_triggered_set(cfg):  # each peer builds a triggered test set
        per_peer += test_samples(cfg) * values * 4 / MIB
    return Estimate(
        nodes=cfg.nodes,
        model=cfg.model.name,
        per_peer_mib=MARGIN * per_peer,
        fixed_mib=MARGIN * (FIXED_MIB + dataset_mib),
        tasks=cfg.nodes * THREADS_PER_PEER,
        launcher_fds=LAUNCHER_FDS + cfg.nodes * LAUNCHER_FDS_PER_PEER,
        ports=cfg.nodes + 1,
    )


def shortfalls(est: Estimate, host: Host) -> list[str]:
    """What ``host`` lacks for ``est``, one phrase each, memory first; [] if it fits."""
    out = []
    if est.memory_mib > host.mem_available_mib:
        out.append(
            f"~{_gib(est.memory_mib)} of memory ({est.per_peer_mib:.0f} MiB per {est.model} peer + "
            f"{_gib(est.fixed_mib)} for the launcher, forkserver and data), {_gib(host.mem_available_mib)} available "
            f"(~{est.peers_fitting(host):,} such peers fit)"
        )
    free_tasks = min(host.pid_max, host.threads_max) - host.tasks_now
    if est.tasks > free_tasks:
        out.append(f"{est.tasks:,} threads ({THREADS_PER_PEER} per peer), {free_tasks:,} free under kernel.pid_max")
    if host.user_processes is not None and est.tasks + host.tasks_now > host.user_processes:
        out.append(f"{est.tasks:,} threads, ulimit -u is {host.user_processes:,} (raise it with ulimit -u)")
    if host.open_files is not None and est.launcher_fds > host.open_files:
        out.append(f"{est.launcher_fds:,} open files in the launcher, ulimit -n is {host.open_files:,} (raise it)")
    if est.ports > host.ports:
        out.append(f"{est.ports:,} local ports, net.ipv4.ip_local_port_range holds {host.ports:,}")
    return out


def check(cfg: RunConfig, host: Host | None = None) -> Estimate:
    """``cfg``'s estimate; :class:`CapacityError` (one line) if it does not fit ``host``
    (default: this machine)."""
    est = estimate(cfg)
    short = shortfalls(est, host or Host.here())
    if short:
        raise CapacityError(f"{cfg.nodes:,} peers do not fit this machine: need {'; '.join(short)}; use {FIX}")
    return est


def describe(cfg: RunConfig, host: Host | None = None) -> str:
    """One line for ``byzemu validate``: the estimate and whether ``byzemu launch`` would
    start it on this machine."""
    host = host or Host.here()
    est = estimate(cfg)
    short = shortfalls(est, host)
    head = (
        f"on this machine: ~{_gib(est.memory_mib)} of memory estimated ({est.per_peer_mib:.0f} MiB per peer + "
        f"{_gib(est.fixed_mib)}), {_gib(host.mem_available_mib)} available"
    )
    if not short:
        return f"{head}; fits"
    return f"{head}; does not fit (needs {'; '.join(short)}): byzemu launch refuses it here; use {FIX}"


def _gib(mib: float) -> str:
    return f"{mib / 1024:,.1f} GiB"
