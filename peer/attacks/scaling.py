"""Scaling: a backdoor whose update is multiplied by a large factor (model replacement)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from peer.attacks import ops
from peer.attacks.base import AttackContext
from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import TriggerAttack
from peer.training import BatchHook


@ATTACKS.register("scaling")
class ScalingAttack(TriggerAttack):
    r"""Backdoor training, then the own update amplified:
    :math:`\tilde{x}_c = x_c^{before} + \text{scale}\,(x_c - x_c^{before})`, scale > 0
    (default 10).

    The scaling attack of Bagdasaryan et al., "How To Backdoor Federated Learning"
    (AISTATS 2020), as DFL-Dual lists it among the *targeted* attacks
    (Sun et al. 2024, Sec. 5.1: "the targeted attacks include Scaling Attack [1],
    DBA Attack [32], and A little is Enough Attack [2]"): with ``backdoor = true`` (the
    default) the peer trains on batches stamped with the trigger of ``backdoor`` (same
    ``target``, ``fraction``, ``trigger_*`` parameters and defaults) and every peer
    measures the attack success rate on the triggered test set. ``backdoor = false``
    boosts clean training instead (an untargeted overshoot, byzemu's former ``scaling``;
    no ASR). Needs only the own model.
    """

    def __init__(self, *, scale: float = 10.0, backdoor: bool = True, **kwargs: Any) -> None:
        # kwargs: the trigger parameters (peer/attacks/trigger.py), start_round, interval
        super().__init__(**kwargs)
        self.scale = ops.check_positive("scale", scale)
        if not isinstance(backdoor, bool):
            raise ValueError(f"backdoor={backdoor!r} must be true or false")
        self.backdoor = backdoor
        self.boost = self.scale

    def batch_hook(self) -> BatchHook | None:
        return super().batch_hook() if self.backdoor else None

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        out = {}
        for c, v in sorted(payload.items()):
            before = ops.before_chunk(ctx, c)
            out[c] = ops.to_f32(before + self.scale * ops.update(ops.own_chunk(payload, c), before), v)
        return out

    def triggered_test_set(  # type: ignore[override]  # None without the backdoor, as Attack's allows
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        return super().triggered_test_set(images, labels) if self.backdoor else None
