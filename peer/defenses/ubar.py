"""UBAR: distance-based shortlist, then loss-based selection."""

from __future__ import annotations

import math

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("ubar")
class Ubar(RobustDefense):
    r"""UBAR's two stages, chunk by chunk.

    With own chunk :math:`x_c` and m payloads :math:`r_j`:

    1. *Distance stage*: :math:`S_1` = the :math:`\max(1, \lceil\rho m\rceil)` payloads with
       the smallest :math:`\lVert r_j - x_c\rVert` (ties: lower sender id first).
    2. *Performance stage*: :math:`S_2 = \{j \in S_1 : \ell(r_j) \le \ell(x_c)\}`; if empty,
       :math:`S_2` = the single payload of :math:`S_1` with the lowest loss.

    Result: :math:`x_c \leftarrow \alpha x_c + (1-\alpha)\frac{1}{|S_2|}\sum_{j\in S_2} r_j`.

    Guo et al., "Byzantine-resilient Decentralized Stochastic Gradient Descent", IEEE
    TCSVT 2022 (UBAR), Definition 3 and Algorithm 1, with the
    GUF mixing of Eq. (2). :math:`\rho` is the paper's :math:`\rho_i`, the fraction of a
    node's neighbors assumed benign: 0.4 by default, as Guo et al. 2022 sets it for every benign node
    (Sec. VI-A); Guo et al. 2022 writes the shortlist size as :math:`\rho_i|N_i|` without saying how
    it is rounded, byzemu rounds up.

    Chunk-level adaptation: distances are taken on the chunk and m counts the payloads
    received for this index (not |N_i|); :math:`\ell(\cdot)` is the loss of the peer's own
    model with the payload substituted for its own chunk c (the paper evaluates each
    neighbor's whole model). ``loss_sample`` picks the data: ``"current"`` (default) the
    mini-batch the peer trained on last this round (``ctx.sample_loss_with``), as Guo et al.'s
    Definition 3 scores :math:`l(x_{k,j}, \xi_{k,i})` on the iteration's stochastically
    selected sample; ``"fixed"`` the fixed local batch of ``ctx.loss_with`` (byzemu's
    behaviour before; less noisy, but a Byzantine peer could tune its payload to one
    known batch). The default follows the paper. Where the driver provides no current
    sample, ``"current"`` uses the fixed batch.

    Fallbacks: no payload -> the own chunk. ``ctx.loss_with`` None -> stage 2 is skipped
    (:math:`S_2 = S_1`). A non-finite loss never passes stage 2. Payloads holding NaN/Inf
    are discarded first.
    """

    def __init__(self, *, rho: float = 0.4, alpha: float = 0.5, loss_sample: str = "current") -> None:
        self.rho = ops.check_range("rho", rho, 0.0, 1.0, lo_open=True, hi_open=False)
        self.alpha = ops.check_range("alpha", alpha, 0.0, 1.0, lo_open=False, hi_open=False)
        self.loss_sample = ops.check_choice("loss_sample", loss_sample, ("current", "fixed"))

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        count = max(1, math.ceil(self.rho * kept.m - 1e-9))
        shortlist = ops.argsort(ops.sq_dists_to(x[1:], x[0]).tolist())[:count]
        chosen = shortlist
        loss_with = ctx.loss_with
        if self.loss_sample == "current" and ctx.sample_loss_with is not None:
            loss_with = ctx.sample_loss_with
        if loss_with is not None:
            loss_own = float(loss_with(kept.own))
            losses = [_finite_or_inf(loss_with(kept.received[j])) for j in shortlist]
            chosen = [j for j, loss in zip(shortlist, losses) if loss <= loss_own]
            if not chosen:
                chosen = [shortlist[ops.argmin(losses)]]
        return self.alpha * x[0] + (1.0 - self.alpha) * ops.mean_rows(x[1:], sorted(chosen))


def _finite_or_inf(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.inf
