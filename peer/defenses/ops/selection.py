"""Selection by distances: the smallest-diameter subset and Krum's scores."""

from __future__ import annotations

import math

import torch

from peer.defenses.ops.distances import pairwise_dists, pairwise_sq_dists
from peer.defenses.ops.ranking import argmin


def min_diameter_subset(x: torch.Tensor, k: int) -> tuple[int, ...]:
    """The ``k`` rows of smallest diameter (largest pairwise distance), over all
    C(n, k) subsets in lexicographic order (the first one on ties)."""
    import itertools

    d = pairwise_dists(x)
    best, best_diam = tuple(range(k)), math.inf
    for subset in itertools.combinations(range(x.shape[0]), k):
        diam = max((float(d[a, b]) for a, b in itertools.combinations(subset, 2)), default=0.0)
        if diam < best_diam:
            best, best_diam = subset, diam
    return best


def neighborhood_scores(d2: torch.Tensor | list[list[float]], k: int) -> list[float]:
    """For each candidate, the sum of its squared distances to its ``k`` nearest other
    candidates, from a ``(n, n)`` squared-distance matrix (a tensor, or its rows as
    lists of floats; ``1 <= k <= n - 1``), summed in ascending order."""
    n = len(d2)
    if not 1 <= k <= n - 1:
        raise ValueError(f"neighborhood k={k} must be in [1, {n - 1}]")
    rows = d2.tolist() if isinstance(d2, torch.Tensor) else d2  # the values of float(d2[i, j])
    scores = []
    for i in range(n):
        others = sorted(rows[i][j] for j in range(n) if j != i)
        scores.append(sum(others[:k]))
    return scores


def krum_feasible(n: int, f: int) -> bool:
    """Whether Krum's neighborhood ``n - f - 2`` holds at least one other candidate."""
    return n - f - 2 >= 1


def krum_scores(d2: torch.Tensor | list[list[float]], f: int) -> list[float]:
    """Krum scores (Blanchard et al., NeurIPS 2017): for each of the n candidates, the sum of
    its squared distances to its ``n - f - 2`` nearest other candidates (requires
    ``n - f - 2 >= 1``)."""
    n = len(d2)
    if not krum_feasible(n, f):
        raise ValueError(f"Krum needs n - f - 2 >= 1, got n={n}, f={f}")
    return neighborhood_scores(d2, n - f - 2)


def iterated_krum(x: torch.Tensor, f: int, count: int) -> list[int]:
    """Bulyan's first phase: pick ``count`` rows by repeatedly applying Krum (same f) to the
    rows not yet picked; returns their positions in the order picked. Once fewer than
    f + 3 rows remain, Krum's neighborhood ``n' - f - 2`` is raised to 1 (the nearest
    other row); a single remaining row is taken as it is."""
    remaining = list(range(x.shape[0]))
    picked: list[int] = []
    d2 = pairwise_sq_dists(x)
    while len(picked) < count and remaining:
        if len(remaining) == 1:
            best = remaining[0]
        else:
            k = max(1, len(remaining) - f - 2)
            sub = d2[remaining][:, remaining]
            best = remaining[argmin(neighborhood_scores(sub, k))]
        picked.append(best)
        remaining.remove(best)
    return picked
