"""ALIE backdoor: train with a trigger, then clip into the benign spread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from peer.attacks import ops
from peer.attacks.alie import ALIEAttack
from peer.attacks.base import AttackContext, DataInfo
from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import TriggerAttack


#: 003's backdoor z (= alpha), Sec. 4.2
PAPER_Z = 0.2


@ATTACKS.register("alie_backdoor")
class ALIEBackdoorAttack(TriggerAttack):
    r"""Backdoor training (as ``backdoor``), then each sent coordinate clipped into the range
    the benign chunks make plausible:

    .. math:: \tilde{x}_c = \min\big(\max(x_c,\ \mu - |z|\sigma),\ \mu + |z|\sigma\big)

    with :math:`\mu, \sigma` the coordinate-wise mean and sample std of the benign chunks
    of index c known this round. z defaults to 0.2, the paper's backdoor value
    (003_e5d7416090bcf41d.txt, Sec. 4.2: "low alpha and z (both 0.2)"); giving ``z_rule``
    (and no ``z``) computes z as ``alie`` does instead (per receiving neighbor or
    network-wide). The width uses |z|
    because a clipping interval needs a non-negative half-width.

    Defaults follow 003 Sec. 4.2: trigger the upper-left 5x5 pixels (``trigger_position``
    [0, 0], no margin) at maximum intensity (255), target 0.

    Baruch, Baruch & Goldberg, "A Little Is Enough" (NeurIPS 2019), Algorithm 4. Not
    reproduced (open): the paper trains the backdoor *starting from mu* with the loss
    alpha * l_backdoor + (1 - alpha) * l_Delta (l_Delta the MSE to mu's parameters,
    alpha = 0.2) on 1000 triggered samples for 5 passes; here the attacker trains its own
    model on poisoned batches (``fraction`` of each batch triggered) and the constraint
    is enforced only by the clipping. Training from mu inside ``craft`` would need the
    model and data there, which the attack interface does not hand over. No
    model-replacement ``boost``. A rushing attack (``needs_knowledge``); poisoned batches
    and :meth:`triggered_test_set` as ``backdoor`` (shared code:
    :class:`~peer.attacks.trigger.TriggerAttack`; full trigger on non-target samples).

    Fallbacks: k = 0 -> mu = own chunk, sigma = 0: the own (backdoored) chunk is sent;
    k = 1 -> sigma = 0: the known benign chunk is sent.
    """

    needs_knowledge = True

    def __init__(
        self,
        *,
        z: float | None = None,
        z_rule: str | None = None,
        trigger_size: int = 5,
        trigger_position: str | Sequence[int] = (0, 0),
        **kwargs: Any,  # target, fraction, trigger_value (TriggerAttack); start_round, interval (Attack)
    ) -> None:
        super().__init__(trigger_size=trigger_size, trigger_position=trigger_position, **kwargs)
        if z is None and z_rule is None:
            z = PAPER_Z  # 003 Sec. 4.2; set z_rule to compute z as alie does instead
        self._init_z(z, z_rule or "neighbourhood")

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        super().bind(data, colluder_rank=colluder_rank, colluders=colluders)
        self._byzantine = max(int(colluders), 1)

    _init_z = ALIEAttack._init_z
    z_for = ALIEAttack.z_for
    round_metrics = ALIEAttack.round_metrics
    plan_warnings = ALIEAttack.plan_warnings

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        width = abs(self.z_for(ctx))
        out = {}
        for c, v in sorted(payload.items()):
            own = ops.own_chunk(payload, c)
            stack = ops.reference_stack(ctx, c, own)
            mu, sigma = ops.coord_mean(stack), ops.coord_std(stack)
            out[c] = ops.to_f32(np.clip(own, mu - width * sigma, mu + width * sigma), v)
        return out
