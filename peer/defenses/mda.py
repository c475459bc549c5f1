"""MDA: minimum-diameter averaging."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import BoundedRule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("mda")
class MinimumDiameterAveraging(BoundedRule):
    r"""Mean of the n - f candidates whose set has the smallest diameter:

    .. math:: S^* = \arg\min_{|S| = n-f}\ \max_{i,k \in S}\lVert x_i - x_k\rVert,\qquad
              x_c \leftarrow \frac{1}{n-f}\sum_{i\in S^*} x_i

    El Mhamdi et al., "Genuinely Distributed Byzantine Machine Learning" (PODC 2020),
    MDA. Matches ByzFL 0.0.11 ``MDA`` (tests/test_byzfl_parity.py). Ties: the first
    subset in lexicographic order (own chunk first).

    Cost: all C(n, n - f) subsets are scanned (n = degree + 1 is a handful: 126 subsets
    for n = 9, f = 4). ``f`` defaults to the per-node bound
    :func:`peer.defenses.ops.byzantine_bound`, clamped to n - 1.

    Chunk-level adaptation: candidates are the own chunk and this index's payloads.
    Fallback: no payload -> the own chunk; n - f = 1 -> any single candidate has diameter
    0, so the own chunk (first subset) is kept. Payloads holding NaN/Inf are discarded
    first. Takes any pre-step output.
    """

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        n = x.shape[0]
        f = self.f_for(ctx, kept.m, n)
        return ops.mean_rows(x, ops.min_diameter_subset(x, n - f))
