"""Bulyan (El Mhamdi et al.) and DBulyan (Guo et al.'s decentralized Bulyan)."""

from __future__ import annotations

from typing import Any

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import Eq13Rule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("bulyan")
class Bulyan(Eq13Rule):
    r"""Bulyan over the candidates (own chunk and payloads, own first, then senders by id;
    the payloads only with ``own_candidate = false``), with n >= 4f + 3:

    1. Select :math:`\theta = n - 2f` candidates by Krum applied repeatedly (with the
       same f) to the candidates not yet selected.
    2. Per coordinate, average the :math:`\beta = \theta - 2f` selected values closest
       to the selected values' coordinate-wise median.

    El Mhamdi, Guerraoui & Rouault, "The Hidden Vulnerability of Distributed Learning in
    Byzantium" (ICML 2018); DBulyan of Guo et al. 2022, Eq. (15), is the same with
    the neighbors as candidates (|N_i| - 2 n_i selected, beta = |N_i| - 4 n_i).

    ``f`` defaults to Eq. (13) of Guo et al. 2022 (:func:`peer.defenses.ops.eq13_bound`, rho = 0.4,
    rho_central = 0.25: Bulyan needs n >= 4f + 3), capped at floor((n - 3) / 4).
    In stage 1, once fewer than f + 3 candidates remain, Krum's neighborhood is raised
    to 1 (see :func:`peer.defenses.ops.iterated_krum`); stage 1 uses Blanchard's
    n - f - 2 neighborhood, not DKrum's printed one.

    Chunk-level adaptation: candidates are the chunks of this index received this round
    plus the own chunk. Fallback: no payload -> the own chunk; :math:`n < 4f + 3` (an
    explicit f, or fewer than 3 candidates) -> the coordinate-wise trimmed mean with
    :math:`b = \min(f, \lfloor (n-1)/2 \rfloor)`. Payloads holding NaN/Inf are discarded
    first. ``guf_alpha`` then mixes the result with the own chunk.
    """

    def __init__(self, *, rho_central: float = 0.25, **kwargs: Any) -> None:
        super().__init__(rho_central=rho_central, **kwargs)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        c = self.candidates(x)
        n = c.shape[0]
        f = self.bound(ctx, kept.m, cap=(n - 3) // 4)
        if n < 4 * f + 3:
            return ops.trimmed_mean(c, min(f, (n - 1) // 2))
        theta = n - 2 * f
        selected = ops.iterated_krum(c, f, theta)
        return ops.closest_to_median_mean(c[sorted(selected)], theta - 2 * f)


@DEFENSES.register("dbulyan")
class DBulyan(Bulyan):
    r"""DBulyan of Guo et al. (Guo et al. 2022, Eq. (15)): ``bulyan`` over the
    neighbors' chunks (``own_candidate = false``), f = Eq. (13)'s bound, then the GUF
    mixing x <- 0.5 own + 0.5 R (Eq. (2), ``guf_alpha = 0.5``)."""

    accepts_pre = (
        "rows"  # only pre steps that keep the rows: the neighbours' rows are the candidates, row 0 is left out
    )

    own_candidate = False
    guf_alpha = 0.5
