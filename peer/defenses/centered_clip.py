"""Centered clipping around the own chunk (CenteredClip / ClippedGossip)."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("centered_clip")
class CenteredClip(RobustDefense):
    r"""Centered clipping started at the own chunk.

    Over the n = m + 1 values :math:`x_0 = x_c` (own) and :math:`x_j = r_j`, starting at
    :math:`v_0 = x_c`, for :math:`l = 0..L-1`:

    .. math::

        v_{l+1} = v_l + \frac{1}{m+1}\sum_{i=0}^{m} \operatorname{clip}(x_i - v_l, \tau_c),
        \qquad \operatorname{clip}(v, \tau) = v\min(1, \tau/\lVert v\rVert)

    and :math:`x_c \leftarrow v_L`. With the default L = 1 this is
    :math:`x_c + \frac{1}{m+1}\sum_j \operatorname{clip}(r_j - x_c, \tau_c)`, the
    self-centered clipping step of ClippedGossip. CenteredClip: Karimireddy, He & Jaggi,
    "Learning from History for Byzantine Robust Optimization" (ICML 2021); centered at
    the own model instead of the previous aggregate, as in He, Karimireddy & Jaggi,
    "Byzantine-Robust Decentralized Learning via ClippedGossip" (2022).

    Chunk-level adaptation: ``tau`` is a whole-model radius scaled to the chunk as
    :math:`\tau_c = \tau\sqrt{d_c / P}` (as ``norm_clip``); uniform gossip weights
    1/(m+1) over the payloads received for this index.

    Fallback: no payload -> the own chunk. Payloads holding NaN/Inf are discarded first.
    """

    accepts_pre = "rows"  # only pre steps that keep the rows: row 0 is the own chunk

    def __init__(self, *, tau: float = 1.0, iterations: int = 1) -> None:
        self.tau = ops.check_positive("tau", tau)
        self.iterations = ops.check_count("iterations", iterations, minimum=1)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        tau_c = ops.chunk_threshold(self.tau, x.shape[1], ctx.model_size)
        v = x[0].clone()
        for _ in range(self.iterations):
            v = ops.clipped_average(torch.cat([v.unsqueeze(0), x]), tau_c, include_center=False)
        return v


@DEFENSES.register("clipped_gossip")
class ClippedGossip(CenteredClip):
    r"""ClippedGossip (He, Karimireddy & Jaggi 2022) with uniform weights:
    :math:`x_c \leftarrow x_c + \frac{1}{m+1}\sum_j \operatorname{clip}(r_j - x_c, \tau_c)`,
    :math:`\tau_c = \tau\sqrt{d_c/P}`; ``centered_clip`` with one iteration.

    With the same ``tau`` this coincides with ``norm_clip`` (clip-then-average around the
    own chunk); both names are kept so that experiments can cite either paper. The
    paper's adaptive choice of tau is not implemented: tau is fixed.
    """

    def __init__(self, *, tau: float = 1.0) -> None:
        super().__init__(tau=tau, iterations=1)
