"""Bit flipping: corrupt the IEEE-754 float32 encoding of the sent parameters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


@ATTACKS.register("bit_flip")
class BitFlipAttack(Attack):
    r"""XOR fixed bits of the float32 encoding of (a fraction of) the sent coordinates.

    Each coordinate of every sent chunk is selected independently with probability
    ``fraction`` (drawn from ``ctx.rng``; ``fraction`` = 1 selects all without drawing),
    and the bit positions ``bits`` (0 = least significant mantissa bit, 31 = sign bit of
    IEEE-754 binary32) of the selected coordinates are flipped.

    Default ``bits=[31]``, ``fraction=1``: the sign bit of every parameter, i.e.
    :math:`\tilde{x}_c = -x_c` exactly — the "bit-flip" attack as public Byzantine-learning
    code implements it (flip the sign bit of every value sent, i.e. negate it; e.g.
    CRYPTO-KU/FL-Byzantine-Library ``Attacks/bit_flip.py``), which is UBAR's bit-flip
    attack: Guo et al., "Byzantine-resilient Decentralized Stochastic Gradient Descent",
    IEEE TCSVT 2022, Sec. VI-C: the adversarial nodes "flip the sign of the floating
    estimates and then broadcast these fault estimates". ``bits=[21, 29, 30, 31]``
    gives the corrupted-bits variant of Xie et al., "Generalized Byzantine-tolerant SGD"
    (2018) (the 22nd, 30th, 31st and 32nd bits, 1-based), which may produce ±Inf/NaN
    payloads (honest receivers drop non-finite payloads).

    Needs only the own model.
    """

    def __init__(
        self,
        *,
        bits: int | Sequence[int] = (31,),
        fraction: float = 1.0,
        start_round: int = 1,
        interval: int = 1,
    ) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if isinstance(bits, (int, float)) and not isinstance(bits, bool):
            bits = [bits]
        if not isinstance(bits, (list, tuple)) or not bits:
            raise ValueError(f"bits={bits!r} must be a non-empty list of bit positions 0..31")
        checked = []
        for b in bits:
            v = ops.check_int("bits", b)
            if v > 31:
                raise ValueError(f"bits={list(bits)!r}: bit position {v} is not in 0..31")
            checked.append(v)
        self.bits = tuple(sorted(set(checked)))
        self.fraction = ops.check_range("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=False)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        out = {}
        for c, v in sorted(payload.items()):
            where = None if self.fraction == 1.0 else ctx.rng.random(np.size(v)) < self.fraction
            out[c] = ops.flip_bits(v, self.bits, where)
        return out
