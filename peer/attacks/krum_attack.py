"""Fang et al.'s full-knowledge attack on Krum, per chunk."""

from __future__ import annotations

import math

import numpy as np

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


def lambda_upper_bound(benign: np.ndarray, reference: np.ndarray, f: int) -> float:
    r"""Fang et al.'s upper bound on lambda for m = k + f candidates, c = f of them crafted:

    .. math:: \frac{1}{(m - 2c - 1)\sqrt{d}}\min_i \sum_{l \in \Gamma_i} \lVert b_l - b_i\rVert
              + \frac{1}{\sqrt{d}}\max_i \lVert b_i - w_{ref}\rVert

    :math:`\Gamma_i` the m - c - 2 benign chunks nearest to :math:`b_i`. The first term is
    dropped when m - 2c - 1 < 1 or m - c - 2 < 1 (too few benign chunks known).
    """
    k, d = benign.shape
    root_d = math.sqrt(max(d, 1))
    spread = float(np.sqrt(((benign - reference) ** 2).sum(axis=1)).max()) / root_d
    m, near = k + f, k - 2
    if m - 2 * f - 1 < 1 or near < 1:
        return spread
    dist = np.sqrt(ops.pairwise_sq_dists(benign))
    np.fill_diagonal(dist, np.inf)
    nearest = np.sort(dist, axis=1)[:, :near].sum(axis=1).min()
    return float(nearest) / ((m - 2 * f - 1) * root_d) + spread


@ATTACKS.register("krum_attack")
class KrumAttack(Attack):
    r"""Deviate against the benign direction by the largest lambda Krum still accepts.

    Fang, Cao, Jia & Gong, "Local Model Poisoning Attacks to Byzantine-Robust Federated
    Learning" (USENIX Security 2020), full-knowledge attack on Krum. Per chunk c sent to
    neighbor j, with :math:`w_{ref} = x_c^{before}` (the attacker's pre-training chunk,
    its estimate of the receiver's model before the round), the k benign chunks
    :math:`b_j` known this round and :math:`s = \operatorname{sign}(\bar{b} - w_{ref})`
    the direction benign training moves each coordinate:

    .. math:: \tilde{x}_c = w_{ref} - \lambda s

    lambda starts at the paper's upper bound (:func:`lambda_upper_bound`) and is halved
    until Krum, run locally over the k benign chunks plus f identical copies of
    :math:`\tilde{x}_c` with f = max(1, Byzantine neighbors of j), selects a copy (ties go
    to benign chunks); below ``tolerance`` (the paper's epsilon, default 1e-5) the search
    gives up and lambda = 0 (:math:`w_{ref}` is sent). A rushing attack
    (``needs_knowledge``).

    Chunk-level limits: the attacker does not see j's own chunk nor what j's other
    neighbors send j; it uses the benign chunks it (and its colluders) received for the
    same index as a proxy for j's candidate set, and assumes every Byzantine neighbor of
    j sends the same crafted chunk. d in the bound is the chunk length. Fallbacks: when
    local Krum is impossible (k + f - f - 2 < 1, i.e. fewer than 3 benign chunks known)
    the upper bound itself is used; k = 0 -> the own trained chunk is the only benign
    sample.
    """

    needs_knowledge = True

    def __init__(self, *, tolerance: float = 1e-5, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        self.tolerance = ops.check_positive("tolerance", tolerance)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        f = max(1, ctx.neighborhood.byzantine)
        out = {}
        for c, v in sorted(payload.items()):
            reference = ops.before_chunk(ctx, c)
            benign = ops.reference_stack(ctx, c, ops.own_chunk(payload, c))
            direction = np.sign(ops.coord_mean(benign) - reference)
            lam = self.search_lambda(benign, reference, direction, f)
            out[c] = ops.to_f32(reference - lam * direction, v)
        return out

    def search_lambda(self, benign: np.ndarray, reference: np.ndarray, direction: np.ndarray, f: int) -> float:
        """The first lambda, halving from the upper bound, for which local Krum selects the
        crafted chunk (the bound itself if local Krum is impossible; 0 if none)."""
        upper = lambda_upper_bound(benign, reference, f)
        if not ops.krum_feasible(benign.shape[0] + f, f):
            return upper
        picks = ops.krum_probe(benign, f, f)
        found = ops.largest_accepted(
            lambda lam: picks(reference - lam * direction),
            upper,
            tolerance=self.tolerance,
        )
        return 0.0 if found is None else found
