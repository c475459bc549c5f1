"""NNM: nearest-neighbour mixing, a pre-aggregation step."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext
from peer.defenses.bounded import BoundedStep
from peer.defenses.registry import PRE_STEPS


@PRE_STEPS.register("nnm")
class NearestNeighborMixing(BoundedStep):
    r"""Replace every row by the mean of its n - f nearest rows (itself included):

    .. math:: y_i = \frac{1}{n-f}\sum_{k \in \mathcal{N}_i} x_k,\qquad
              \mathcal{N}_i = \text{the } n-f \text{ rows nearest to } x_i

    over the n = m + 1 rows of the stack (own chunk and payloads). Allouah et al.,
    "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity" (AISTATS
    2023), Algorithm 1. Matches ByzFL 0.0.11 ``NNM`` (tests/test_byzfl_parity.py).

    ``f`` defaults to the per-node bound :func:`peer.defenses.ops.byzantine_bound`; it is
    clamped to n - 1 so that each row mixes at least itself. Row i of the output stands
    for row i of the input (``keeps_rows``), so row 0 is the own chunk's mixed value.

    Chunk-level adaptation: the n rows are the own chunk and the payloads of this index
    received this round. Edge cases: one payload (n = 2) with f >= 1 -> every row stays
    as it is (k = 1: only itself); f = 0 -> every row becomes the mean of all.
    """

    keeps_rows = True

    def apply(self, x: torch.Tensor, ctx: ChunkContext) -> torch.Tensor:
        n = x.shape[0]
        k = n - self.f_for(ctx, n)
        d = ops.pairwise_dists(x)
        return torch.stack([ops.mean_rows(x, ops.nearest_rows(d, i, k)) for i in range(n)])
