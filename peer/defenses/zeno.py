"""Zeno: rank received chunks by a loss-descent score with a distance penalty."""

from __future__ import annotations

import math

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("zeno")
class Zeno(RobustDefense):
    r"""Keep the received chunks with the best Zeno scores and average them with the own chunk.

    .. math::

        \text{score}_j = \ell(x_c) - \ell(r_j) - \rho\lVert r_j - x_c\rVert^2, \qquad
        x_c \leftarrow \frac{1}{|K| + 1}\Big(x_c + \sum_{j \in K} r_j\Big)

    with K the ``keep`` highest-scoring payloads (ties: lower sender id first), default
    :math:`\max(1, m - f)`, clamped to m; ``f`` defaults to the per-node bound
    :func:`peer.defenses.ops.byzantine_bound`.

    Xie, Koyejo & Gupta, "Zeno: Distributed Stochastic Gradient Descent with
    Suspicion-based Fault-tolerance" (ICML 2019). The paper scores a gradient g by
    :math:`f_r(x) - f_r(x - \gamma g) - \rho\lVert g\rVert^2` on a small validation batch
    at the server.

    Peer adaptation: the "candidate step" is the received chunk itself, i.e. moving the
    own chunk :math:`x_c` to :math:`r_j`; :math:`\ell(r_j)` = ``ctx.loss_with`` (own model
    with :math:`r_j` substituted for chunk c, fixed local batch) and the penalty uses the
    chunk's squared deviation :math:`\lVert r_j - x_c\rVert^2` (so ``rho`` is per squared
    parameter distance, not per squared gradient norm).

    Fallbacks: no payload -> the own chunk. ``ctx.loss_with`` None -> the loss terms are
    dropped (score = :math:`-\rho\lVert r_j - x_c\rVert^2`, i.e. keep the closest). A
    non-finite loss scores :math:`-\infty`. Payloads holding NaN/Inf are discarded first.
    """

    def __init__(self, *, rho: float = 0.0005, keep: int | None = None, f: int | None = None) -> None:
        self.rho = ops.check_nonnegative("rho", rho)
        self.keep = ops.check_count("keep", keep, minimum=1)
        self.f = ops.check_count("f", f)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        m = kept.m
        penalty = (self.rho * ops.sq_dists_to(x[1:], x[0])).tolist()
        if ctx.loss_with is None:
            scores = [-p for p in penalty]
        else:
            loss_own = float(ctx.loss_with(kept.own))
            scores = []
            for r, p in zip(kept.received, penalty):
                s = loss_own - float(ctx.loss_with(r)) - p
                scores.append(s if math.isfinite(s) else -math.inf)
        f = self.f if self.f is not None else ops.byzantine_bound(ctx.degree, m)
        count = min(m, self.keep if self.keep is not None else max(1, m - f))
        chosen = sorted(ops.argsort(scores, descending=True)[:count])
        return ops.mean_rows(x, [0, *(j + 1 for j in chosen)])
