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

    ``reference`` chooses :math:`w_{ref}`, Fang et al.'s :math:`w_{Re}` ("the global
    model before the round", the point every benign model started from), which a
    decentralized network does not have:

    * ``"own"`` (default): the attacker's own pre-training chunk. Each colluder has its
      own model (its own aggregate of what it received, the colluders' crafted chunks
      included), so the colluders send a receiver different vectors, and
      :math:`s` and the bound's :math:`\max_i \lVert b_i - w_{ref}\rVert` grow with
      the distance between the attackers' and the honest models: once the attack moves
      the honest models, lambda grows with it from round to round.
    * ``"benign"``: the coordinate mean of the benign chunks of index c the colluders
      knew in the last earlier round the attack acted in (the attacker's own
      pre-training chunk until then). Every colluder knows the same benign chunks through the collusion
      channel, so all Byzantine neighbors of j send j the same vector, as Fang et al.'s
      c crafted models (one :math:`w'_1` and copies), and :math:`w_{ref}` follows the
      honest models instead of the attackers' own.
    """

    needs_knowledge = True
    #: the choices of ``reference``
    references = ("own", "benign")

    def __init__(
        self, *, tolerance: float = 1e-5, reference: str = "own", start_round: int = 1, interval: int = 1
    ) -> None:
        super().__init__(start_round=start_round, interval=interval)
        self.tolerance = ops.check_positive("tolerance", tolerance)
        if reference not in self.references:
            raise ValueError(f"reference={reference!r}: valid choices are {', '.join(self.references)}")
        self.reference = reference
        #: reference = "benign": per chunk index, (round, coordinate mean of the benign
        #: chunks known) of the latest round seen and of the latest round before it
        self._means: dict[int, list[tuple[int, np.ndarray]]] = {}

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        f = max(1, ctx.neighborhood.byzantine)
        out = {}
        for c, v in sorted(payload.items()):
            reference = self.reference_chunk(ctx, c)
            benign = ops.reference_stack(ctx, c, ops.own_chunk(payload, c))
            direction = np.sign(ops.coord_mean(benign) - reference)
            lam = self.search_lambda(benign, reference, direction, f)
            out[c] = ops.to_f32(reference - lam * direction, v)
        return out

    def reference_chunk(self, ctx: AttackContext, c: int) -> np.ndarray:
        """:math:`w_{ref}` of chunk ``c`` in round ``ctx.round`` (see ``reference``)."""
        if self.reference == "benign":
            self._remember(ctx)
            earlier = [mean for r, mean in self._means.get(c, []) if r < ctx.round]
            if earlier:
                return earlier[-1].copy()
        return ops.before_chunk(ctx, c)

    def _remember(self, ctx: AttackContext) -> None:
        """Keep this round's benign mean of every chunk index with a benign chunk known
        (once per round; every colluder keeps the same, whichever chunks it sends)."""
        for c in range(len(ctx.bounds)):
            seen = self._means.setdefault(c, [])
            if seen and seen[-1][0] == ctx.round:
                continue
            known = ctx.knowledge.benign_stack(c, ctx.bounds)
            if known.shape[0] > 0:
                seen.append((ctx.round, ops.coord_mean(known)))
                del seen[:-2]

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
