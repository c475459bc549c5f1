"""Coordinate-wise median (Yin et al.) and DMedian (Guo et al.'s decentralized median)."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("median")
class CoordinateMedian(RobustDefense):
    r"""Coordinate-wise median over the candidates (own chunk and payloads; the payloads
    only with ``own_candidate = false``).

    :math:`[R]_k = \operatorname{median}\{[x_c]_k, [r_1]_k, \dots, [r_m]_k\}` for every
    coordinate k; for an even count the mean of the two middle values (the true median,
    unlike ``torch.median`` which returns the lower one). Yin et al., "Byzantine-Robust
    Distributed Learning: Towards Optimal Statistical Rates" (ICML 2018).

    Chunk-level adaptation: the median runs over the chunks of this index received this
    round plus the own chunk. Fallback: no payload -> the own chunk; one payload (own a
    candidate) -> the mean of the own chunk and the payload (the median of two values).
    Payloads holding NaN/Inf are discarded first. ``guf_alpha`` then mixes the result with
    the own chunk (:class:`~peer.defenses.base.RobustDefense`).
    """

    accepts_pre = "any"  # any pre step: it treats every row alike

    def __init__(self, *, own_candidate: bool | None = None, guf_alpha: float | None = None) -> None:
        super().__init__(own_candidate=own_candidate, guf_alpha=guf_alpha)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        return ops.median(self.candidates(x))


@DEFENSES.register("dmedian")
class DMedian(CoordinateMedian):
    r"""DMedian of Guo et al. (Guo et al. 2022, Eq. (14)): the marginal median of
    the neighbors' chunks (``own_candidate = false``), then the GUF mixing
    x <- 0.5 own + 0.5 R (Eq. (2), ``guf_alpha = 0.5``)."""

    accepts_pre = (
        "rows"  # only pre steps that keep the rows: the neighbours' rows are the candidates, row 0 is left out
    )

    own_candidate = False
    guf_alpha = 0.5
