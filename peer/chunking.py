"""Flattening a model into one vector, cutting it into chunks, and the chunk policy.

The parameters are flattened in ``model.parameters()`` order (the order PyTorch registers
them) into one float32 vector of length P, which is cut into C contiguous chunks whose
sizes differ by at most one element (``numpy.array_split`` bounds).

Chunk policy ``random`` (the default): in round t, node i draws a permutation pi of
{0..C-1} from a generator seeded with (seed, i, t); its neighbors, sorted by id, take
consecutive windows of ``per_neighbor`` entries of pi (wrapping around), so neighbor at
position p receives {pi[(p*k + m) mod C] : m < k}. Because k < C no neighbor receives the
whole model in a round, and because pi is redrawn every round every index reaches every
neighbor over time. With d*k >= C every index is sent to someone each round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

_POLICY_SALT = 0x43484B  # "CHK": separates this generator's stream from other uses of the seed


#: a model, or its ``list(model.parameters())`` kept by a caller that flattens it every
#: round (walking the module tree for the parameters costs more than copying LeNet's)
Params = nn.Module | Sequence[torch.Tensor]


def _params(model: Params) -> Sequence[torch.Tensor]:
    return list(model.parameters()) if isinstance(model, nn.Module) else model


def flatten(model: Params) -> np.ndarray:
    """The model's parameters as one new float32 vector in host memory (a copy; from a
    CUDA model, one device-to-host copy of the whole vector)."""
    with torch.no_grad():  # torch.cat always allocates: the vector shares nothing with the model
        vec = torch.cat([p.reshape(-1) for p in _params(model)])
    if vec.device.type != "cpu":
        vec = vec.cpu()
    return vec.to(torch.float32).numpy()


def load_vector(model: Params, vector: np.ndarray) -> None:
    """Overwrite the model's parameters with ``vector`` (inverse of :func:`flatten`; to a
    CUDA model, one host-to-device copy per parameter tensor)."""
    params = _params(model)
    total = sum(p.numel() for p in params)
    if total != vector.size:  # checked first: a short vector must not half-load the model
        raise ValueError(f"vector has {vector.size} values, model has {total} parameters")
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(torch.from_numpy(vector[offset : offset + n]).view_as(p))
            offset += n


def chunk_bounds(size: int, count: int) -> list[tuple[int, int]]:
    """[start, stop) of each of ``count`` near-equal contiguous chunks of a ``size`` vector."""
    if count < 1 or count > size:
        raise ValueError(f"cannot cut {size} values into {count} chunks")
    base, extra = divmod(size, count)
    bounds, start = [], 0
    for c in range(count):
        stop = start + base + (1 if c < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def assign_chunks(
    *, node: int, neighbors: Sequence[int], round_: int, count: int, per_neighbor: int, seed: int
) -> dict[int, list[int]]:
    """Chunk indices that ``node`` sends to each neighbor in ``round_`` (policy ``random``)."""
    if not 1 <= per_neighbor < count:
        raise ValueError(f"per_neighbor={per_neighbor} must be in [1, {count - 1}]")
    rng = np.random.default_rng([seed, node, round_, _POLICY_SALT])
    perm = rng.permutation(count).tolist()
    ring = perm + perm  # ring[s : s + k] = pi[(s + m) mod C], m < k, as k < C
    plan = {}
    for position, neighbor in enumerate(sorted(neighbors)):
        start = position * per_neighbor % count
        plan[neighbor] = sorted(ring[start : start + per_neighbor])
    return plan
