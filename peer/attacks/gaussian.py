"""Gaussian noise attack: send random vectors instead of model chunks."""

from __future__ import annotations

import numpy as np

from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


@ATTACKS.register("gaussian")
class GaussianAttack(Attack):
    r"""Replace every sent chunk with i.i.d. Gaussian noise.

    For each chunk c sent to neighbor j in round t: :math:`\tilde{x}_c \sim
    \mathcal{N}(\mu, \sigma^2 I)`, drawn from a generator seeded by (seed, node, t, j) so
    that runs are reproducible. The standard Byzantine noise model of Blanchard et al.,
    "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent" (NeurIPS 2017),
    used as the Gaussian attack in UBAR (Guo et al. 2022).
    """

    def __init__(self, *, sigma: float = 1.0, mean: float = 0.0, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if not sigma >= 0:
            raise ValueError(f"sigma={sigma} must be >= 0")
        self.sigma = float(sigma)
        self.mean = float(mean)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        return {
            c: ctx.rng.normal(self.mean, self.sigma, size=v.shape).astype(np.float32)
            for c, v in sorted(payload.items())
        }
