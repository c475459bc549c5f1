"""Krum and Multi-Krum (Blanchard et al.), and DKrum (Guo et al.'s decentralized Krum)."""

from __future__ import annotations

from typing import Any

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import Eq13Rule
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict, candidate_stack
from peer.defenses.registry import DEFENSES

NEIGHBOURHOODS = ("blanchard", "printed")


@DEFENSES.register("krum")
class Krum(Eq13Rule):
    r"""The candidate with the smallest sum of squared distances to its nearest others.

    Over the n candidates (own chunk :math:`x_0 = x_c` and payloads :math:`x_j = r_j`; the
    payloads only with ``own_candidate = false``):

    .. math::

        s(i) = \sum_{k \in \mathcal{N}_i} \lVert x_i - x_k\rVert^2, \qquad
        R = x_{i^*},\ i^* = \arg\min_i s(i)

    where :math:`\mathcal{N}_i` are the k candidates nearest to :math:`x_i` (ties: own
    chunk first, then lower sender id), with ``neighbourhood``:

    * ``"blanchard"`` (default): k = n - f - 2, Blanchard et al., "Machine Learning with
      Adversaries: Byzantine Tolerant Gradient Descent" (NeurIPS 2017);
    * ``"printed"``: k = n - f + 2, clamped to n - 1, as DKrum is printed in Guo et al.
      (2022, Sec. VI-A: "the |N_i| - n_i + 2 closest"). With the
      neighbors as the n = |N_i| candidates, Blanchard's rule would be |N_i| - n_i - 2; the
      printed +2 counts 4 more neighbors (all n - 1 others once n_i <= 3), so it is less
      selective. It is kept as printed; ``dkrum`` uses it.

    ``f`` (Byzantine candidates tolerated) defaults to Eq. (13) of Guo et al. 2022
    (:func:`peer.defenses.ops.eq13_bound`: ceil(|N_i| min(1 - rho, rho_central)), rho = 0.4,
    rho_central = 0.5, the ratio below which centralized Krum works, n > 2f + 2; Guo et al. 2022 gives
    no value), capped at n - 3 so that Blanchard's neighborhood keeps one candidate.

    Chunk-level adaptation: candidates are the chunks of this index only (own plus
    those received this round), so n varies per chunk and round.

    Fallback: no payload -> the own chunk; one candidate -> that candidate; k < 1 (too
    few candidates, e.g. two with Blanchard's rule) -> the coordinate-wise median of the
    candidates. Payloads holding NaN/Inf are discarded first. ``guf_alpha`` then mixes
    the result with the own chunk (:class:`~peer.defenses.base.RobustDefense`).

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's own
    granularity: Blanchard et al. score each worker's whole gradient): the candidates are
    the own vector and each sender's vector (the own vector with the sender's chunks
    substituted), n = 1 + senders, f from Eq. (13) with the senders as the payloads; the
    selected identities are trusted for every chunk index (the own chunk where no
    selected sender sent that index). k < 1 -> every chunk index falls back to the
    chunk-level rule.
    """

    granularities = ("chunk", "neighbor")
    neighbourhood_default = "blanchard"

    def __init__(self, *, neighbourhood: str | None = None, granularity: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_granularity(granularity)
        self.neighbourhood = ops.check_choice(
            "neighbourhood", neighbourhood or self.neighbourhood_default, NEIGHBOURHOODS
        )

    def _k(self, n: int, f: int) -> int:
        if self.neighbourhood == "printed":
            return min(n - f + 2, n - 1)
        return n - f - 2

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        c = self.candidates(x)
        n = c.shape[0]
        if n == 1:
            return c[0].clone()
        f = self.bound(ctx, kept.m, cap=n - 3)
        k = self._k(n, f)
        if k < 1:
            return ops.median(c)
        scores = ops.neighborhood_scores(ops.pairwise_sq_dists(c), k)
        return self._select(c, scores, f)

    def _select(self, x: torch.Tensor, scores: list[float], f: int) -> torch.Tensor:
        return x[ops.argmin(scores)].clone()

    def _pick(self, scores: list[float], f: int) -> list[int]:
        """Positions of the candidates ``_select`` keeps (for the neighbor-level verdict)."""
        return [ops.argmin(scores)]

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        x = candidate_stack(view, evidence)
        ids = [-1, *(e.sender for e in evidence)]  # -1: the own vector
        if not self.own_candidate:
            x, ids = x[1:], ids[1:]
        n = x.shape[0]
        if n <= 1:
            return Verdict(weights={s: 1.0 for s in ids if s >= 0}, own=1.0 if -1 in ids else 0.0)
        f = ops.default_bound(self.f, view.degree, len(evidence), rho=self.rho, rho_central=self.rho_central, cap=n - 3)
        k = self._k(n, f)
        if k < 1:
            return None
        picked = [ids[i] for i in self._pick(ops.neighborhood_scores(ops.pairwise_sq_dists(x), k), f)]
        return Verdict(weights={s: 1.0 for s in picked if s >= 0}, own=1.0 if -1 in picked else 0.0)


@DEFENSES.register("multi_krum")
class MultiKrum(Krum):
    r"""Average of the ``m_select`` candidates with the lowest Krum scores.

    Same scores as ``krum``; :math:`R = \frac{1}{M}\sum_{i \in S} x_i` where S holds the
    M = ``m_select`` lowest-scoring candidates (ties by position), default M = n - f,
    clamped to n. Blanchard et al. (NeurIPS 2017), Multi-Krum.

    Fallback as ``krum``: no payload -> own chunk; k < 1 -> coordinate-wise median.
    """

    def __init__(self, *, m_select: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.m_select = ops.check_count("m_select", m_select, minimum=1)

    def _select(self, x: torch.Tensor, scores: list[float], f: int) -> torch.Tensor:
        return ops.mean_rows(x, self._pick(scores, f))

    def _pick(self, scores: list[float], f: int) -> list[int]:
        n = len(scores)
        count = min(n, self.m_select if self.m_select is not None else n - f)
        return sorted(ops.argsort(scores)[:count])


@DEFENSES.register("dkrum")
class DKrum(Krum):
    r"""DKrum of Guo et al. (Guo et al. 2022, Sec. VI-A): ``krum`` over the
    neighbors' chunks only (``own_candidate = false``), the printed neighborhood
    k = |N_i| - n_i + 2 (``neighbourhood = "printed"``), n_i from Eq. (13), and the GUF
    mixing x <- 0.5 own + 0.5 R (Eq. (2), ``guf_alpha = 0.5``). Every parameter of
    ``krum`` can still be set.
    """

    accepts_pre = (
        "rows"  # only pre steps that keep the rows: the neighbours' rows are the candidates, row 0 is left out
    )

    own_candidate = False
    guf_alpha = 0.5
    neighbourhood_default = "printed"
