"""DFLDetector: FLDetector's consistency check run by every peer (DFL-Dual's baseline)."""

from __future__ import annotations

from collections import deque

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict
from peer.defenses.registry import DEFENSES


@DEFENSES.register("dfl_detector")
class DFLDetector(RobustDefense):
    r"""Flag neighbors whose updates are inconsistent with their predicted updates, then
    average the own chunk with the unflagged payloads.

    Zhang, Cao, Jia & Gong, "FLDetector: Defending Federated Learning Against Model
    Poisoning Attacks via Detecting Malicious Clients" (KDD 2022), [37] in
    Sun et al. 2024 ("DFLDetector": each client aggregates
    only the neighbors it detects as benign). For chunk index c in round t, with
    :math:`b_c` = ``ctx.own_before``:

    * updates :math:`g_j = r_j - b_c` (neighbors) and :math:`g_0 = x_c - b_c` (own);
    * prediction :math:`\hat g_j = g_j^{t'} + \hat H\,(b_c^{t} - b_c^{t'})`, where
      :math:`t'` is the last round j sent chunk c and :math:`\hat H` the L-BFGS
      approximation (:func:`peer.defenses.ops.lbfgs_hvp`) from the last ``window``
      own model differences :math:`\Delta w = b_c^{t} - b_c^{t-1}` and own update
      differences :math:`\Delta g = g_0^{t} - g_0^{t-1}` of this index;
    * distance :math:`d_j = \lVert \hat g_j - g_j\rVert`, normalised by
      :math:`\sum_k d_k` over this index's senders with a prediction; a sender's
      suspicious score is the mean of its last ``window`` normalised distances;
    * once ``warmup`` rounds have passed and at least 3 senders have scores, if the gap
      statistic (``gap_refs`` reference samples) prefers two clusters of the scores,
      2-means splits them and the high-score cluster is flagged for the rest of the run.

    Chunk-level adaptation: the paper's server sees every client's whole update each
    round; a peer sees a neighbor's chunk c only in the rounds that neighbor sends it,
    so predictions use the last round the chunk came (t') and the curvature is learnt
    from the own chunk's history (the only model trajectory a peer knows). Flags are
    per neighbor, from evidence pooled over all chunk indices. FLDetector restarts
    training after removing clients; a peer just ignores the flagged neighbors.

    Fallbacks: no payload, or all flagged -> own chunk; ``own_before`` None -> mean of
    the unflagged (no prediction). Payloads holding NaN/Inf are discarded first. Takes
    no pre step.

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's granularity:
    one distance per client from its whole update): predictions stay per chunk index,
    but a sender's distance in a round is
    :math:`d_j = (\sum_c \lVert \hat g_{j,c} - g_{j,c}\rVert^2)^{1/2}` over all the
    chunks it sent with a prediction, normalised over the round's senders: one score
    entry per sender and round, one detection per round.
    """

    granularities = ("chunk", "neighbor")

    def __init__(
        self, *, window: int = 10, warmup: int = 5, gap_refs: int = 10, granularity: str | None = None
    ) -> None:
        super().__init__(granularity=granularity)
        self.window = ops.check_count("window", window, minimum=1)
        self.warmup = ops.check_count("warmup", warmup)
        self.gap_refs = ops.check_count("gap_refs", gap_refs, minimum=1)
        self.flagged: set[int] = set()
        #: per sender: its last ``window`` normalised distances (the suspicious score is their mean)
        self.scores: dict[int, deque[float]] = {}
        #: per chunk index: (round, b_c, g_0) of the last round seen, and the L-BFGS pairs
        self._own: dict[int, tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._pairs: dict[int, deque[tuple[torch.Tensor, torch.Tensor]]] = {}
        #: per (sender, index): (round, b_c, g_j) when it last sent the chunk
        self._last: dict[tuple[int, int], tuple[int, torch.Tensor, torch.Tensor]] = {}

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        if ctx.own_before is not None:
            self._record(self._distances(x, ctx.own_before, ctx.index, ctx.round, kept.senders))
            self._detect(ctx.round, (ctx.node, ctx.round, ctx.index))
        rows = [0, *(j + 1 for j, s in enumerate(kept.senders) if s not in self.flagged)]
        return ops.mean_rows(x, rows)

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        if view.own_before is not None:
            squares: dict[int, float] = {}
            for c, (lo, hi) in enumerate(view.bounds):
                senders = tuple(e.sender for e in evidence if c in e.indices)
                if not senders:
                    continue
                x = ops.stack(view.own[lo:hi], [view.received[s][c] for s in senders])
                for sender, dist in self._distances(x, view.own_before[lo:hi], c, view.round, senders).items():
                    squares[sender] = squares.get(sender, 0.0) + dist * dist
            self._record({s: sq**0.5 for s, sq in squares.items()})
            self._detect(view.round, (view.node, view.round, len(view.bounds)))
        return Verdict(weights={e.sender: 1.0 for e in evidence if e.sender not in self.flagged})

    def _distances(
        self, x: torch.Tensor, own_before: torch.Tensor, c: int, t: int, senders: tuple[int, ...]
    ) -> dict[int, float]:
        """Chunk index ``c``: each sender's distance between its predicted and actual update
        (senders with a prediction), updating the own and the senders' histories."""
        before = ops.flat(own_before)
        g0 = x[0] - before
        pairs = self._pairs.setdefault(c, deque(maxlen=self.window))
        last_own = self._own.get(c)
        if last_own is not None and last_own[0] < t:
            pairs.append((before - last_own[1], g0 - last_own[2]))
        self._own[c] = (t, before, g0)
        dists: dict[int, float] = {}
        for j, sender in enumerate(senders):
            g = x[j + 1] - before
            last = self._last.get((sender, c))
            if last is not None and last[0] < t:
                predicted = last[2] + ops.lbfgs_hvp([p[0] for p in pairs], [p[1] for p in pairs], before - last[1])
                dists[sender] = ops.norm(predicted - g)
            self._last[(sender, c)] = (t, before, g)
        return dists

    def _record(self, dists: dict[int, float]) -> None:
        """Append each sender's distance, normalised by their sum, to its scores."""
        total = sum(dists.values())
        if total > 0.0:
            for sender, dist in dists.items():
                self.scores.setdefault(sender, deque(maxlen=self.window)).append(dist / total)

    def _detect(self, round_: int, seed: tuple[int, int, int]) -> None:
        senders = sorted(s for s in self.scores if s not in self.flagged)
        if round_ <= self.warmup or len(senders) < 3:
            return
        scores = [sum(self.scores[s]) / len(self.scores[s]) for s in senders]
        if ops.gap_prefers_two(scores, refs=self.gap_refs, seed=seed):
            _, high, _ = ops.kmeans2_1d(scores)
            self.flagged.update(senders[i] for i in high)
