"""The own model with a payload substituted: what model-based rules (DFL-Dual's
inversion) differentiate through, per chunk (``ChunkContext.probe``) or for the whole
model (``RoundView.probe``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelProbe:
    """The peer's own model with a payload substituted for its chunk ``span`` = [lo, hi)
    of the flattened parameters (``model_with(payload)`` loads a scratch copy and returns
    it; parameters in ``model.parameters()`` order), with the facts of its data: the
    image shape (C, H, W), the number of classes, and the local SGD steps and learning
    rate of one round (a round's update divided by ``steps * lr`` is its mean gradient).
    """

    model_with: Callable[[torch.Tensor], torch.nn.Module]
    span: tuple[int, int]
    image_shape: tuple[int, ...]
    num_classes: int
    steps: int
    lr: float
