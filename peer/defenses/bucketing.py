"""Bucketing: average random buckets of s rows, a pre-aggregation step."""

from __future__ import annotations

import numpy as np
import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, PreStep
from peer.defenses.registry import PRE_STEPS


@PRE_STEPS.register("bucketing")
class Bucketing(PreStep):
    r"""Shuffle the n rows, cut them into ceil(n / s) buckets of s consecutive rows (the
    last one may be smaller) and replace each bucket by its mean:

    .. math:: y_b = \frac{1}{|B_b|}\sum_{i \in B_b} x_{\pi(i)}

    Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
    Bucketing" (ICLR 2022), Algorithm 1. As ByzFL 0.0.11 ``Bucketing`` (same output for
    the same permutation; tests/test_byzfl_parity.py).

    The permutation is drawn from ``numpy.random.default_rng([seed, node, round,
    index])``, so a run is deterministic whatever the timing. The output has fewer rows
    and none of them is the own chunk (``keeps_rows = False``): only rules that treat
    every row alike may follow (see docs/DEFENSES.md, *Composition*).

    Chunk-level adaptation: the rows are the own chunk and the payloads of this index
    received this round. Edge cases: s = 1 -> the rows in shuffled order; s >= n -> one
    bucket, the mean of all rows.
    """

    keeps_rows = False

    def __init__(self, *, s: int = 2, seed: int = 0) -> None:
        self.s = ops.check_count("s", s, minimum=1)
        self.seed = ops.check_count("seed", seed)

    def apply(self, x: torch.Tensor, ctx: ChunkContext) -> torch.Tensor:
        order = np.random.default_rng([self.seed, ctx.node, ctx.round, ctx.index]).permutation(x.shape[0])
        return ops.bucket_means(x[torch.from_numpy(order)], self.s)
