"""Norm clipping of each received chunk's deviation from the own chunk."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("norm_clip")
class NormClip(RobustDefense):
    r"""Clip each payload's deviation from the own chunk, then average uniformly (CDL).

    With own chunk :math:`x_c` (length :math:`d_c`) and payloads :math:`r_1..r_m`:

    .. math::

        \tau_c = \tau\sqrt{d_c / P}, \qquad
        r_j' = x_c + (r_j - x_c)\min\!\left(1, \frac{\tau_c}{\lVert r_j - x_c\rVert}\right),
        \qquad x_c \leftarrow \frac{1}{m+1}\Big(x_c + \sum_j r_j'\Big)

    Norm-difference clipping from Sun et al., "Can You Really Backdoor Federated
    Learning?" (2019), used in decentralized learning by Syros et al. (2024).

    Chunk-level adaptation: ``tau`` is a bound on the L2 distance between two *whole*
    models (P = ``ctx.model_size`` parameters); a chunk of :math:`d_c` coordinates gets
    the share :math:`\tau\sqrt{d_c/P}`, so the chunk thresholds add up in squares to
    :math:`\tau^2`. With P unknown (0) ``tau`` is used unscaled.

    ``clip_own = true``: clipping as its source defines it. Sun et al. 2019 clip every
    participant's *update* around the model the round started from, so with
    :math:`b_c` = ``ctx.own_before`` the own update is clipped too:
    :math:`x_c \leftarrow b_c + \frac{1}{m+1}\big(\operatorname{clip}(x_c - b_c, \tau_c)
    + \sum_j \operatorname{clip}(r_j - b_c, \tau_c)\big)`
    (:func:`peer.defenses.ops.clipped_updates_average`). The default (false) is the
    decentralized form of Syros et al. (2024), which clips the neighbors' deviations from
    the own trained chunk and never the own progress. ``own_before`` None -> the default.

    Fallback: no payload -> the own chunk; one or two payloads are clipped the same way.
    Payloads holding NaN/Inf are discarded first.
    """

    accepts_pre = "rows"  # only pre steps that keep the rows: row 0 is the own chunk

    def __init__(self, *, tau: float = 1.0, clip_own: bool = False) -> None:
        self.tau = ops.check_positive("tau", tau)
        self.clip_own = ops.check_flag("clip_own", clip_own)

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        tau_c = ops.chunk_threshold(self.tau, x.shape[1], ctx.model_size)
        if self.clip_own and ctx.own_before is not None:
            return ops.clipped_updates_average(x, ctx.own_before, tau_c)
        return ops.clipped_average(x, tau_c)
