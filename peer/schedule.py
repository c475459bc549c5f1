"""Learning-rate schedules over local epochs (``train.lr_schedule``).

A schedule maps the number k of completed passes over a peer's local shard (epochs,
counted by :class:`peer.training.LocalTrainer` each time it redraws its permutation) to
the learning rate of the next SGD step:

* ``constant``: :math:`\\lambda(k) = \\lambda_0` (byzemu's default);
* ``fading``: :math:`\\lambda(k) = \\lambda_0 \\cdot c / (c + k)` with c = ``lr_fading``
  (20): Guo et al.'s rule (Guo et al. 2022, Sec. VI-A: "a fading learning rate
  lambda(k) = lambda_0 * 20 / (20 + k) where k is the number of epochs");
* ``step``: :math:`\\lambda(k) = \\lambda_0 \\cdot \\gamma^{\\lfloor k / E\\rfloor}` with
  E = ``lr_step_epochs`` and :math:`\\gamma` = ``lr_step_gamma``.

The value depends only on k, which the trainer checkpoints, so a resumed run and the
in-process reference follow the same rates bit for bit (one Python float expression per
step, the same on every machine).
"""

from __future__ import annotations

from collections.abc import Callable

SCHEDULES: tuple[str, ...] = ("constant", "fading", "step")


def lr_schedule(
    name: str, lr: float, *, fading: float = 20.0, step_epochs: int = 10, step_gamma: float = 0.1
) -> Callable[[int], float]:
    """The schedule ``name`` with base rate ``lr``: a function epoch k -> learning rate."""
    if name == "constant":
        return lambda k: lr
    if name == "fading":
        return lambda k: lr * fading / (fading + k)
    if name == "step":
        return lambda k: lr * step_gamma ** (k // step_epochs)
    raise ValueError(f"train.lr_schedule={name!r} is unknown; choose one of {', '.join(SCHEDULES)}")
