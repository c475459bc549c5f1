"""Spectra and curvature: the top eigenpair of weighted differences, an L-BFGS Hessian-vector product."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from peer.defenses.ops.stacks import EPS


def top_eigen(diffs: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    r"""Largest eigenvalue and its unit eigenvector of :math:`\sum_i w_i\, d_i d_i^\top`
    (rows :math:`d_i` of ``diffs``, weights 1 when None), computed exactly through the
    small ``(n, n)`` Gram matrix :math:`W^{1/2} D D^\top W^{1/2}` (n rows, any d).
    A zero matrix gives (0, zero vector)."""
    w = torch.ones(diffs.shape[0], dtype=torch.float64) if weights is None else weights
    root = w.clamp(min=0.0).sqrt()
    scaled = diffs * root[:, None]
    values, vectors = torch.linalg.eigh(scaled @ scaled.T)
    top = float(values[-1])
    if top <= EPS:
        return 0.0, torch.zeros(diffs.shape[1], dtype=torch.float64)
    v = scaled.T @ vectors[:, -1]
    return top, v / torch.linalg.vector_norm(v)


def lbfgs_hvp(dw: Sequence[torch.Tensor], dg: Sequence[torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    r"""Hessian-vector product :math:`\hat H v` of the compact L-BFGS approximation (Byrd,
    Nocedal & Schnabel 1994) from the model differences ``dw`` and gradient differences
    ``dg`` (oldest first; FLDetector, Zhang et al. KDD 2022, Algorithm 1):

    .. math::

        A = \Delta W^\top \Delta G,\ D = \operatorname{diag}(A),\ L = \operatorname{tril}(A, -1),\
        \sigma = \frac{\Delta g_N^\top \Delta w_N}{\Delta w_N^\top \Delta w_N},\

        p = \begin{bmatrix} -D & L^\top \\ L & \sigma \Delta W^\top \Delta W\end{bmatrix}^{-1}
            \begin{bmatrix}\Delta G^\top v \\ \sigma \Delta W^\top v\end{bmatrix},\quad
        \hat H v = \sigma v - [\Delta G\ \ \sigma \Delta W]\, p .

    With no history, or a singular system, or :math:`\Delta w_N = 0`, it returns zeros
    (no curvature known)."""
    if not dw:
        return torch.zeros_like(v)
    W, G = torch.stack(list(dw), dim=1), torch.stack(list(dg), dim=1)
    wn = float(W[:, -1] @ W[:, -1])
    if wn <= EPS:
        return torch.zeros_like(v)
    sigma = float(G[:, -1] @ W[:, -1]) / wn
    A = W.T @ G
    D, L = torch.diag(torch.diag(A)), torch.tril(A, diagonal=-1)
    mat = torch.cat([torch.cat([-D, L.T], dim=1), torch.cat([L, sigma * (W.T @ W)], dim=1)], dim=0)
    rhs = torch.cat([G.T @ v, sigma * (W.T @ v)])
    try:
        p = torch.linalg.solve(mat, rhs)
    except RuntimeError:  # singular: no usable curvature
        return torch.zeros_like(v)
    return sigma * v - torch.cat([G, sigma * W], dim=1) @ p
