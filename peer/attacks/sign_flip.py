"""Sign flipping: send the negated model (or the negated own update)."""

from __future__ import annotations

import numpy as np

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS

OF = ("model", "update")


@ATTACKS.register("sign_flip")
class SignFlipAttack(Attack):
    r"""Send the own chunk with its sign flipped, optionally scaled.

    With :math:`x_c` the trained chunk and :math:`x_c^{before}` the chunk before this
    round's training:

    * ``of="model"`` (default): :math:`\tilde{x}_c = -\,\text{scale}\cdot x_c`;
    * ``of="update"``: :math:`\tilde{x}_c = x_c^{before} - \text{scale}\,(x_c - x_c^{before})`,
      the reversed own update applied to the pre-training chunk.

    The sign-flipping attack of Li et al., "RSA: Byzantine-Robust Stochastic Aggregation
    Methods for Distributed Learning from Heterogeneous Datasets" (AAAI 2019), applied to
    the shared model; ``of="update"`` is its gradient-space form (the attacker reverses
    its own progress) adapted to models. Needs only the own model.
    """

    def __init__(self, *, of: str = "model", scale: float = 1.0, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        self.of = ops.check_choice("of", of, OF)
        self.scale = ops.check_positive("scale", scale)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        out = {}
        for c, v in sorted(payload.items()):
            own = ops.own_chunk(payload, c)
            if self.of == "model":
                out[c] = ops.to_f32(-self.scale * own, v)
            else:
                before = ops.before_chunk(ctx, c)
                out[c] = ops.to_f32(before - self.scale * ops.update(own, before), v)
        return out
