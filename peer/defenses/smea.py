"""SMEA: smallest maximum eigenvalue averaging."""

from __future__ import annotations

import itertools

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import BoundedRule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("smea")
class SmallestMaxEigenvalueAveraging(BoundedRule):
    r"""Mean of the n - f candidates whose scatter matrix has the smallest top eigenvalue:

    .. math::

        S^* = \arg\min_{|S| = n-f} \lambda_{\max}\Big(\sum_{i\in S}(x_i-\bar x_S)(x_i-\bar x_S)^\top\Big),
        \qquad x_c \leftarrow \bar x_{S^*}

    Allouah et al., "On the Privacy-Robustness-Utility Trilemma in Distributed Learning"
    (ICML 2023), SMEA. Ties: the first subset in lexicographic order (own chunk first).

    Difference from ByzFL 0.0.11 ``SMEA``: ByzFL estimates each eigenvalue with one power
    iteration from a random start (random and inexact for d > 1); here it is exact
    (:func:`peer.defenses.ops.top_eigen`). For d = 1 the two agree exactly
    (tests/test_byzfl_parity.py). Cost: C(n, n - f) subsets, each an (n-f) x (n-f)
    eigen-decomposition; n = degree + 1 is a handful.

    ``f`` defaults to the per-node bound :func:`peer.defenses.ops.byzantine_bound`,
    clamped to n - 1. Chunk-level adaptation: candidates are the own chunk and this
    index's payloads. Fallback: no payload -> own chunk; n - f = 1 -> the own chunk
    (every single candidate has eigenvalue 0). Payloads holding NaN/Inf are discarded
    first. Takes any pre-step output.
    """

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        n = x.shape[0]
        f = self.f_for(ctx, kept.m, n)
        best: tuple[int, ...] = (0,)
        best_value = float("inf")
        for subset in itertools.combinations(range(n), n - f):
            rows = x[list(subset)]
            value, _ = ops.top_eigen(rows - rows.mean(dim=0))
            if value < best_value:
                best, best_value = subset, value
        return ops.mean_rows(x, best)
