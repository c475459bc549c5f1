"""Meamed: per coordinate, the mean of the values nearest to the median."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import BoundedRule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("meamed")
class MeanAroundMedian(BoundedRule):
    r"""Coordinate-wise mean of the n - f values closest to the coordinate's median:

    .. math:: [x_c]_k \leftarrow \frac{1}{n-f}\sum_{i \in T_k}[x_i]_k,\qquad
              T_k = \text{the } n-f \text{ indices minimising } |[x_i]_k - \operatorname{med}_k|

    Xie, Koyejo & Gupta, "Generalized Byzantine-tolerant SGD" (arXiv:1802.10116, 2018),
    mean-around-median. Matches ByzFL 0.0.11 ``Meamed`` (tests/test_byzfl_parity.py);
    the median of an even count is the mean of the two middle values, as numpy's.
    Ties in distance: the earlier row wins (:func:`peer.defenses.ops.closest_to_median_mean`).

    ``f`` defaults to the per-node bound :func:`peer.defenses.ops.byzantine_bound`,
    clamped to n - 1. Chunk-level adaptation: candidates are the own chunk and this
    index's payloads. Fallback: no payload -> own chunk; one payload (n = 2) with f >= 1
    -> per coordinate the value nearer the median, i.e. the own value on ties (both are
    equally near). Payloads holding NaN/Inf are discarded first. Takes any pre-step output.
    """

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        n = x.shape[0]
        f = self.f_for(ctx, kept.m, n)
        return ops.closest_to_median_mean(x, n - f)
