"""DFL-Dual: dual-domain clustering and trust bootstrapping (Sun et al., CVPR 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from peer.defenses import inversion, ops
from peer.defenses.base import ChunkContext, Kept, ModelProbe, RobustDefense
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict, candidate_stack
from peer.defenses.registry import DEFENSES


@DEFENSES.register("dfl_dual")
class DFLDual(RobustDefense):
    r"""DFL-Dual, Sun et al. 2024 §4 and Algorithm 1.

    Candidates G = {0 (own chunk), 1..m (payloads)} of one chunk index.

    1. Model domain, Eq. 4: :math:`E_{kj} = \lVert x_k - x_j\rVert_2`.
    2. Data domain, Eq. 5-6: for every candidate k, a dummy dataset
       :math:`(x'_k, y')` with ``samples_per_class`` samples of each class (fixed labels)
       is synthesised by matching the gradient of the model on it to the candidate's
       mean gradient :math:`g_k = -s^t (x_k - b_c) / (\text{steps}\cdot\text{lr})`
       (:func:`peer.defenses.inversion.invert`, ``inversion_steps`` Adam steps of rate
       ``inversion_lr``); :math:`W_{kj} = \sum_{c}\sum_{d}\mathrm{Wass}(x'^{c,d}_k, x'^{c,d}_j)`
       sums the 1-D Wasserstein distances over classes c and features d.
    3. Eq. 7: :math:`D_{kj} = \min(W_{kj} + \alpha E_{kj}, C_1)`.
    4. Eq. 8-9: :math:`S_{0k} = \cos(x_0, x_k)`; :math:`TS(Q) = \frac{1}{|Q|}\sum_{k\in Q} S_{0k}`.
    5. Stage 1, Eq. 10-13: for each j, 2-median clustering of
       :math:`\{D_{kj}: k \in G\setminus j\}` (:func:`peer.defenses.ops.two_median_1d`),
       :math:`M^*_j` = the group of higher trust (the high-distance group on a tie, as
       Eq. 11's "otherwise"), :math:`q_j = \sum_{k\in M^*_j} D_{jk}`,
       :math:`r_j = \min(q_j / q_0, C_2)`.
    6. Stage 2, Eq. 14-15: 2-median clustering of :math:`\{r_j\}`, :math:`N^*` = the
       group of higher trust; Eq. 3: :math:`x_c \leftarrow` the mean of the candidates
       in :math:`N^*`.

    Chunk-level adaptation. A candidate's "model" is the peer's own model with the
    candidate chunk substituted (``ctx.probe``, as the loss-based rules use
    ``ctx.loss_with``): the inversion only sees the candidate through chunk c, and only
    the gradient on chunk c's coordinates is matched, so the dummy datasets of two
    candidates differ only through that chunk; the paper inverts whole neighbor models.
    A neighbor's update is measured from the own pre-training chunk :math:`b_c`
    (``ctx.own_before``; as ``fltrust``): the paper's :math:`\theta^t_j` of a neighbor is
    not known to a peer. Every candidate starts from the same dummy images (seeded by
    ``seed``), so their Wasserstein distances come from the models only.

    Choices the paper leaves to its supplementary material (not in the file): the sign
    of Eq. 5's target (the paper writes the update; an SGD update is minus the
    gradient, so the target here is the mean gradient, i.e. the update negated and
    divided by steps x lr), s = ``scale`` (default 1: no amplification), alpha, C1, C2
    (defaults 1, 1e6, 10), the optimiser (Adam here; DLG uses L-BFGS) and its number of
    steps. Cost per chunk index: (m + 1) x ``inversion_steps`` double-backward passes on
    ``samples_per_class`` x classes dummy samples; ``inversion_steps = 0`` skips the
    data domain (W = 0, model domain only). bench/defense_cost.py measures it.

    Fallbacks: no payload -> own chunk; ``ctx.probe`` or ``ctx.own_before`` None (no
    model at hand, e.g. hand-built contexts) -> W = 0; :math:`q_0 = 0` -> :math:`r_j = C_2`
    for :math:`q_j > 0`, 1 otherwise. Payloads holding NaN/Inf are discarded first.
    Takes no pre step (it reads the own chunk and the model).

    ``granularity = "neighbor"`` (:mod:`peer.defenses.evidence`; the paper's granularity:
    §4.2 inverts and compares each neighbor's whole model): the candidates are the own
    vector and each sender's vector (the own vector with its chunks substituted), so E
    between the own vector and sender j is the distance on j's chunks, and the inversion
    matches the gradient of the whole model; :math:`S_{0k}` is the cosine of j's chunks
    with the own values on the same coordinates. N* is decided once per round and every
    chunk index is the mean over the members of N* that hold it (the own chunk where no
    member sent it).
    """

    granularities = ("chunk", "neighbor")

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        c1: float = 1e6,
        c2: float = 10.0,
        scale: float = 1.0,
        samples_per_class: int = 10,
        inversion_steps: int = 5,
        inversion_lr: float = 0.1,
        seed: int = 0,
        granularity: str | None = None,
    ) -> None:
        super().__init__(granularity=granularity)
        self.alpha = ops.check_nonnegative("alpha", alpha)
        self.c1 = ops.check_positive("c1", c1)
        self.c2 = ops.check_positive("c2", c2)
        self.scale = ops.check_positive("scale", scale)
        self.samples_per_class = ops.check_count("samples_per_class", samples_per_class, minimum=1)
        self.inversion_steps = ops.check_count("inversion_steps", inversion_steps)
        self.inversion_lr = ops.check_positive("inversion_lr", inversion_lr)
        self.seed = ops.check_count("seed", seed)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        d = self.distances(x, ctx, kept)
        trust = [ops.cosine_similarity(x[0], x[k]) for k in range(x.shape[0])]
        selected = self.select(d, trust)
        return ops.mean_rows(x, selected)

    # ------------------------------------------------------------------ Eq. 4-7

    def distances(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        """The dual-domain distance matrix D (Eq. 7)."""
        return self._dual(x, ctx.probe, ctx.own_before, ctx.round, (kept.own, *kept.received))

    def _dual(
        self,
        x: torch.Tensor,
        probe: ModelProbe | None,
        own_before: torch.Tensor | None,
        round_: int,
        cands: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """D (Eq. 7) of the stack ``x``, whose rows are the candidates ``cands`` as given."""
        d = self.alpha * ops.pairwise_dists(x)
        w = self.data_distances(probe, own_before, round_, cands)
        if w is not None:
            d = d + w
        return d.clamp(max=self.c1)

    def data_distances(
        self, probe: ModelProbe | None, own_before: torch.Tensor | None, round_: int, cands: Sequence[torch.Tensor]
    ) -> torch.Tensor | None:
        """W (Eq. 6) between the candidates' dummy datasets, or None without a model."""
        if probe is None or own_before is None or self.inversion_steps == 0:
            return None
        labels = inversion.dummy_labels(probe.num_classes, self.samples_per_class)
        start = inversion.dummy_start(probe, self.samples_per_class, self.seed)
        factor = -(self.scale**round_) / (probe.steps * probe.lr)
        before = ops.flat(own_before)
        dummies = []
        for cand in cands:
            target = factor * (ops.flat(cand) - before)
            xs = inversion.invert(probe, cand, target, start, labels, steps=self.inversion_steps, lr=self.inversion_lr)
            # per class: (samples, features)
            dummies.append(xs.reshape(probe.num_classes, self.samples_per_class, -1).double())
        n = len(dummies)
        w = torch.zeros(n, n, dtype=torch.float64)
        for k in range(n):
            for j in range(k + 1, n):
                total = sum(ops.wasserstein_1d_sum(dummies[k][c], dummies[j][c]) for c in range(probe.num_classes))
                w[k, j] = w[j, k] = total
        return w

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        x = candidate_stack(view, evidence)
        cands = (view.own, *(e.whole() for e in evidence))
        d = self._dual(x, view.probe, view.own_before, view.round, cands)
        trust = [1.0, *(ops.cosine_similarity(e.own, e.payload) for e in evidence)]
        selected = self.select(d, trust)
        return Verdict(
            weights={evidence[k - 1].sender: 1.0 for k in selected if k > 0}, own=1.0 if 0 in selected else 0.0
        )

    # ------------------------------------------------------------------ Eq. 9-15

    def select(self, d: torch.Tensor, trust: list[float]) -> list[int]:
        """The candidates of the finally selected group N* (Eq. 10-15)."""
        n = d.shape[0]
        q = []
        for j in range(n):
            others = [k for k in range(n) if k != j]
            chosen = self._bootstrap([float(d[k, j]) for k in others], others, trust)
            q.append(sum(float(d[j, k]) for k in chosen))
        rates = [self._rate(qj, q[0]) for qj in q]
        return sorted(self._bootstrap(rates, list(range(n)), trust))

    def _bootstrap(self, values: list[float], ids: list[int], trust: list[float]) -> list[int]:
        """2-median clustering of ``values`` (one per id), then the group of higher trust
        score (Eq. 11 / 15: the first group only if its trust is strictly higher)."""
        low, high = ops.two_median_1d(values)
        groups = [[ids[i] for i in low], [ids[i] for i in high]]
        if not groups[1]:
            return groups[0]
        ts = [sum(trust[k] for k in g) / len(g) for g in groups]
        return groups[0] if ts[0] > ts[1] else groups[1]

    def _rate(self, qj: float, q0: float) -> float:
        """Divergence rate r_j = min(q_j / q_0, C2) (Eq. 12)."""
        if q0 <= 0.0:
            return self.c2 if qj > 0.0 else 1.0
        return min(qj / q0, self.c2) if math.isfinite(qj) else self.c2
