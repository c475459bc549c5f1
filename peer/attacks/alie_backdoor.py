"""ALIE backdoor: train with a trigger, then clip into the benign spread."""

from __future__ import annotations

from typing import Any

import numpy as np

from peer.attacks import ops
from peer.attacks.alie import neighborhood_z
from peer.attacks.base import AttackContext
from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import TriggerAttack


@ATTACKS.register("alie_backdoor")
class ALIEBackdoorAttack(TriggerAttack):
    r"""Backdoor training (as ``backdoor``), then each sent coordinate clipped into the range
    the benign chunks make plausible:

    .. math:: \tilde{x}_c = \min\big(\max(x_c,\ \mu - |z|\sigma),\ \mu + |z|\sigma\big)

    with :math:`\mu, \sigma` the coordinate-wise mean and sample std of the benign chunks
    of index c known this round and z as in ``alie`` (per receiving neighbor; ``z``
    overrides it). The width uses |z| because a clipping interval needs a non-negative
    half-width (the formula's z is negative for small neighborhoods).

    Baruch, Baruch & Goldberg, "A Little Is Enough" (NeurIPS 2019), Algorithm 4 (backdoor
    with the update kept within the benign spread); the paper also adds a distance term
    to the training loss, which is not done here: the constraint is enforced only by the
    clipping. No model-replacement ``boost``. A rushing attack (``needs_knowledge``);
    trigger, poisoned batches and :meth:`triggered_test_set` as ``backdoor`` (shared code:
    :class:`~peer.attacks.trigger.TriggerAttack`; full trigger on non-target samples).

    Fallbacks: k = 0 -> mu = own chunk, sigma = 0: the own (backdoored) chunk is sent;
    k = 1 -> sigma = 0: the known benign chunk is sent.
    """

    needs_knowledge = True

    def __init__(self, *, z: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # the trigger parameters (peer/attacks/trigger.py)
        self.z = None if z is None else ops.check_finite("z", z)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        width = abs(self.z if self.z is not None else neighborhood_z(ctx))
        out = {}
        for c, v in sorted(payload.items()):
            own = ops.own_chunk(payload, c)
            stack = ops.reference_stack(ctx, c, own)
            mu, sigma = ops.coord_mean(stack), ops.coord_std(stack)
            out[c] = ops.to_f32(np.clip(own, mu - width * sigma, mu + width * sigma), v)
        return out
