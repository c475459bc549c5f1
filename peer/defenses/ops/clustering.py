"""One-dimensional clustering: two medians, two means, and whether a gap statistic prefers two groups."""

from __future__ import annotations

import math
from collections.abc import Sequence

from peer.defenses.ops.ranking import argsort
from peer.defenses.ops.stacks import EPS


def two_median_1d(values: Sequence[float]) -> tuple[list[int], list[int]]:
    """Optimal 2-median clustering of scalars: the split of the sorted values into a low
    and a high group minimising the sum of absolute deviations from each group's median
    (exact: every split point is tried; ties: the earliest split). Returns the positions
    of (low group, high group); with fewer than two values the high group is empty."""
    order = argsort(values)
    if len(order) < 2:
        return order, []

    def cost(group: list[int]) -> float:
        vals = sorted(float(values[i]) for i in group)
        med = (vals[(len(vals) - 1) // 2] + vals[len(vals) // 2]) / 2
        return sum(abs(v - med) for v in vals)

    splits = range(1, len(order))
    best = min(splits, key=lambda s: (cost(order[:s]) + cost(order[s:]), s))
    return sorted(order[:best]), sorted(order[best:])


def kmeans2_1d(values: Sequence[float]) -> tuple[list[int], list[int], float]:
    """Optimal 2-means of scalars: (low group, high group, within sum of squares), by
    trying every split of the sorted values (ties: the earliest split)."""
    order = argsort(values)

    def ss(group: list[int]) -> float:
        vals = [float(values[i]) for i in group]
        mu = sum(vals) / len(vals)
        return sum((v - mu) ** 2 for v in vals)

    best = min(range(1, len(order)), key=lambda s: (ss(order[:s]) + ss(order[s:]), s))
    return sorted(order[:best]), sorted(order[best:]), ss(order[:best]) + ss(order[best:])


def gap_prefers_two(values: Sequence[float], *, refs: int, seed: int | Sequence[int]) -> bool:
    """Gap statistic (Tibshirani, Walther & Hastie 2001) on scalars, k in {1, 2}: True
    when two clusters fit, i.e. Gap(1) < Gap(2) - s_2, with ``refs`` uniform reference
    samples over [min, max] drawn from ``numpy.random.default_rng(seed)``."""
    import numpy as np

    vals = [float(v) for v in values]
    if len(vals) < 3 or max(vals) - min(vals) <= EPS:
        return False
    rng = np.random.default_rng(seed)

    def log_w(sample: Sequence[float]) -> tuple[float, float]:
        mu = sum(sample) / len(sample)
        w1 = sum((v - mu) ** 2 for v in sample)
        return math.log(max(w1, EPS)), math.log(max(kmeans2_1d(sample)[2], EPS))

    ref = [log_w(rng.uniform(min(vals), max(vals), len(vals)).tolist()) for _ in range(refs)]
    obs = log_w(vals)
    gaps = [sum(r[k] for r in ref) / refs - obs[k] for k in (0, 1)]
    sd2 = math.sqrt(sum((r[1] - sum(q[1] for q in ref) / refs) ** 2 for r in ref) / refs)
    return gaps[0] < gaps[1] - sd2 * math.sqrt(1 + 1 / refs)
