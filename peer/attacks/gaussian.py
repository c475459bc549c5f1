"""Gaussian noise attack: send random vectors instead of model chunks."""

from __future__ import annotations

import numpy as np

from peer.attacks import ops
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

    ``draw`` says who shares a draw:

    * ``"independent"`` (default): a fresh vector per (attacker, round, receiver, chunk).
      Independent N(0, sigma^2 I) vectors of dimension d lie about sigma sqrt(2d) apart,
      far from each other and from the benign models, so distance-based rules (Krum)
      never pick them.
    * ``"shared"``: one vector per (round, chunk index), the same for every attacker and
      every receiver (a generator seeded by ``seed``, the round and the index): the
      Byzantine payloads coincide, so they form the tightest cluster a Krum-type score
      can see. Guo et al. 2022 (Sec. VI-C, "Gaussian attack": "random estimate vectors
      following the Gaussian distribution") give neither sigma nor whether the attackers
      share their noise; this is the reading under which a Gaussian attack can pass Krum.
    ``sigma`` (the standard deviation) applies to both.
    """

    def __init__(
        self,
        *,
        sigma: float = 1.0,
        mean: float = 0.0,
        draw: str = "independent",
        seed: int = 0,
        start_round: int = 1,
        interval: int = 1,
    ) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if not sigma >= 0:
            raise ValueError(f"sigma={sigma} must be >= 0")
        self.sigma = float(sigma)
        self.mean = float(mean)
        self.draw = ops.check_choice("draw", draw, ("independent", "shared"))
        self.seed = ops.check_int("seed", seed)

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        out = {}
        for c, v in sorted(payload.items()):
            rng = ctx.rng if self.draw == "independent" else np.random.default_rng([self.seed, ctx.round, c, 0x6A55])
            out[c] = rng.normal(self.mean, self.sigma, size=v.shape).astype(np.float32)
        return out
