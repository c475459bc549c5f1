"""Rules and pre steps whose only hyperparameter is f, the Byzantine candidates tolerated."""

from __future__ import annotations

from peer.defenses import ops
from peer.defenses.base import ChunkContext, PreStep, RobustDefense


def _resolve(f: int | None, ctx: ChunkContext, m: int, n: int) -> int:
    """``f``, or the per-node bound :func:`peer.defenses.ops.byzantine_bound` when None,
    clamped to n - 1 (so that at least one candidate remains)."""
    bound = f if f is not None else ops.byzantine_bound(ctx.degree, m)
    return min(bound, n - 1)


class BoundedRule(RobustDefense):
    """A rule with ``f`` (default: the per-node bound) that treats every row alike."""

    accepts_pre = "any"

    def __init__(self, *, f: int | None = None) -> None:
        self.f = ops.check_count("f", f)

    def f_for(self, ctx: ChunkContext, m: int, n: int) -> int:
        """f for m payloads and n rows, clamped to n - 1."""
        return _resolve(self.f, ctx, m, n)


class BoundedStep(PreStep):
    """A pre step with ``f`` (default: the per-node bound)."""

    def __init__(self, *, f: int | None = None) -> None:
        self.f = ops.check_count("f", f)

    def f_for(self, ctx: ChunkContext, n: int) -> int:
        """f for an n-row stack (n - 1 payloads), clamped to n - 1."""
        return _resolve(self.f, ctx, n - 1, n)
