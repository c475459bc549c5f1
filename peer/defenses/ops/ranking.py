"""Ranking: argsort and argmin with ties broken by position, never at random."""

from __future__ import annotations

from collections.abc import Sequence


def argsort(values: Sequence[float], *, descending: bool = False) -> list[int]:
    """Positions sorted by value, ties by position (deterministic)."""
    sign = -1.0 if descending else 1.0
    return sorted(range(len(values)), key=lambda i: (sign * float(values[i]), i))


def argmin(values: Sequence[float]) -> int:
    """Position of the smallest value; the first one on ties."""
    return argsort(values)[0]
