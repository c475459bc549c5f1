"""Clipping: a vector to a norm, the largest rows, averages of clipped differences."""

from __future__ import annotations

import math

import torch

from peer.defenses.ops.distances import norm, row_norms
from peer.defenses.ops.ranking import argsort


def clip(v: torch.Tensor, tau: float) -> torch.Tensor:
    """``v * min(1, tau / ||v||)``: ``v`` scaled into the ball of radius ``tau``; a zero
    vector stays zero."""
    n = norm(v)
    if n <= tau or n == 0.0:
        return v.clone()
    return v * (tau / n)


def chunk_threshold(tau: float, chunk_len: int, model_size: int) -> float:
    """A whole-model L2 threshold scaled to a chunk: ``tau * sqrt(d_c / P)``.

    If the model's deviation is spread evenly over its P coordinates, a chunk of d_c of
    them carries a share sqrt(d_c / P) of its norm, so chunk thresholds add up (in
    squares) to the model threshold. With P unknown (0) or smaller than the chunk, tau is
    used as it is.
    """
    if model_size <= 0 or model_size < chunk_len:
        return float(tau)
    return float(tau) * math.sqrt(chunk_len / model_size)


def clipped_average(x: torch.Tensor, tau: float, *, include_center: bool = True) -> torch.Tensor:
    r"""Clipped average around row 0 of a stack: ``x_0 + 1/n \sum_i clip(x_i - x_0, tau)``.

    With ``include_center`` (the default) row 0 is itself one of the n averaged values
    (its clipped deviation is zero): the uniform average of the own chunk and the
    payloads clipped to the ball of radius tau around it, n = rows. Without it, row 0 is
    only the center and the sum runs over rows 1.. (n = rows - 1): one CenteredClip step.
    """
    center = x[0]
    total = torch.zeros_like(center)
    for i in range(1, x.shape[0]):
        total += clip(x[i] - center, tau)
    n = x.shape[0] if include_center else x.shape[0] - 1
    return center + total / n


def clipped_updates_average(x: torch.Tensor, before: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Every row's update from ``before`` clipped, then averaged:
    ``before + 1/n \sum_i clip(x_i - before, tau)`` over all n rows of ``x`` (row 0, the
    own chunk, included): norm-difference clipping as Sun et al., "Can You Really Backdoor
    Federated Learning?" (2019) define it, every participant's update clipped around the
    model the round started from."""
    center = before.reshape(-1).to(x.dtype)
    total = torch.zeros_like(center)
    for i in range(x.shape[0]):
        total += clip(x[i] - center, tau)
    return center + total / x.shape[0]


def clip_largest(x: torch.Tensor, count: int) -> torch.Tensor:
    """The rows of ``x`` with the ``count`` largest norms scaled down to the norm of the
    largest remaining row (ARC's clipping; ties by position, later rows clipped first).
    ``count = 0`` returns a copy."""
    n = x.shape[0]
    out = x.clone()
    if count <= 0:
        return out
    order = argsort(row_norms(x).tolist())
    threshold = float(row_norms(x)[order[n - count - 1]]) if count < n else 0.0
    for i in order[n - count :]:
        out[i] = clip(x[i], threshold)
    return out
