"""Loss-threshold filtering with an overfitting-driven threshold schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept, RobustDefense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("loss_threshold")
class LossThreshold(RobustDefense):
    r"""Accept a payload only if it lowers the local loss by at least a threshold.

    With own chunk :math:`x_c`, payloads :math:`r_j` and :math:`\ell` = ``ctx.loss_with``:

    .. math::

        A = \{j : \ell(x_c) - \ell(r_j) \ge \theta\}, \qquad
        x_c \leftarrow \alpha x_c + (1-\alpha)\frac{1}{|A|}\sum_{j\in A} r_j

    If A is empty: before overfitting has first been detected the node learns alone
    (:math:`x_c` unchanged); once it has, A = {argmin_j :math:`\ell(r_j)`} (Eq. (5);
    lowest sender id on ties).

    Threshold schedule: :math:`\theta` starts at ``theta0``. After each evaluation
    (:meth:`observe_evaluation`) the test error 1 - accuracy is compared with the best
    so far; when the best has not improved (strictly) for ``patience`` *epochs* of local
    training, overfitting is detected: :math:`\theta` drops by ``step`` (not below
    ``theta_min``) and the count restarts. Epochs come from the driver
    (:meth:`set_epoch_length`: rounds per pass over the local shard); the epoch of
    round r is floor(r / that). Without it, each evaluation counts as one epoch. The
    paper evaluates the test error at the end of every epoch, so ``eval.every`` should
    be at most the rounds per epoch for the count to be exact.

    Masuda & Shudo, "Loss Based Byzantine Resilience for Decentralized Learning",
    Masuda & Shudo: Eq. (4) (acceptance), Eq. (5) (argmin fallback once
    overfitting occurs), Eq. (6)-(7) (mean of the accepted, mixed with alpha = 0.5);
    theta0 = 0.1, step 0.1, floor -0.1 and patience 5 epochs (Sec. IV).

    Chunk-level adaptation: :math:`\ell(r_j)` is the loss of the peer's own model with
    :math:`r_j` substituted for its own chunk c on a fixed batch of local data. The
    threshold is one value per peer (all chunk indices), driven by whole-model
    evaluations.

    Fallbacks: no payload -> the own chunk. ``ctx.loss_with`` None -> every payload is
    accepted. A non-finite loss is never accepted by the threshold (it can still be the
    argmin only if all are non-finite, in which case the first payload is taken).
    Payloads holding NaN/Inf are discarded first.
    """

    def __init__(
        self,
        *,
        theta0: float = 0.1,
        step: float = 0.1,
        theta_min: float = -0.1,
        patience: int = 5,
        alpha: float = 0.5,
    ) -> None:
        self.theta0 = ops.check_finite("theta0", theta0)
        self.step = ops.check_positive("step", step)
        self.theta_min = ops.check_finite("theta_min", theta_min)
        if self.theta_min > self.theta0:
            raise ValueError(f"theta_min={theta_min} must be <= theta0={theta0}")
        self.patience = ops.check_count("patience", patience, minimum=1)
        self.alpha = ops.check_range("alpha", alpha, 0.0, 1.0, lo_open=False, hi_open=False)
        self._drops = 0
        self._best_error = math.inf
        self._ref_epoch = 0  # epoch of the last new minimum or detection
        self._evaluations = 0
        self._epoch_rounds: float | None = None
        self._overfit = False  # overfitting detected at least once
        self._accepted = 0  # this round: payloads that passed the threshold (round_metrics)
        self._payloads = 0  # this round: payloads whose loss was compared

    def set_epoch_length(self, rounds: float) -> None:
        self._epoch_rounds = float(rounds) if rounds > 0 else None

    @property
    def theta(self) -> float:
        """The current acceptance threshold."""
        return max(self.theta_min, self.theta0 - self._drops * self.step)

    def _epoch(self, round_: int) -> int:
        if self._epoch_rounds is None:
            return self._evaluations
        return math.floor(round_ / self._epoch_rounds + 1e-9)

    def observe_evaluation(self, round_: int, accuracy: float, loss: float) -> None:
        self._evaluations += 1
        epoch = self._epoch(round_)
        error = 1.0 - float(accuracy)
        if math.isfinite(error) and error < self._best_error:
            self._best_error = error
            self._ref_epoch = epoch
            return
        if epoch - self._ref_epoch >= self.patience:
            self._overfit = True
            if self.theta > self.theta_min:
                self._drops += 1
            self._ref_epoch = epoch

    def begin_round(self, round_: int, own: torch.Tensor, received: Any, bounds: Any) -> None:
        super().begin_round(round_, own, received, bounds)
        self._accepted = self._payloads = 0

    def round_metrics(self) -> dict[str, Any]:
        """``theta``: the threshold used this round; ``lt_accepted`` of ``lt_compared``
        payloads (summed over chunk indices) passed it (before the argmin fallback)."""
        return {"theta": self.theta, "lt_accepted": self._accepted, "lt_compared": self._payloads}

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        if ctx.loss_with is None:
            accepted = list(range(kept.m))
        else:
            loss_own = float(ctx.loss_with(kept.own))
            losses = [float(ctx.loss_with(r)) for r in kept.received]
            theta = self.theta
            accepted = [j for j, loss in enumerate(losses) if math.isfinite(loss) and loss_own - loss >= theta]
            self._accepted += len(accepted)
            self._payloads += len(losses)
            if not accepted and not self._overfit:
                return x[0]  # no neighbor over the threshold, no overfitting yet: learn alone
            if not accepted:
                finite = [loss if math.isfinite(loss) else math.inf for loss in losses]
                accepted = [ops.argmin(finite)]
        return self.alpha * x[0] + (1.0 - self.alpha) * ops.mean_rows(x[1:], accepted)
