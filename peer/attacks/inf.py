"""Inf: payloads of +infinity (or of one huge finite value)."""

from __future__ import annotations

import math

import numpy as np

from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


@ATTACKS.register("inf")
class InfAttack(Attack):
    r"""Send every coordinate of every chunk as ``value``: :math:`\tilde x_c = v\,\mathbf{1}`,
    default :math:`v = +\infty`.

    ByzFL 0.0.11 ``Inf`` (LPD-EPFL's library; no paper): a stress test of the
    aggregation code rather than of its robustness. byzemu's codec carries non-finite
    float32 values, and every robust rule drops payloads holding NaN/Inf before
    aggregating (``RobustDefense``), so against them +inf amounts to a silent neighbor;
    ``cdl`` averages it in and the model becomes non-finite. A finite ``value`` (e.g.
    ``3e38``, near float32's maximum) is the NaN-free variant: it passes the finiteness
    check and must be stopped by the rule itself. No knowledge needed.
    """

    def __init__(self, *, value: float = math.inf, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"value={value!r} must be a number (inf allowed, not NaN)")
        if abs(value) > float(np.finfo(np.float32).max) and math.isfinite(value):
            raise ValueError(f"value={value} overflows float32; use inf or at most 3.4e38")
        self.value = float(value)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        return {c: np.full(np.shape(v), self.value, dtype=np.float32) for c, v in sorted(payload.items())}
