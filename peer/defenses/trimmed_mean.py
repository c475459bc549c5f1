"""Coordinate-wise trimmed mean (Yin et al.), BRIDGE-T (Yang & Bajwa) and Guo et al.'s BRIDGE."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.bounded import Eq13Rule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("trimmed_mean")
class TrimmedMean(Eq13Rule):
    r"""Coordinate-wise trimmed mean over the candidates (own chunk and payloads; the
    payloads only with ``own_candidate = false``).

    Over the n candidate values of each coordinate k, sorted
    :math:`v_{(1)} \le \dots \le v_{(n)}`:
    :math:`[R]_k = \frac{1}{n - 2f}\sum_{i=f+1}^{n-f} v_{(i)}`.
    Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
    Rates" (ICML 2018).

    ``f`` (values trimmed from each side) defaults to Eq. (13) of
    Guo et al. 2022 (:func:`peer.defenses.ops.eq13_bound`, rho = 0.4,
    rho_central = 0.5: a trimmed mean needs 2f < n), capped at floor((n - 1) / 2).

    Chunk-level adaptation: n counts the candidates of this index received this round.
    Fallback: no payload -> the own chunk; an explicit f with :math:`2f \ge n` -> the
    coordinate-wise median. Payloads holding NaN/Inf are discarded first. ``guf_alpha``
    then mixes the result with the own chunk.
    """

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        c = self.candidates(x)
        n = c.shape[0]
        b = self.bound(ctx, kept.m, cap=(n - 1) // 2)
        if 2 * b >= n:
            return ops.median(c)
        return ops.trimmed_mean(c, b)


@DEFENSES.register("dbridge")
class DBridge(TrimmedMean):
    r"""BRIDGE as Guo et al. run it (Guo et al. 2022, Sec. VI-A): the
    coordinate-wise trimmed mean of the neighbors' chunks (``own_candidate = false``) with
    b = Eq. (13)'s bound, then the GUF mixing x <- 0.5 own + 0.5 R (Eq. (2),
    ``guf_alpha = 0.5``). Guo et al. 2022 only cites BRIDGE [44] and the alpha; taking BRIDGE's
    screening as R of the GUF is our reading."""

    accepts_pre = (
        "rows"  # only pre steps that keep the rows: the neighbours' rows are the candidates, row 0 is left out
    )

    own_candidate = False
    guf_alpha = 0.5


@DEFENSES.register("bridge")
class BridgeT(RobustDefense):
    r"""BRIDGE-T: trim the neighbors' values per coordinate, then average with the own value.

    For each coordinate k, drop the b largest and the b smallest of the m received values
    :math:`[r_j]_k` and average what is left together with the own value (never trimmed):

    .. math::

        [x_c]_k \leftarrow
        \frac{1}{m - 2b + 1}\Big([x_c]_k + \sum_{j \in \mathcal{R}_k} [r_j]_k\Big)

    with :math:`\mathcal{R}_k` the m - 2b middle received values. Yang & Bajwa, "BRIDGE:
    Byzantine-Resilient Decentralized Gradient Descent" (2019), screening rule BRIDGE-T.
    (``trimmed_mean`` instead trims over own + received; ``dbridge`` is Guo et al.'s version.)

    ``b`` defaults to Eq. (13) of Guo et al. 2022
    (:func:`peer.defenses.ops.eq13_bound`, rho = 0.4, rho_central = 0.5), capped at
    floor((m - 1) / 2).

    Chunk-level adaptation: m counts the payloads of this index received this round
    (the paper: |N_j|). Fallback: no payload -> the own chunk; an explicit b with
    :math:`2b \ge m` -> the coordinate-wise median of own + received. Payloads holding
    NaN/Inf are discarded first.
    """

    accepts_pre = "rows"  # only pre steps that keep the rows: row 0 is the own chunk

    def __init__(
        self,
        *,
        b: int | None = None,
        rho: float = 0.4,
        rho_central: float = 0.5,
        guf_alpha: float | None = None,
    ) -> None:
        super().__init__(guf_alpha=guf_alpha)
        self.b = ops.check_count("b", b)
        self.rho = ops.check_range("rho", rho, 0.0, 1.0, lo_open=False, hi_open=False)
        self.rho_central = ops.check_range("rho_central", rho_central, 0.0, 1.0, lo_open=False, hi_open=False)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        m = kept.m
        b = ops.default_bound(self.b, ctx.degree, m, rho=self.rho, rho_central=self.rho_central, cap=(m - 1) // 2)
        if 2 * b >= m:
            return ops.median(x)
        middle = ops.trimmed_mean(x[1:], b) * (m - 2 * b)  # sum of the m - 2b middle values
        return (x[0] + middle) / (m - 2 * b + 1)
