"""Norm clipping with a threshold taken from the observed deviations."""

from __future__ import annotations

import math

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("adaptive_norm_clip")
class AdaptiveNormClip(RobustDefense):
    r"""Norm clipping whose threshold follows the median of the observed deviations.

    Each payload's deviation from the own chunk is clipped to a threshold, then the own
    chunk and the clipped payloads are averaged uniformly, as in ``norm_clip``:
    :math:`r_j' = x_c + \operatorname{clip}(r_j - x_c, \tau_c)`,
    :math:`x_c \leftarrow \frac{1}{m+1}(x_c + \sum_j r_j')`.

    The threshold is :math:`\tau_c = \kappa\, s` (:math:`\kappa` = ``factor``) where the
    level :math:`s` is a median of observed deviation norms, smoothed over rounds by
    :math:`s \leftarrow \beta s + (1-\beta)\mu_t` (:math:`\beta` = ``momentum``,
    0 = this round only; the first observation sets :math:`s = \mu_t`):

    * ``pool = "round"`` (default): :math:`\mu_t` is the median, over **every** payload
      received this round (all senders, all chunk indices), of the deviation norm scaled
      to the whole model, :math:`\lVert r_{j,c} - x_c\rVert\sqrt{P/d_c}`; chunk c then
      uses :math:`\tau_c = \kappa\, s\sqrt{d_c/P}`. One level per peer.
    * ``pool = "chunk"``: :math:`\mu_t` is the median over the payloads of chunk index c
      only, one level per index (no scaling needed).

    Adaptive clipping in the spirit of Sun et al., "Can You Really Backdoor Federated
    Learning?" (2019), with a data-driven bound (a median of observed norms, as in
    adaptive clipping for DP-FL, Andrew et al. 2021).

    Chunk-level adaptation: a peer receives only 1-2 payloads per index in a sparse graph,
    so a per-index median is the attacker's own deviation whenever it is the only sender
    of that index and clips nothing. Pooling the round's payloads over all indices (about
    degree x ``chunks.per_neighbor`` of them) puts the level at the honest majority's
    deviation, which is why ``round`` is the default; ``chunk`` is kept for comparison.

    ``clip_own = true``: as ``norm_clip``'s, every update including the own one is
    clipped to :math:`\tau_c` around the own pre-training chunk
    (:func:`peer.defenses.ops.clipped_updates_average`; Sun et al. 2019's norm-difference
    clipping); the level is measured as above.

    Fallback: no payload -> the own chunk (the level is not updated). With ``pool =
    "round"`` used outside a peer (``begin_round`` not called for this round), the
    per-index median of this chunk's payloads stands in for the round's. Payloads holding
    NaN/Inf are discarded first. The median of an even count is the mean of the two
    middle values.
    """

    def __init__(
        self, *, factor: float = 1.0, momentum: float = 0.0, pool: str = "round", clip_own: bool = False
    ) -> None:
        self.clip_own = ops.check_flag("clip_own", clip_own)
        self.factor = ops.check_positive("factor", factor)
        self.momentum = ops.check_range("momentum", momentum, 0.0, 1.0, lo_open=False, hi_open=True)
        if pool not in ("round", "chunk"):
            raise ValueError(f"pool={pool!r} must be 'round' or 'chunk'")
        self.pool = pool
        self._level: dict[int, float] = {}  # pool = chunk: per index
        self._round_level: float | None = None  # pool = round
        self._round = -1

    def _smooth(self, prev: float | None, mu: float) -> float:
        return mu if prev is None else self.momentum * prev + (1.0 - self.momentum) * mu

    def begin_round(
        self,
        round_: int,
        own: torch.Tensor,
        received: dict[int, dict[int, torch.Tensor]],
        bounds: list[tuple[int, int]],
    ) -> None:
        if self.pool != "round":
            return
        size = own.numel()
        scaled = []
        for sender in sorted(received):
            for c in sorted(received[sender]):
                r = received[sender][c]
                lo, hi = bounds[c]
                if not bool(torch.isfinite(r).all()):
                    continue
                scaled.append(ops.norm(r.reshape(-1) - own[lo:hi]) * math.sqrt(size / (hi - lo)))
        if scaled:
            mu = float(ops.median(torch.tensor(scaled, dtype=torch.float64).reshape(-1, 1))[0])
            self._round_level = self._smooth(self._round_level, mu)
            self._round = round_

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        if self.pool == "round" and self._round == ctx.round and self._round_level is not None:
            tau = ops.chunk_threshold(self.factor * self._round_level, x.shape[1], ctx.model_size)
            return self._clipped(x, ctx, tau)
        deviations = ops.row_norms(x[1:] - x[0]).reshape(-1, 1)
        mu = float(ops.median(deviations)[0])
        level = self._smooth(self._level.get(ctx.index), mu)
        self._level[ctx.index] = level
        return self._clipped(x, ctx, self.factor * level)

    def _clipped(self, x: torch.Tensor, ctx: ChunkContext, tau: float) -> torch.Tensor:
        if self.clip_own and ctx.own_before is not None:
            return ops.clipped_updates_average(x, ctx.own_before, tau)
        return ops.clipped_average(x, tau)
