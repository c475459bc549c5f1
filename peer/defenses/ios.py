"""IOS: iterative outlier scissor around the weighted average."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict, candidate_stack
from peer.defenses.registry import DEFENSES


@DEFENSES.register("ios")
class IterativeOutlierScissor(RobustDefense):
    r"""Drop, f times, the received chunk farthest from the current weighted average.

    With uniform weights over the own chunk :math:`x_c` and the payloads, start with
    :math:`S = \{1..m\}` and repeat :math:`\min(f, m)` times:

    .. math::

        \bar x = \frac{1}{|S|+1}\Big(x_c + \sum_{j\in S} r_j\Big), \qquad
        S \leftarrow S \setminus \{\arg\max_{j\in S} \lVert r_j - \bar x\rVert\}

    (the own chunk is never dropped; ties: lower sender id dropped first), then
    :math:`x_c \leftarrow \frac{1}{|S|+1}(x_c + \sum_{j\in S} r_j)`.

    Wu, Chen & Ling, "Byzantine-resilient decentralized stochastic optimization with
    robust aggregation rules" (IEEE TSP 2023), IOS. ``f`` defaults to the per-node bound
    :func:`peer.defenses.ops.byzantine_bound`.

    Chunk-level adaptation: the paper's doubly-stochastic mixing weights become uniform
    weights over the own chunk and the m payloads of this index received this round.

    Fallback: no payload -> the own chunk; :math:`m \le f` -> every payload is dropped
    and the own chunk is kept (all of them may be Byzantine). Payloads holding NaN/Inf
    are discarded first.

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's own
    granularity: Wu et al. drop whole neighbor models): the same scissor runs once per
    round over the own vector and each sender's vector (the own vector with the sender's
    chunks substituted), with m = the senders and f from the per-node bound; the senders
    left in S are trusted for every chunk index, which is then the mean of the own chunk
    and the trusted senders' payloads of that index (the own chunk alone where none of
    them sent it).
    """

    accepts_pre = "rows"  # only pre steps that keep the rows: row 0 is the own chunk
    granularities = ("chunk", "neighbor")

    def __init__(self, *, f: int | None = None, granularity: str | None = None) -> None:
        super().__init__(granularity=granularity)
        self.f = ops.check_count("f", f)

    def _scissor(self, x: torch.Tensor, f: int) -> list[int]:
        """Rows of ``x`` (row 0 the own one, never dropped) left after dropping, f times,
        the row farthest from the mean of own + the rows still in."""
        active = list(range(1, x.shape[0]))
        for _ in range(min(f, len(active))):
            center = ops.mean_rows(x, [0, *active])
            dists = ops.sq_dists_to(x[active], center).tolist()
            del active[ops.argsort(dists, descending=True)[0]]
        return active

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        f = self.f if self.f is not None else ops.byzantine_bound(ctx.degree, kept.m)
        return ops.mean_rows(x, [0, *self._scissor(x, f)])

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict:
        f = self.f if self.f is not None else ops.byzantine_bound(view.degree, len(evidence))
        kept = self._scissor(candidate_stack(view, evidence), f)
        return Verdict(weights={evidence[row - 1].sender: 1.0 for row in kept})
