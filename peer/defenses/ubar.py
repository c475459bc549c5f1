"""UBAR: distance-based shortlist, then loss-based selection."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict
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

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's granularity:
    Definition 3 compares and evaluates each neighbor's whole model): m = the senders of
    the round, the distance of j is taken on the chunks j sent, :math:`\ell(r_j)` is the
    loss of the own model with all of j's chunks substituted; every chunk index is then
    :math:`\alpha x_c + (1-\alpha)` the mean of the chunks :math:`S_2`'s senders sent for
    it (the own chunk where none of them did).
    """

    granularities = ("chunk", "neighbor")

    def __init__(
        self, *, rho: float = 0.4, alpha: float = 0.5, loss_sample: str = "current", granularity: str | None = None
    ) -> None:
        super().__init__(granularity=granularity)
        self.rho = ops.check_range("rho", rho, 0.0, 1.0, lo_open=True, hi_open=False)
        self.alpha = ops.check_range("alpha", alpha, 0.0, 1.0, lo_open=False, hi_open=False)
        self.loss_sample = ops.check_choice("loss_sample", loss_sample, ("current", "fixed"))

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        loss_with = ctx.loss_with
        if self.loss_sample == "current" and ctx.sample_loss_with is not None:
            loss_with = ctx.sample_loss_with
        chosen = self._choose(ops.sq_dists_to(x[1:], x[0]).tolist(), loss_with, kept.own, kept.received)
        return self.alpha * x[0] + (1.0 - self.alpha) * ops.mean_rows(x[1:], sorted(chosen))

    def _choose(
        self,
        dists: list[float],
        loss_with: Callable[[torch.Tensor], float] | None,
        own: torch.Tensor,
        candidates: Sequence[torch.Tensor],
    ) -> list[int]:
        """Stages 1 and 2: positions (in ``candidates``) of S_2."""
        count = max(1, math.ceil(self.rho * len(dists) - 1e-9))
        shortlist = ops.argsort(dists)[:count]
        if loss_with is None:
            return shortlist
        loss_own = float(loss_with(own))
        losses = [_finite_or_inf(loss_with(candidates[j])) for j in shortlist]
        chosen = [j for j, loss in zip(shortlist, losses) if loss <= loss_own]
        return chosen or [shortlist[ops.argmin(losses)]]

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        if not evidence:
            return Verdict(weights={})
        loss_with = view.loss_with
        if self.loss_sample == "current" and view.sample_loss_with is not None:
            loss_with = view.sample_loss_with
        dists = [float((e.payload - e.own).pow(2).sum()) for e in evidence]
        chosen = self._choose(dists, loss_with, view.own, [e.whole() for e in evidence])
        return Verdict(weights={evidence[j].sender: 1.0 for j in chosen}, own=0.0)

    def combine_judged(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept, verdict: Verdict) -> torch.Tensor:
        rows = [j for j, s in enumerate(kept.senders) if verdict.weights.get(s, 0.0) > 0.0]
        if not rows:
            return x[0]
        return self.alpha * x[0] + (1.0 - self.alpha) * ops.mean_rows(x[1:], rows)


def _finite_or_inf(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.inf
