"""Mimic: every Byzantine peer sends a copy of one honest peer's chunk."""

from __future__ import annotations

import numpy as np

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


@ATTACKS.register("mimic")
class MimicAttack(Attack):
    r"""Send, for each chunk index c, the benign chunk of one honest peer:
    :math:`\tilde x_c = b_{(\epsilon)}`, the ``epsilon``-th of the benign chunks of index c
    known this round (own observations plus the colluders', ordered by sender id; every
    honest model in oracle mode).

    Karimireddy, He & Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via
    Bucketing" (ICLR 2022), the mimic attack: under heterogeneity, over-representing one
    honest worker biases the aggregate towards its data without sending any outlier. As
    ByzFL 0.0.11 ``Mimic(epsilon)`` (``honest_vectors[epsilon]``); ByzFL's vectors are all
    honest workers, here they are the benign chunks the attacker knows. The paper picks
    the mimicked worker by an optimisation over the first rounds; ByzFL and byzemu use a
    fixed position. A rushing attack (``needs_knowledge``).

    Fallbacks: fewer than epsilon + 1 benign chunks known for an index -> the last one
    (the highest sender id known); none known -> the own honestly trained chunk.
    """

    needs_knowledge = True

    def __init__(self, *, epsilon: int = 0, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        self.epsilon = ops.check_int("epsilon", epsilon)
        if self.epsilon < 0:
            raise ValueError(f"epsilon={epsilon} must be >= 0")

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        out = {}
        for c, v in sorted(payload.items()):
            stack = ops.reference_stack(ctx, c, ops.own_chunk(payload, c))
            out[c] = ops.to_f32(stack[min(self.epsilon, stack.shape[0] - 1)], v)
        return out
