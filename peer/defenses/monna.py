"""MoNNA: mean of the own chunk's nearest neighbors."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import BoundedRule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("monna")
class MoNNA(BoundedRule):
    r"""Mean of the n - f candidates nearest to the own chunk (itself included):

    .. math:: x_c \leftarrow \frac{1}{n-f}\sum_{i \in \mathcal{N}_0} x_i,\qquad
              \mathcal{N}_0 = \text{the } n-f \text{ candidates nearest to } x_0

    Farhadkhani et al., "Robust Collaborative Learning with Linear Gradient Overhead"
    (ICML 2023), MoNNA. It is ByzFL 0.0.11 ``MoNNA(f, idx=0)``: the reference row is the
    peer's own chunk, as in the paper where each honest node trusts its own vector
    (tests/test_byzfl_parity.py). Ties by position (own chunk, then sender id).

    ``f`` defaults to the per-node bound :func:`peer.defenses.ops.byzantine_bound`,
    clamped to n - 1. Chunk-level adaptation: candidates are the own chunk and this
    index's payloads. Fallback: no payload -> the own chunk; n - f = 1 -> the own chunk.
    Payloads holding NaN/Inf are discarded first. Row 0 must be the own chunk: takes only
    row-keeping pre steps.
    """

    accepts_pre = "rows"

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        n = x.shape[0]
        f = self.f_for(ctx, kept.m, n)
        return ops.mean_rows(x, ops.nearest_rows(ops.pairwise_dists(x), 0, n - f))
