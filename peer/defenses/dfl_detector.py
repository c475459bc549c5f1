"""DFLDetector: FLDetector's consistency check run by every peer (DFL-Dual's baseline)."""

from __future__ import annotations

from collections import deque

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
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
    """

    def __init__(self, *, window: int = 10, warmup: int = 5, gap_refs: int = 10) -> None:
        self.window = ops.check_count("window", window, minimum=1)
        self.warmup = ops.check_count("warmup", warmup)
        self.gap_refs = ops.check_count("gap_refs", gap_refs, minimum=1)
        self.flagged: set[int] = set()
        self._scores: dict[int, deque[float]] = {}
        #: per chunk index: (round, b_c, g_0) of the last round seen, and the L-BFGS pairs
        self._own: dict[int, tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._pairs: dict[int, deque[tuple[torch.Tensor, torch.Tensor]]] = {}
        #: per (sender, index): (round, b_c, g_j) when it last sent the chunk
        self._last: dict[tuple[int, int], tuple[int, torch.Tensor, torch.Tensor]] = {}

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        if ctx.own_before is not None:
            self._observe(x, ctx.own_before, ctx, kept)
        rows = [0, *(j + 1 for j, s in enumerate(kept.senders) if s not in self.flagged)]
        return ops.mean_rows(x, rows)

    def _observe(self, x: torch.Tensor, own_before: torch.Tensor, ctx: ChunkContext, kept: Kept) -> None:
        c, t = ctx.index, ctx.round
        before = ops.flat(own_before)
        g0 = x[0] - before
        pairs = self._pairs.setdefault(c, deque(maxlen=self.window))
        last_own = self._own.get(c)
        if last_own is not None and last_own[0] < t:
            pairs.append((before - last_own[1], g0 - last_own[2]))
        self._own[c] = (t, before, g0)
        dists: dict[int, float] = {}
        for j, sender in enumerate(kept.senders):
            g = x[j + 1] - before
            last = self._last.get((sender, c))
            if last is not None and last[0] < t:
                predicted = last[2] + ops.lbfgs_hvp([p[0] for p in pairs], [p[1] for p in pairs], before - last[1])
                dists[sender] = ops.norm(predicted - g)
            self._last[(sender, c)] = (t, before, g)
        total = sum(dists.values())
        if total > 0.0:
            for sender, dist in dists.items():
                self._scores.setdefault(sender, deque(maxlen=self.window)).append(dist / total)
        self._detect(ctx)

    def _detect(self, ctx: ChunkContext) -> None:
        senders = sorted(s for s in self._scores if s not in self.flagged)
        if ctx.round <= self.warmup or len(senders) < 3:
            return
        scores = [sum(self._scores[s]) / len(self._scores[s]) for s in senders]
        if ops.gap_prefers_two(scores, refs=self.gap_refs, seed=(ctx.node, ctx.round, ctx.index)):
            _, high, _ = ops.kmeans2_1d(scores)
            self.flagged.update(senders[i] for i in high)
