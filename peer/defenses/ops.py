"""The math every defense shares, by topic: stacks; norms, distances and similarities;
clipping; coordinate-wise statistics and robust centres; ranking and selection; Krum;
spectra and curvature; one-dimensional clustering; Byzantine bounds.

Defenses read as policy; the linear algebra lives here. Conventions:

* A *stack* is a 2-D ``float64`` tensor of shape ``(n, d)``: row 0 is the own chunk,
  rows 1..m the received payloads in sender-id order (flattened). Working in float64
  keeps squared distances of large (e.g. adversarial) values finite and makes hand-made
  test values exact; :func:`to_output` casts the result back to a new float32 tensor of
  the own chunk's shape.
* Every selection is deterministic: ties are broken by position (own chunk first, then
  senders by id), never at random.
* Nothing here modifies its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from peer.validation import (  # noqa: F401  (re-exported: rules call ops.check_*)
    check_choice,
    check_count,
    check_finite,
    check_nonnegative,
    check_positive,
    check_range,
)

_EPS = 1e-12


# ---------------------------------------------------------------------- stacks


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


def finite_only(
    received: Sequence[torch.Tensor], senders: Sequence[int]
) -> tuple[list[torch.Tensor], tuple[int, ...]]:
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


# ---------------------------------------------- norms, distances, similarities


def norm(v: torch.Tensor) -> float:
    """Euclidean norm of a vector, as a Python float."""
    return float(torch.linalg.vector_norm(v.to(torch.float64)))


def row_norms(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each row of ``x``."""
    return torch.linalg.vector_norm(x, dim=1)


