"""ARC: adaptive robust clipping, a pre-aggregation step."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext
from peer.defenses.bounded import BoundedStep
from peer.defenses.registry import PRE_STEPS


@PRE_STEPS.register("arc")
class AdaptiveRobustClipping(BoundedStep):
    r"""Clip the k = floor(2 (f / n) (n - f)) largest deviations from the own chunk to the
    norm of the largest remaining one:

    .. math:: u_i = x_i - x_0,\qquad
              y_i = x_0 + u_i \min\!\Big(1, \frac{\lVert u_{(n-k)}\rVert}{\lVert u_i\rVert}\Big)

    (:math:`u_{(n-k)}` the (n - k)-th smallest deviation by norm). Allouah et al., "The
    Vital Role of Gradient Clipping in Byzantine-Resilient Distributed Learning"
    (arXiv:2405.14432, 2024), ARC. As ByzFL 0.0.11 ``ARC`` applied to the deviations
    (tests/test_byzfl_parity.py).

    Adaptation to models: ARC clips gradients (vectors around zero); a peer's chunks are
    model values, so the deviations from the own chunk :math:`x_0` are clipped (the own
    chunk's deviation is 0 and is never clipped). ``f`` defaults to the per-node bound
    :func:`peer.defenses.ops.byzantine_bound`. Rows are kept (``keeps_rows``).

    Edge cases: f = 0 or n small enough that k = 0 -> the stack unchanged (e.g. one
    payload with f = 1: k = floor(2 * 1/2 * 1) = 1, the payload clipped to the own
    chunk's deviation 0, i.e. replaced by the own chunk).
    """

    keeps_rows = True

    def apply(self, x: torch.Tensor, ctx: ChunkContext) -> torch.Tensor:
        n = x.shape[0]
        f = self.f_for(ctx, n)
        count = int(2 * f / n * (n - f))
        return x[0] + ops.clip_largest(x - x[0], count)
