"""Whether a run's GPU peers fit the GPUs of this machine, decided before anything starts.

With ``train.device`` other than ``cpu`` (``protocol/devices.py``), ``byzemu launch`` asks
a short-lived Python process what torch sees (the visible CUDA devices, their names and
free memory; ``CUDA_VISIBLE_DEVICES`` and Slurm's allocation respected), so that the
launcher and the forkserver never initialise CUDA themselves (a process that forks after
initialising CUDA cannot use it in its children). It places the peers as they will place
themselves and refuses with one line a run that asks for CUDA where there is none, or
whose peers do not fit a device's free memory:

    per peer = CUDA_CONTEXT_MIB + the model's figure (capacity.MODEL_MIB) + its evaluation
    sets (the test set, and the triggered test set of a backdoor-style attack), x MARGIN

Every peer process holds its own CUDA context; CUDA MPS (``nvidia-cuda-mps-control -d``
before the launch) lets the peers of one GPU share one server context and is the way to
run tens of peers per GPU (docs/PERFORMANCE.md, *GPU peers*).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from launch.run.capacity import (
    DATASETS,
    MARGIN,
    MODEL_MIB,
    UNKNOWN_MODEL_MIB,
    CapacityError,
    builds_triggered_set,
    test_samples,
)
from protocol.config import RunConfig
from protocol.devices import peers_per_device, placement, uses_cuda

#: device memory (MiB) of one process's CUDA context with PyTorch's kernels loaded lazily
#: (CUDA_MODULE_LOADING=LAZY, PyTorch's default): an estimate from PyTorch's and NVIDIA's
#: documentation, not measured by byzemu yet; bench/gpu.py measures it on a GPU machine
CUDA_CONTEXT_MIB = 500.0

#: what the probe process prints: one JSON list of [name, free bytes, total bytes] per device
_PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count()\n"
    "out = []\n"
    "for i in range(n):\n"
    "    free, total = torch.cuda.mem_get_info(i)\n"
    "    out.append([torch.cuda.get_device_name(i), free, total])\n"
    "print(json.dumps(out))\n"
)


@dataclass(frozen=True)
class Gpu:
    """One visible CUDA device."""

    index: int
    name: str
    free_mib: float
    total_mib: float


def probe(timeout: float = 120.0) -> list[Gpu]:
    """The CUDA devices torch sees on this machine, asked in a child process; [] if none."""
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        return []
    rows = json.loads(proc.stdout.strip().splitlines()[-1] or "[]")
    return [Gpu(i, name, free / 2**20, total / 2**20) for i, (name, free, total) in enumerate(rows)]


def peer_gpu_mib(cfg: RunConfig) -> float:
    """One GPU peer's device memory (MiB, margin included): its CUDA context, its model's
    figure and its evaluation sets."""
    _, values = DATASETS.get(cfg.data.dataset, DATASETS["mnist"])
    sets = 2 if builds_triggered_set(cfg) else 1
    data_mib = sets * test_samples(cfg) * (values * 4 + 8) / 2**20  # float32 images, int64 labels
    return MARGIN * (CUDA_CONTEXT_MIB + MODEL_MIB.get(cfg.model.name, UNKNOWN_MODEL_MIB) + data_mib)


def shortfall(cfg: RunConfig, gpus: list[Gpu]) -> str | None:
    """Why ``cfg``'s GPU peers cannot run on ``gpus`` (one line), or None."""
    t = cfg.train
    try:
        places = placement(t.device, t.device_map, range(cfg.nodes), len(gpus))
    except ValueError as exc:
        return str(exc)
    per_peer = peer_gpu_mib(cfg)
    for device, count in peers_per_device(places).items():
        gpu = gpus[int(device.split(":")[1])]
        if count * per_peer > gpu.free_mib:
            fitting = int(gpu.free_mib // per_peer)
            return (
                f"{count} peers on {device} ({gpu.name}) need ~{count * per_peer / 1024:.1f} GiB of its memory "
                f"({per_peer:.0f} MiB each, a CUDA context included), {gpu.free_mib / 1024:.1f} GiB free "
                f"(~{fitting} fit); spread them with train.device = 'cuda' over more GPUs, run CUDA MPS, or put "
                "some on the CPU with train.device_map"
            )
    return None


def check(cfg: RunConfig, gpus: list[Gpu] | None = None) -> list[Gpu]:
    """The visible GPUs; :class:`CapacityError` (one line) if ``cfg``'s peers cannot run on
    them. A CPU-only config asks nothing (no process is started)."""
    if not uses_cuda(cfg.train.device, cfg.train.device_map):
        return []
    gpus = probe() if gpus is None else gpus
    problem = shortfall(cfg, gpus)
    if problem:
        raise CapacityError(problem)
    return gpus


def describe(cfg: RunConfig) -> str | None:
    """One line for ``byzemu validate`` about the GPU peers (None for a CPU-only config)."""
    if not uses_cuda(cfg.train.device, cfg.train.device_map):
        return None
    found = probe()
    problem = shortfall(cfg, found)
    if problem:
        return f"GPU: does not fit: {problem}"
    if not found:  # train.device = auto everywhere (anything else would be a problem above)
        return "GPU: none visible; train.device = 'auto' puts every peer on the CPU"
    names = ", ".join(sorted({g.name for g in found}))
    return f"GPU: {len(found)} visible ({names}), ~{peer_gpu_mib(cfg):.0f} MiB per GPU peer; fits"
