"""FLTrust adapted to peers: the own update is the trusted root update."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict
from peer.defenses.registry import DEFENSES


@DEFENSES.register("fltrust")
class FLTrust(RobustDefense):
    r"""Trust-score weighting of neighbors' updates against the peer's own update.

    With :math:`b_c` = ``ctx.own_before`` (own chunk before this round's local training):

    .. math::

        g_0 = x_c - b_c,\quad g_j = r_j - b_c,\quad
        TS_j = \operatorname{ReLU}(\cos(g_j, g_0)),\quad
        \hat g_j = g_j \frac{\lVert g_0\rVert}{\lVert g_j\rVert}

    .. math::

        x_c \leftarrow b_c + \frac{g_0 + \sum_j TS_j\, \hat g_j}{1 + \sum_j TS_j}

    Cao et al., "FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping"
    (NDSS 2021). In FLTrust the server's update on its root dataset is the reference
    and the aggregate is :math:`\sum_j TS_j \hat g_j / \sum_j TS_j`.

    Peer adaptation: the peer's own local update is the trusted root update; unlike the
    paper it also enters the average, with trust 1 (= :math:`\cos(g_0, g_0)`), so the own
    progress is kept even when every neighbor is distrusted. A neighbor's update is
    measured from the peer's own pre-training chunk :math:`b_c`, so it includes the
    disagreement between the two models, not only the neighbor's training step.

    Fallbacks: no payload -> the own chunk. :math:`g_0 = 0` (no own update, e.g. the
    chunk did not move) or ``own_before`` None -> the own chunk (no reference to trust
    anyone by). :math:`g_j = 0` -> :math:`TS_j = 0`. Payloads holding NaN/Inf are
    discarded first.

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's granularity:
    one trust score per client from its whole update): :math:`TS_j` and the scale
    :math:`\lVert g_0\rVert / \lVert g_j\rVert` are computed once per round on the
    concatenation of the chunks j sent (``g_0`` on the same coordinates), then every
    chunk index is aggregated by the formula above with those :math:`TS_j` and scales.
    """

    granularities = ("chunk", "neighbor")

    def __init__(self, *, granularity: str | None = None) -> None:
        super().__init__(granularity=granularity)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        if ctx.own_before is None:
            return x[0]
        before = ops.flat(ctx.own_before)
        g0 = x[0] - before
        g0_norm = ops.norm(g0)
        if g0_norm == 0.0:
            return x[0]
        total, trust = g0.clone(), 1.0
        for r in x[1:]:
            g = r - before
            g_norm = ops.norm(g)
            ts = max(0.0, ops.cosine_similarity(g, g0)) if g_norm > 0 else 0.0
            if ts > 0.0:
                total += ts * g * (g0_norm / g_norm)
                trust += ts
        return before + total / trust

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        weights: dict[int, float] = {}
        scales: dict[int, float] = {}
        for e in evidence:
            if e.before is None:
                return None
            g0, g = e.own - e.before, e.payload - e.before
            g0_norm, g_norm = ops.norm(g0), ops.norm(g)
            ts = max(0.0, ops.cosine_similarity(g, g0)) if g_norm > 0 and g0_norm > 0 else 0.0
            if ts > 0.0:
                weights[e.sender], scales[e.sender] = ts, g0_norm / g_norm
        return Verdict(weights=weights, scales=scales)

    def combine_judged(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept, verdict: Verdict) -> torch.Tensor:
        if ctx.own_before is None:
            return x[0]
        before = ops.flat(ctx.own_before)
        total, trust = x[0] - before, 1.0
        for j, sender in enumerate(kept.senders):
            ts = verdict.weights.get(sender, 0.0)
            if ts > 0.0:
                total += ts * (x[j + 1] - before) * verdict.scales[sender]
                trust += ts
        return before + total / trust
