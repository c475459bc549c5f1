"""Sentinel: similarity filter, loss-based weights and norm scaling."""

from __future__ import annotations

import math
from typing import Any

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict
from peer.defenses.registry import DEFENSES


@DEFENSES.register("sentinel")
class Sentinel(RobustDefense):
    r"""Sentinel's three steps, chunk by chunk.

    For chunk index c with own chunk :math:`x_c` and payloads :math:`r_j` from senders j:

    1. *Similarity filter*: keep :math:`r_j` only if
       :math:`\cos(r_j, x_c) \ge` ``cos_threshold`` (a zero vector has cosine 0).
    2. *Bootstrap validation*: with :math:`\ell` = ``ctx.loss_with``, keep the running
       mean :math:`\bar\ell_{own}` of the own loss :math:`\ell(x_c)` (one value per round)
       and, per (sender, chunk index), the running mean :math:`\bar\ell_j` of
       :math:`\ell(r_j)` over the rounds in which j's payload passed step 1; weight

       .. math:: w_j = \exp\!\big(-k \max(0, \bar\ell_j - \bar\ell_{own})\big),\quad
                 k = 1 / \max(0.001, \bar\ell_{own}),

       and :math:`w_j = 0` when :math:`w_j <` ``weight_cutoff`` (0.1) or NaN.
    3. *Normalization*: :math:`\tilde r_j = r_j \min(1, \lVert x_c\rVert / \lVert r_j\rVert)`.

    Result: :math:`x_c \leftarrow (x_c + \sum_j w_j \tilde r_j) / (1 + \sum_j w_j)` (the
    own chunk has weight exp(0) = 1).

    Feng et al., "Sentinel: An Aggregation Function to Secure Decentralized Federated
    Learning" (ECAI 2024), cited by the poster (Donev 2025, ref. [3]): the
    three steps and the exponential loss mapping with k as the inverse own loss. From the
    authors' public code (Fedstellar, ``fedstellar/learning/aggregators/sentinel.py``)
    rather than the paper: comparing the *running mean* losses of neighbor and self, the
    0.001 floor in k, the 0.1 weight cut-off, and the own model's weight being its own
    mapped loss, 1. (The code also gives neighbors weight 0 in round 0, a Fedstellar
    start-up detail not reproduced here.)

    Chunk-level adaptation: cosine similarity and norms are taken on the chunk
    (the paper: per layer); the loss of a payload is the loss of the peer's *own* model
    with that payload substituted for its own chunk c, on a fixed batch of local data
    (the paper's bootstrap dataset); the loss is evaluated on the payload as received,
    before step 3. The neighbor history is per (sender, chunk index), since different
    neighbors send different chunk indices; the own history has one entry per round.

    Fallbacks: no payload, or none passing step 1 -> the own chunk. ``ctx.loss_with``
    None -> step 2 is skipped (all weights 1). A non-finite own loss is not recorded
    (k from the history so far; with no history, weights 1); a non-finite
    :math:`\ell_j` gives weight 0 and is not recorded. Payloads holding NaN/Inf are
    discarded first.

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's granularity:
    Feng et al. judge each neighbor's whole model, similarity layer by layer): step 1's
    cosine and step 3's norm factor :math:`\min(1, \lVert x\rVert/\lVert r_j\rVert)`
    are computed once on the concatenation of the chunks j sent (against the own values
    on the same coordinates), step 2's loss on the own model with all of j's chunks
    substituted (history per sender); every chunk index is then
    :math:`(x_c + \sum_j w_j s_j r_{j,c}) / (1 + \sum_j w_j)` over the senders of that
    index.
    """

    granularities = ("chunk", "neighbor")

    def __init__(
        self, *, cos_threshold: float = 0.5, weight_cutoff: float = 0.1, granularity: str | None = None
    ) -> None:
        super().__init__(granularity=granularity)
        self.cos_threshold = ops.check_range("cos_threshold", cos_threshold, -1.0, 1.0, lo_open=False, hi_open=False)
        self.weight_cutoff = ops.check_range("weight_cutoff", weight_cutoff, 0.0, 1.0, lo_open=False, hi_open=False)
        self._history: dict[tuple[int, int], tuple[float, int]] = {}
        #: own-loss history: (sum, count, last round recorded)
        self._own: tuple[float, int, int] = (0.0, 0, -1)
        #: this round: every weight given to each sender's payloads (round_metrics)
        self._given: dict[str, list[float]] = {}

    def round_metrics(self) -> dict[str, Any]:
        """``sl_weight``: per sender (id as text), the mean weight its payloads got this
        round over the chunk indices it sent (0 for a payload that failed the cosine
        filter or the cut-off); ``sl_kept`` of ``sl_payloads`` payloads got a weight
        above 0. Read once per round, after the aggregation (then reset)."""
        given, self._given = self._given, {}
        if not given:
            return {}
        every = [w for ws in given.values() for w in ws]
        return {
            "sl_weight": {s: sum(ws) / len(ws) for s, ws in sorted(given.items(), key=lambda kv: int(kv[0]))},
            "sl_kept": sum(w > 0 for w in every),
            "sl_payloads": len(every),
        }

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        # the own loss enters the history every round, filtered neighbors or not (as in
        # the authors' code, where the own model is evaluated with the others)
        own_mean = self._own_mean(ctx.round, float(ctx.loss_with(kept.own))) if ctx.loss_with else None
        passed = [j for j, r in enumerate(kept.received) if ops.cosine_similarity(r, kept.own) >= self.cos_threshold]
        weights = self._weights(kept, passed, ctx, own_mean) if passed else []
        given = dict(zip(passed, weights))
        for j, sender in enumerate(kept.senders):
            self._given.setdefault(str(sender), []).append(given.get(j, 0.0))
        if not passed:
            return x[0]
        own_norm = ops.norm(x[0])
        total = x[0].clone()
        for j, w in zip(passed, weights):
            v = x[j + 1]
            n = ops.norm(v)
            if n > own_norm:
                v = v * (own_norm / n)
            total += w * v
        return total / (1.0 + sum(weights))

    def _own_mean(self, round_: int, loss_own: float) -> float | None:
        """Record the own loss once per round; the running mean (None with no history)."""
        total, count, last = self._own
        if last != round_ and math.isfinite(loss_own):
            total, count, last = total + loss_own, count + 1, round_
            self._own = (total, count, last)
        return total / count if count else None

    def _weights(self, kept: Kept, passed: list[int], ctx: ChunkContext, own_mean: float | None) -> list[float]:
        """Step 2: the weight of each passed payload (positions in ``kept.received``)."""
        if ctx.loss_with is None:
            return [1.0] * len(passed)
        return [
            self._weight((kept.senders[j], ctx.index), float(ctx.loss_with(kept.received[j])), own_mean) for j in passed
        ]

    def _weight(self, key: tuple[int, int], loss: float, own_mean: float | None) -> float:
        """Step 2 for one payload with loss ``loss``, recorded under ``key``."""
        if not math.isfinite(loss):
            return 0.0
        total, count = self._history.get(key, (0.0, 0))
        total, count = total + loss, count + 1
        self._history[key] = (total, count)
        if own_mean is None:
            return 1.0
        k = 1.0 / max(0.001, own_mean)
        w = math.exp(-k * max(0.0, total / count - own_mean))
        return w if w >= self.weight_cutoff else 0.0

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        loss_with = view.loss_with
        own_mean = self._own_mean(view.round, float(loss_with(view.own))) if loss_with else None
        weights: dict[int, float] = {}
        scales: dict[int, float] = {}
        for e in evidence:
            w = 0.0
            if ops.cosine_similarity(e.payload, e.own) >= self.cos_threshold:
                w = 1.0 if loss_with is None else self._weight((e.sender, -1), float(loss_with(e.whole())), own_mean)
            self._given.setdefault(str(e.sender), []).append(w)
            if w > 0.0:
                own_norm, norm = ops.norm(e.own), ops.norm(e.payload)
                weights[e.sender], scales[e.sender] = w, min(1.0, own_norm / norm) if norm > 0 else 1.0
        return Verdict(weights=weights, scales=scales)
