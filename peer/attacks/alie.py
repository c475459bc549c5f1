"""A Little Is Enough: shift the benign mean by a small multiple of the benign spread."""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext, DataInfo
from peer.attacks.ops import alie_z
from peer.attacks.registry import ATTACKS

__all__ = ["ALIEAttack", "alie_z", "alie_z_network", "Z_RULES"]

#: how z is chosen when it is not fixed
Z_RULES = ("neighbourhood", "network")


def neighborhood_z(ctx: AttackContext) -> float:
    """ALIE's z for the receiving neighbor j: n = degree(j) + 1 candidates (j aggregates
    its own chunk with what its degree(j) neighbors send), f = Byzantine neighbors of j."""
    return alie_z(ctx.neighborhood.degree + 1, ctx.neighborhood.byzantine)


def alie_z_network(n: int, b: int) -> float:
    r"""z of Masuda & Shudo's ALIE (Masuda & Shudo, Eq. (9)-(10)): over the whole
    network of n nodes with B Byzantine, :math:`s = \lceil n/2 + 1\rceil` and
    :math:`z = \max_z\{\varphi(z) < (n - B - s)/(n - B)\}` = :math:`\Phi^{-1}` of that
    ratio. (Masuda & Shudo write s without Baruch's "- B".) A ratio <= 0 has no such z: 0 (the
    benign mean) is returned, and :meth:`ALIEAttack.plan_warnings` says so. E.g. n = 10:
    B = 1 -> s = 6, ratio 3/9, z = -0.431; B = 3 -> ratio 1/7, z = -1.068; B = 5 -> none."""
    if n < 1 or b < 0:
        raise ValueError(f"alie_z_network needs n >= 1 and B >= 0, got n={n}, B={b}")
    honest = n - b
    s = math.ceil(n / 2 + 1)
    if honest <= 0 or honest - s <= 0:
        return 0.0
    return NormalDist().inv_cdf((honest - s) / honest)


@ATTACKS.register("alie")
class ALIEAttack(Attack):
    r"""Per coordinate, the benign mean minus z benign standard deviations.

    Baruch, Baruch & Goldberg, "A Little Is Enough: Circumventing Defenses For Distributed
    Learning" (NeurIPS 2019), Algorithm 3. Over the k benign
    chunks of index c known this round, :math:`\mu` and :math:`\sigma` coordinate-wise
    (sample std, ddof = 1, as the authors' code's ``torch.std``):

    .. math:: \tilde{x}_c = \mu - z\,\sigma

    z is, in order: ``z`` when given (Baruch et al.'s experiments fix z = 1.5 for n = 51, m = 12,
    Sec. 4.2 and Table 1); else with ``z_rule = "neighbourhood"`` (default) Algorithm 3
    per receiving neighbor j, :math:`s = \lfloor n/2 + 1\rfloor - f`,
    :math:`z = \Phi^{-1}((n - f - s)/(n - f))` with n = degree(j) + 1 and f = j's
    Byzantine neighbors (:func:`peer.attacks.ops.alie_z`, with its edge cases); with
    ``z_rule = "network"`` Masuda & Shudo's Eq. (9)-(10) (:func:`alie_z_network`) with the
    network-wide n and B (n - B honest models counted from oracle knowledge, else from
    the distinct honest senders known this round; B = the Byzantine peers).

    On sparse graphs the formula gives z <= 0 (n = 4, f = 1: z = -0.43), which turns the
    attack into "send (about) the benign mean": :meth:`plan_warnings` says so before the
    run starts, and :meth:`round_metrics` records the z used for every receiving
    neighbor in the round's metrics (``alie_z``: {neighbor id: z}). A rushing attack
    (``needs_knowledge``).

    Fallbacks: k = 0 -> the own trained chunk is the only sample (mu = own, sigma = 0:
    the own chunk is sent); k = 1 -> sigma = 0, the one known benign chunk is sent.
    """

    needs_knowledge = True

    def __init__(
        self,
        *,
        z: float | None = None,
        z_rule: str = "neighbourhood",
        start_round: int = 1,
        interval: int = 1,
    ) -> None:
        super().__init__(start_round=start_round, interval=interval)
        self._init_z(z, z_rule)

    def _init_z(self, z: float | None, z_rule: str) -> None:
        """Check and keep ``z`` / ``z_rule``; reset the per-round record of z used."""
        self.z = None if z is None else ops.check_finite("z", z)
        self.z_rule = ops.check_choice("z_rule", z_rule, Z_RULES)
        self._byzantine = 1
        self._z_used: dict[str, float] = {}

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        super().bind(data, colluder_rank=colluder_rank, colluders=colluders)
        self._byzantine = max(int(colluders), 1)

    def z_for(self, ctx: AttackContext) -> float:
        if self.z is not None:
            z = self.z
        elif self.z_rule == "network":
            k = ctx.knowledge
            honest = (
                len(k.oracle)
                if k.oracle is not None
                else len({s for view in [k.observed, *k.shared.values()] for s in view})
            )
            z = alie_z_network(honest + self._byzantine, self._byzantine)
        else:
            z = neighborhood_z(ctx)
        self._z_used[str(ctx.neighbor)] = float(z)
        return z

    def round_metrics(self) -> dict[str, Any]:
        used, self._z_used = self._z_used, {}
        return {"alie_z": used} if used else {}

    def plan_warnings(
        self, *, nodes: int, byzantine: list[int], neighborhoods: Mapping[int, tuple[int, int]]
    ) -> list[str]:
        return z_warnings(self, nodes=nodes, byzantine=byzantine, neighborhoods=neighborhoods)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        z = self.z_for(ctx)
        out = {}
        for c, v in sorted(payload.items()):
            stack = ops.reference_stack(ctx, c, ops.own_chunk(payload, c))
            out[c] = ops.to_f32(ops.coord_mean(stack) - z * ops.coord_std(stack), v)
        return out


def z_warnings(
    attack: Any, *, nodes: int, byzantine: list[int], neighborhoods: Mapping[int, tuple[int, int]]
) -> list[str]:
    """One line per distinct non-positive z an ALIE-style attack (``z``, ``z_rule``) would
    use: ``neighborhoods`` maps each honest target of a Byzantine peer to (degree, its
    Byzantine neighbors). Empty when z is fixed and positive."""
    name = type(attack).__name__
    if attack.z is not None:
        return (
            []
            if attack.z > 0
            else [
                f"{name}: fixed z={attack.z} <= 0: the attack sends the benign mean (z = 0) "
                "or shifts it by |z| sigma the other way"
            ]
        )
    if attack.z_rule == "network":
        z = alie_z_network(nodes, len(byzantine))
        return (
            []
            if z > 0
            else [
                f"{name}: z_rule='network' gives z={z:.3f} <= 0 for n={nodes}, B={len(byzantine)} "
                "(Masuda & Shudo Eq. 10): the benign mean shifted by |z| sigma the other way "
                "(z = 0: the mean itself); set z to choose"
            ]
        )
    bad = sorted({(d, f, alie_z(d + 1, f)) for d, f in neighborhoods.values() if alie_z(d + 1, f) <= 0})
    return [
        f"{name}: z={z:.3f} <= 0 for {sum(1 for v in neighborhoods.values() if v == (d, f))} "
        f"target(s) with degree {d} and {f} Byzantine neighbor(s) (Algorithm 3 of Baruch et al. 2019 with "
        f"n={d + 1}): there it sends the benign mean shifted by only |z| sigma the other way "
        "(z = 0: the mean itself); set z (Baruch et al. 2019 uses 1.5)"
        for d, f, z in bad
    ]
