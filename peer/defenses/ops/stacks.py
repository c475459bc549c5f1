"""Stacks: own chunk and received payloads as one float64 ``(n, d)`` tensor, and back."""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: below this a norm or a spread counts as zero
EPS = 1e-12


def stack(own: torch.Tensor, received: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(1 + m, d)`` float64 stack: own chunk first, then the received payloads."""
    rows = [own.reshape(-1), *(r.reshape(-1) for r in received)]
    return torch.stack([r.to(torch.float64) for r in rows])


def flat(t: torch.Tensor) -> torch.Tensor:
    """A chunk as a flat float64 vector (a new tensor)."""
    return t.reshape(-1).to(torch.float64)


def to_output(vec: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A new float32 tensor of ``like``'s shape holding ``vec`` (never aliases an input)."""
    return vec.to(torch.float32).reshape(like.shape).clone()


def unchanged(own: torch.Tensor) -> torch.Tensor:
    """The own chunk as a new float32 tensor (the result when nothing usable arrived)."""
    return to_output(flat(own), own)


def finite_only(received: Sequence[torch.Tensor], senders: Sequence[int]) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    """Drop payloads holding NaN or +-Inf (no model chunk can), keeping senders aligned.

    ``senders`` may be shorter than ``received`` (e.g. a context built without ids); the
    missing ids are then taken to be the payloads' positions.
    """
    ids = list(senders) + list(range(len(senders), len(received)))
    kept = [(r, s) for r, s in zip(received, ids) if bool(torch.isfinite(r).all())]
    return [r for r, _ in kept], tuple(s for _, s in kept)


def mean_rows(x: torch.Tensor, index: Sequence[int] | None = None) -> torch.Tensor:
    """Mean of the rows of ``x`` (of the rows listed in ``index`` when given)."""
    if index is not None:
        x = x[list(index)]
    return x.mean(dim=0)


def bucket_means(x: torch.Tensor, s: int) -> torch.Tensor:
    """Means of consecutive buckets of ``s`` rows of ``x`` (the last bucket holds what is
    left): a ``(ceil(n / s), d)`` stack."""
    return torch.stack([x[i : i + s].mean(dim=0) for i in range(0, x.shape[0], s)])