def sq_dists_to(x: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of each row of ``x`` to ``center``."""
    return (x - center).pow(2).sum(dim=1)


def pairwise_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` float64 squared Euclidean distances between the rows of ``x`` (exact
    differences, no Gram-matrix cancellation; n is a handful of neighbors). The one
    implementation under Krum, Multi-Krum and Bulyan, and under the attacks' local Krum
    (:mod:`peer.attacks.ops`)."""
    n = x.shape[0]
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = (x[i] - x[j]).pow(2).sum()
    return out


def pairwise_dists(x: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` Euclidean distances between the rows of ``x`` (square roots of
    :func:`pairwise_sq_dists`)."""
    return pairwise_sq_dists(x).sqrt()


def nearest_rows(d: torch.Tensor, i: int, k: int) -> list[int]:
    """The ``k`` rows nearest to row ``i`` by the distance matrix ``d``, row i itself
    included (distance 0); ties by position."""
    return argsort(d[i].tolist())[:k]


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) = <a, b> / (||a|| ||b||); 0 when either vector is zero."""
    a, b = flat(a), flat(b)
    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    if na <= _EPS or nb <= _EPS:
        return 0.0
    return float(torch.dot(a, b)) / (na * nb)


def wasserstein_1d_sum(a: torch.Tensor, b: torch.Tensor) -> float:
    """Sum over the columns of the 1-D Wasserstein-1 distance between the empirical
    distributions of ``a[:, k]`` and ``b[:, k]`` (equal sample counts: the mean absolute
    difference of the sorted samples)."""
    sa, sb = torch.sort(a, dim=0).values, torch.sort(b, dim=0).values
    return float((sa - sb).abs().mean(dim=0).sum())


# -------------------------------------------------------------------- clipping


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


# ---------------------------------- coordinate-wise statistics, robust centres


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


# ------------------------------------------------------- ranking and selection


def argsort(values: Sequence[float], *, descending: bool = False) -> list[int]:
    """Positions sorted by value, ties by position (deterministic)."""
    sign = -1.0 if descending else 1.0
    return sorted(range(len(values)), key=lambda i: (sign * float(values[i]), i))


def argmin(values: Sequence[float]) -> int:
    """Position of the smallest value; the first one on ties."""
    return argsort(values)[0]


def min_diameter_subset(x: torch.Tensor, k: int) -> tuple[int, ...]:
    """The ``k`` rows of smallest diameter (largest pairwise distance), over all
    C(n, k) subsets in lexicographic order (the first one on ties)."""
    import itertools

    d = pairwise_dists(x)
    best, best_diam = tuple(range(k)), math.inf
    for subset in itertools.combinations(range(x.shape[0]), k):
        diam = max((float(d[a, b]) for a, b in itertools.combinations(subset, 2)), default=0.0)
        if diam < best_diam:
            best, best_diam = subset, diam
    return best


# ------------------------------------------------------------------------ Krum


def neighborhood_scores(d2: torch.Tensor | list[list[float]], k: int) -> list[float]:
    """For each candidate, the sum of its squared distances to its ``k`` nearest other
    candidates, from a ``(n, n)`` squared-distance matrix (a tensor, or its rows as
    lists of floats; ``1 <= k <= n - 1``), summed in ascending order."""
    n = len(d2)
    if not 1 <= k <= n - 1:
        raise ValueError(f"neighborhood k={k} must be in [1, {n - 1}]")
    rows = d2.tolist() if isinstance(d2, torch.Tensor) else d2  # the values of float(d2[i, j])
    scores = []
    for i in range(n):
        others = sorted(rows[i][j] for j in range(n) if j != i)
        scores.append(sum(others[:k]))
    return scores


def krum_feasible(n: int, f: int) -> bool:
    """Whether Krum's neighborhood ``n - f - 2`` holds at least one other candidate."""
    return n - f - 2 >= 1


def krum_scores(d2: torch.Tensor | list[list[float]], f: int) -> list[float]:
    """Krum scores (Blanchard et al., NeurIPS 2017): for each of the n candidates, the sum of
    its squared distances to its ``n - f - 2`` nearest other candidates (requires
    ``n - f - 2 >= 1``)."""
    n = len(d2)
    if not krum_feasible(n, f):
        raise ValueError(f"Krum needs n - f - 2 >= 1, got n={n}, f={f}")
    return neighborhood_scores(d2, n - f - 2)


def iterated_krum(x: torch.Tensor, f: int, count: int) -> list[int]:
    """Bulyan's first phase: pick ``count`` rows by repeatedly applying Krum (same f) to the
    rows not yet picked; returns their positions in the order picked. Once fewer than
    f + 3 rows remain, Krum's neighborhood ``n' - f - 2`` is raised to 1 (the nearest
    other row); a single remaining row is taken as it is."""
    remaining = list(range(x.shape[0]))
    picked: list[int] = []
    d2 = pairwise_sq_dists(x)
    while len(picked) < count and remaining:
        if len(remaining) == 1:
            best = remaining[0]
        else:
            k = max(1, len(remaining) - f - 2)
            sub = d2[remaining][:, remaining]
            best = remaining[argmin(neighborhood_scores(sub, k))]
        picked.append(best)
        remaining.remove(best)
    return picked


# ------------------------------------------------------- spectra and curvature


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
    if top <= _EPS:
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
    if wn <= _EPS:
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


# -------------------------------------------------- one-dimensional clustering


def two_median_1d(values: Sequence[float]) -> tuple[list[int], list[int]]:
    """Optimal 2-median clustering of scalars: the split of the sorted values into a low
    and a high group minimising the sum of absolute deviations from each group's median
    (exact: every split point is tried; ties: the earliest split). Returns the positions
    of (low group, high group); with fewer than two values the high group is empty."""
    order = argsort(values)
    if len(order) < 2:
        return order, []

    def cost(group: list[int]) -> float:
        vals = sorted(float(values[i]) for i in group)
        med = (vals[(len(vals) - 1) // 2] + vals[len(vals) // 2]) / 2
        return sum(abs(v - med) for v in vals)

    splits = range(1, len(order))
    best = min(splits, key=lambda s: (cost(order[:s]) + cost(order[s:]), s))
    return sorted(order[:best]), sorted(order[best:])


def kmeans2_1d(values: Sequence[float]) -> tuple[list[int], list[int], float]:
    """Optimal 2-means of scalars: (low group, high group, within sum of squares), by
    trying every split of the sorted values (ties: the earliest split)."""
    order = argsort(values)

    def ss(group: list[int]) -> float:
        vals = [float(values[i]) for i in group]
        mu = sum(vals) / len(vals)
        return sum((v - mu) ** 2 for v in vals)

    best = min(range(1, len(order)), key=lambda s: (ss(order[:s]) + ss(order[s:]), s))
    return sorted(order[:best]), sorted(order[best:]), ss(order[:best]) + ss(order[best:])


def gap_prefers_two(values: Sequence[float], *, refs: int, seed: int | Sequence[int]) -> bool:
    """Gap statistic (Tibshirani, Walther & Hastie 2001) on scalars, k in {1, 2}: True
    when two clusters fit, i.e. Gap(1) < Gap(2) - s_2, with ``refs`` uniform reference
    samples over [min, max] drawn from ``numpy.random.default_rng(seed)``."""
    import numpy as np

    vals = [float(v) for v in values]
    if len(vals) < 3 or max(vals) - min(vals) <= _EPS:
        return False
    rng = np.random.default_rng(seed)

    def log_w(sample: Sequence[float]) -> tuple[float, float]:
        mu = sum(sample) / len(sample)
        w1 = sum((v - mu) ** 2 for v in sample)
        return math.log(max(w1, _EPS)), math.log(max(kmeans2_1d(sample)[2], _EPS))

    ref = [log_w(rng.uniform(min(vals), max(vals), len(vals)).tolist()) for _ in range(refs)]
    obs = log_w(vals)
    gaps = [sum(r[k] for r in ref) / refs - obs[k] for k in (0, 1)]
    sd2 = math.sqrt(sum((r[1] - sum(q[1] for q in ref) / refs) ** 2 for r in ref) / refs)
    return gaps[0] < gaps[1] - sd2 * math.sqrt(1 + 1 / refs)


# ------------------------------------------------------------ Byzantine bounds


def byzantine_bound(degree: int, received: int = 0) -> int:
    """Per-node Byzantine bound f_i: the largest f with ``n >= 2f + 3`` where
    ``n = |N_i| + 1`` counts the peer and all its neighbors, i.e.
    ``f_i = max(0, floor((|N_i| - 2) / 2))`` (the Krum condition n > 2f + 2 applied to a
    node's closed neighborhood).

    ``degree`` is |N_i|; when it is unknown (0) or smaller than the number of payloads
    received, the number received is used instead. f_i bounds how many of a peer's
    neighbors the rules assume to be Byzantine, for every chunk index: a Byzantine
    neighbor may send every chunk, so the bound is not lowered when fewer payloads arrive.
    """
    n_neighbors = max(int(degree), int(received))
    return max(0, (n_neighbors - 2) // 2)


def eq13_bound(degree: int, received: int = 0, *, rho: float = 0.4, rho_central: float = 0.5) -> int:
    r"""Per-node Byzantine bound of Guo et al. (002_b98f58265f12497c.txt, Eq. (13)):
    :math:`\hat n_i = \lceil |N_i| \cdot \min\{1 - \rho_i, \rho_{central}\}\rceil`, the number
    of Byzantine *neighbors* node i assumes (|N_i| counts neighbors only, not i itself).

    ``rho`` is :math:`\rho_i`, the assumed ratio of benign neighbors (002 sets 0.4 for every
    benign node, Sec. VI-A); ``rho_central`` the largest Byzantine ratio the centralized
    rule tolerates (002 names it without a value). ``degree`` is |N_i|; when unknown (0)
    or below the number of payloads received, that number is used. A 1e-9 slack keeps
    products such as 10 * 0.6 = 6.000000000000001 from rounding up.
    """
    n_neighbors = max(int(degree), int(received))
    return max(0, math.ceil(n_neighbors * min(1.0 - rho, rho_central) - 1e-9))


def default_bound(
    f: int | None, ctx_degree: int, received: int, *, rho: float, rho_central: float, cap: int
) -> int:
    """``f`` when given, else Eq. (13)'s bound (:func:`eq13_bound`) capped at ``cap``, the
    largest bound the rule can apply to the candidates at hand (never below 0)."""
    if f is not None:
        return f
    return max(0, min(eq13_bound(ctx_degree, received, rho=rho, rho_central=rho_central), cap))
