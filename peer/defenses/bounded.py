"""Rules and pre steps built around f, the Byzantine candidates tolerated: those whose
only hyperparameter is f, and those whose f defaults to Eq. (13) of Guo et al. 2022 (``Eq13Rule``)."""

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


class Eq13Rule(RobustDefense):
    """A rule with ``f`` that defaults to Eq. (13) of Guo et al. 2022
    (:func:`peer.defenses.ops.eq13_bound`: ceil(|N_i| min(1 - rho, rho_central))), the
    candidates (``own_candidate``) and the GUF mixing (``guf_alpha``) of
    :class:`RobustDefense`. A subclass with another ``rho_central`` default declares just
    that parameter and passes the rest on (``**kwargs``: the registry reads on)."""

    accepts_pre = "any"  # any pre step: it treats every row alike

    def __init__(
        self,
        *,
        f: int | None = None,
        rho: float = 0.4,
        rho_central: float = 0.5,
        own_candidate: bool | None = None,
        guf_alpha: float | None = None,
    ) -> None:
        super().__init__(own_candidate=own_candidate, guf_alpha=guf_alpha)
        self.f = ops.check_count("f", f)
        self.rho = ops.check_range("rho", rho, 0.0, 1.0, lo_open=False, hi_open=False)
        self.rho_central = ops.check_range("rho_central", rho_central, 0.0, 1.0, lo_open=False, hi_open=False)

    def bound(self, ctx: ChunkContext, received: int, *, cap: int) -> int:
        """``f``, or Eq. (13)'s bound for ``received`` payloads capped at ``cap``."""
        return ops.default_bound(self.f, ctx.degree, received, rho=self.rho, rho_central=self.rho_central, cap=cap)


class BoundedStep(PreStep):
    """A pre step with ``f`` (default: the per-node bound)."""

    def __init__(self, *, f: int | None = None) -> None:
        self.f = ops.check_count("f", f)

    def f_for(self, ctx: ChunkContext, n: int) -> int:
        """f for an n-row stack (n - 1 payloads), clamped to n - 1."""
        return _resolve(self.f, ctx, n - 1, n)
