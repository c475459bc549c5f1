"""Geometric median by smoothed Weiszfeld iterations."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("geomed")
class GeometricMedian(RobustDefense):
    r"""The point minimising the sum of Euclidean distances to the n = m + 1 candidates,

    .. math:: x_c \leftarrow \arg\min_z \sum_{i=0}^{m} \lVert z - x_i\rVert ,

    approximated by the smoothed Weiszfeld iteration (:func:`peer.defenses.ops.weiszfeld`):
    :math:`z \leftarrow \sum_i \beta_i x_i / \sum_i \beta_i`,
    :math:`\beta_i = 1/\max(\varepsilon, \lVert x_i - z\rVert)`, from z = 0, at most
    ``max_iter`` times, stopping once a step moves z by at most ``tol (1 + ||z||)``.
    Weiszfeld (1937); smoothed as in Pillutla, Kakade & Harchaoui, "Robust Aggregation
    for Federated Learning" (RFA, IEEE TSP 2022). With ``tol = 0`` it equals ByzFL 0.0.11
    ``GeometricMedian(nu=eps, T=max_iter)`` (tests/test_byzfl_parity.py); ByzFL's defaults
    (nu = 0.1, T = 3) are too coarse for model chunks, whose distances are often below
    0.1, so the defaults here are eps = 1e-8, max_iter = 100, tol = 1e-10.

    Chunk-level adaptation: the candidates are the own chunk and the payloads of this
    index received this round. Fallback: no payload -> the own chunk; one payload -> a
    point on the segment between the two (every such point is a geometric median; the
    iteration from 0 ends at the weighted mean of the first step). Payloads holding
    NaN/Inf are discarded first. Takes any pre-step output.
    """

    accepts_pre = "any"

    def __init__(self, *, eps: float = 1e-8, max_iter: int = 100, tol: float = 1e-10) -> None:
        self.eps = ops.check_positive("eps", eps)
        self.max_iter = ops.check_count("max_iter", max_iter, minimum=1)
        self.tol = ops.check_nonnegative("tol", tol)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        return ops.weiszfeld(x, eps=self.eps, max_iter=self.max_iter, tol=self.tol)
