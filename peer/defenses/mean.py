"""Mean of the finite candidates (the plain average behind pre-aggregation steps)."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("mean")
class Mean(RobustDefense):
    r""":math:`x_c \leftarrow \frac{1}{m+1}(x_c + \sum_j r_j)` over the payloads holding
    no NaN/Inf: ``cdl``'s average with the template's preamble, so that it can follow
    pre-aggregation steps ("ARC then average" is ARC's setting in Allouah et al. 2024;
    "NNM then average" the baseline of Allouah et al. 2023). Matches ByzFL 0.0.11
    ``Average``. Fallback: no payload -> the own chunk. Takes any pre-step output.
    """

    accepts_pre = "any"

    def __init__(self) -> None:
        pass

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        return ops.mean_rows(x)
