"""Max attack: the negated coordinate-wise maximum of the benign chunks."""

from __future__ import annotations

import numpy as np

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


@ATTACKS.register("max")
class MaxAttack(Attack):
    r"""Per coordinate, minus the largest benign value known: :math:`\tilde{x}_c[i] =
    -\max_j b_j[i]` over the benign chunks :math:`b_j` of index c known this round
    (own observations plus the colluders', or every honest model in oracle mode).

    The "Max" attack of Masuda & Shudo, "Loss Based Byzantine Resilience for
    Decentralized Learning", Eq. (8):
    :math:`x_i[d] = -\max\{x_j[d] \mid j \in H\}` over the benign nodes H (all of them in
    Masuda & Shudo: use ``byzantine.knowledge = "oracle"``). A rushing attack (``needs_knowledge``).

    Fallback: no benign chunk known for an index (k = 0) -> the own trained chunk is the
    only sample, so :math:`\tilde{x}_c = -x_c`.
    """

    needs_knowledge = True

    def __init__(self, *, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        out = {}
        for c, v in sorted(payload.items()):
            stack = ops.reference_stack(ctx, c, ops.own_chunk(payload, c))
            out[c] = ops.to_f32(-ops.coord_max(stack), v)
        return out
