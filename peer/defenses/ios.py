"""IOS: iterative outlier scissor around the weighted average."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
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
    """

    accepts_pre = "rows"  # only pre steps that keep the rows: row 0 is the own chunk

    def __init__(self, *, f: int | None = None) -> None:
        self.f = ops.check_count("f", f)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        f = self.f if self.f is not None else ops.byzantine_bound(ctx.degree, kept.m)
        active = list(range(1, x.shape[0]))
        for _ in range(min(f, len(active))):
            center = ops.mean_rows(x, [0, *active])
            dists = ops.sq_dists_to(x[active], center).tolist()
            del active[ops.argsort(dists, descending=True)[0]]
        return ops.mean_rows(x, [0, *active])
