"""The torch device of one peer (``train.device``; placement rules in ``protocol/devices.py``).

On the CPU (the default) nothing here touches ``torch.cuda``: a CPU run makes no CUDA
call, creates no CUDA context and sets no global flag (``tests/test_devices.py``).

On a CUDA device the peer trains and evaluates there; everything else stays in host
memory: the shard and the sampler (each mini-batch is copied to the device after the
poisoning hook ran on it), the flattened parameter vector that is cut into chunks (copied
out once per round after training, :func:`peer.chunking.flatten`), the received chunks
and the aggregation, the defenses' probe model and the attacks' own training. Before the
process's first CUDA call it turns on PyTorch's deterministic algorithms with the cuBLAS
workspace they need (``CUBLAS_WORKSPACE_CONFIG=:4096:8``, set unless the environment
already sets it), so that the cluster and the in-process reference give the same digests
on the same GPU model (docs/PERFORMANCE.md, *GPU peers*).
"""

from __future__ import annotations

import os

import torch

from protocol.devices import node_setting, place

#: the cuBLAS workspace setting deterministic algorithms need (PyTorch's reproducibility notes)
CUBLAS_WORKSPACE = ":4096:8"


def select(device: str, device_map: dict[str, str], node: int) -> torch.device:
    """``node``'s device; CPU without a CUDA call when its setting is ``cpu``.
    :class:`protocol.devices.DeviceError` if it needs a CUDA device that is not visible."""
    setting = node_setting(device, device_map, node)
    if setting == "cpu":
        return torch.device("cpu")
    chosen = place(setting, node, torch.cuda.device_count())
    if chosen != "cpu":
        make_deterministic()
    return torch.device(chosen)


def make_deterministic() -> None:
    """Deterministic CUDA kernels for this process (global; idempotent).

    ``warn_only``: an operation with no deterministic CUDA kernel warns instead of
    stopping the peer. PyTorch lists ``NLLLoss`` on CUDA tensors among them (the models'
    cross-entropy) and the backward of ``AdaptiveAvgPool2d`` (``resnet18``): a run that
    warns may differ between repeats on the GPU; ``bench/gpu.py`` compares the digests."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
