"""Coordinate-wise statistics and robust centres: median, trimmed mean, geometric median."""

from __future__ import annotations

import torch

from peer.defenses.ops.distances import norm, row_norms


def median(x: torch.Tensor) -> torch.Tensor:
    """True coordinate-wise median of the rows: the middle value for an odd count, the mean
    of the two middle values for an even count (``torch.median`` returns the lower one)."""
    n = x.shape[0]
    s = torch.sort(x, dim=0).values
    if n % 2 == 1:
        return s[n // 2].clone()
    return (s[n // 2 - 1] + s[n // 2]) / 2


def trimmed_mean(x: torch.Tensor, b: int) -> torch.Tensor:
    """Coordinate-wise mean after removing the ``b`` largest and ``b`` smallest values
    (requires ``2b < n``)."""
    n = x.shape[0]
    if not 0 <= 2 * b < n:
        raise ValueError(f"cannot trim b={b} from each side of {n} values")
    s = torch.sort(x, dim=0).values
    return s[b : n - b].mean(dim=0)


def closest_to_median_mean(x: torch.Tensor, beta: int) -> torch.Tensor:
    """Per coordinate, the mean of the ``beta`` values closest to the coordinate's median
    (Bulyan's second phase). Equal distances: the earlier row wins."""
    n = x.shape[0]
    if not 1 <= beta <= n:
        raise ValueError(f"beta={beta} must be in [1, {n}]")
    dev = (x - median(x)).abs()
    order = torch.sort(dev, dim=0, stable=True).indices[:beta]
    return torch.gather(x, 0, order).mean(dim=0)


def weiszfeld(x: torch.Tensor, *, eps: float, max_iter: int, tol: float = 0.0) -> torch.Tensor:
    r"""Smoothed Weiszfeld iterations for the geometric median of the rows of ``x``:

    .. math:: z \leftarrow \frac{\sum_i x_i / \max(\varepsilon, \lVert x_i - z\rVert)}
                            {\sum_i 1 / \max(\varepsilon, \lVert x_i - z\rVert)}

    from z = 0 (as ByzFL starts; the first step is already a convex combination of the
    rows), at most ``max_iter`` times, stopping early once the step moves z by at most
    ``tol * (1 + ||z||)`` (``tol = 0``: never early)."""
    z = torch.zeros(x.shape[1], dtype=torch.float64)
    for _ in range(max_iter):
        beta = 1.0 / row_norms(x - z).clamp(min=eps)
        new = (beta[:, None] * x).sum(dim=0) / beta.sum()
        moved = norm(new - z)
        z = new
        if moved <= tol * (1.0 + norm(z)):
            break
    return z
