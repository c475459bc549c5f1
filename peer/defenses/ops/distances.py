"""Norms, distances and similarities between rows and vectors."""

from __future__ import annotations

import torch

from peer.defenses.ops.ranking import argsort
from peer.defenses.ops.stacks import EPS, flat


def norm(v: torch.Tensor) -> float:
    """Euclidean norm of a vector, as a Python float."""
    return float(torch.linalg.vector_norm(v.to(torch.float64)))


def row_norms(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each row of ``x``."""
    return torch.linalg.vector_norm(x, dim=1)


def sq_dists_to(x: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of each row of ``x`` to ``center``."""
    return (x - center).pow(2).sum(dim=1)


def pairwise_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` float64 squared Euclidean distances between the rows of ``x`` (exact
    differences, no Gram-matrix cancellation; n is a handful of neighbors). The one
    implementation under Krum, Multi-Krum and Bulyan, and under the attacks' local Krum
    (:mod:`peer.attacks.ops`)."""
    n = x.shape[0]
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = (x[i] - x[j]).pow(2).sum()
    return out


def pairwise_dists(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` Euclidean distances between the rows of ``x`` (square roots of
    :func:`pairwise_sq_dists`)."""
    return pairwise_sq_dists(x).sqrt()


def nearest_rows(d: torch.Tensor, i: int, k: int) -> list[int]:
    """The ``k`` rows nearest to row ``i`` by the distance matrix ``d``, row i itself
    included (distance 0); ties by position."""
    return argsort(d[i].tolist())[:k]


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) = <a, b> / (||a|| ||b||); 0 when either vector is zero."""
    a, b = flat(a), flat(b)
    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    if na <= EPS or nb <= EPS:
        return 0.0
    return float(torch.dot(a, b)) / (na * nb)


def wasserstein_1d_sum(a: torch.Tensor, b: torch.Tensor) -> float:
    """Sum over the columns of the 1-D Wasserstein-1 distance between the empirical
    distributions of ``a[:, k]`` and ``b[:, k]`` (equal sample counts: the mean absolute
    difference of the sorted samples)."""
    sa, sb = torch.sort(a, dim=0).values, torch.sort(b, dim=0).values
    return float((sa - sb).abs().mean(dim=0).sum())
