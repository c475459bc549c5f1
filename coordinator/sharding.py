"""Partition a training set among peers (IID and non-IID splits).

`make_shards` returns one array of sample indices per node: int64, sorted
ascending, pairwise disjoint. All randomness comes from a single
``numpy.random.default_rng(seed)``, so the same arguments and seed always give
the same shards.

Splits:

- ``iid``: a seeded permutation of all indices cut into n near-equal parts
  (``np.array_split``), so part sizes differ by at most one.
- ``dirichlet``: label-distribution skew as in Hsu, Qi & Brown, "Measuring the
  Effects of Non-Identical Data Distribution for Federated Visual
  Classification" (2019). For each class c (ascending), its indices are
  shuffled, proportions q ~ Dirichlet(alpha * ones(n)) are drawn, and the
  class is cut at ``floor(cumsum(q) * size_c)``. Small alpha gives very skewed
  nodes, large alpha approaches IID. The whole draw is repeated (continuing
  the same rng) until every node has at least ``min_samples`` samples.
- ``shards``: pathological non-IID from McMahan et al., "Communication-
  Efficient Learning of Deep Networks from Decentralized Data" (2017). Indices
  are shuffled, then stable-sorted by label, cut into ``n * shards_per_node``
  contiguous near-equal shards, and each node gets ``shards_per_node`` shards
  picked by a seeded permutation. Each node thus sees only a few classes.
- ``fltrust``: the sample-allocation bias of Cao, Fang, Liu & Gong, "FLTrust:
  Byzantine-robust Federated Learning via Trust Bootstrapping" (NDSS 2021), as
  used by DFL-Dual. The nodes form G = min(M, n) groups (M = number of classes;
  node i is in group i mod G). A sample of class l goes to its home group
  l mod G with probability p and to each other group with probability
  (1 - p) / (G - 1); inside the chosen group it goes to a member drawn
  uniformly. p = 1/G is IID in expectation; p = 1 gives every group only its
  home classes. With n < M several classes share a home group, a choice of
  ours (the paper assumes n >= M).

With ``samples_per_node > 0`` each node then keeps a seeded random subset of
that many of its indices (all of them if it has fewer). Errors are raised as
`ShardingError`, whose message is one line saying what is wrong and how to fix
it.
"""

from __future__ import annotations

import math

import numpy as np

from protocol.errors import UserError

__all__ = ["SPLITS", "ShardingError", "label_histogram", "make_shards"]

SPLITS: tuple[str, ...] = ("iid", "dirichlet", "shards", "fltrust")

_DIRICHLET_TRIES = 1000


class ShardingError(UserError):
    """The training set cannot be split as asked (one-line message)."""


def make_shards(
    labels: np.ndarray,
    n: int,
    *,
    split: str,
    seed: int,
    alpha: float = 0.5,
    shards_per_node: int = 2,
    samples_per_node: int = 0,
    min_samples: int = 1,
    p: float = 0.5,
) -> list[np.ndarray]:
    """Split sample indices ``0..len(labels)-1`` among ``n`` nodes.

    ``labels[i]`` is the integer class of sample i. ``alpha`` and
    ``min_samples`` are used by "dirichlet", ``shards_per_node`` by "shards",
    ``p`` by "fltrust"; ``samples_per_node`` (0 = no limit) caps every split.
    """
    labels = _check_labels(labels)
    _check_common(labels, n, split=split, samples_per_node=samples_per_node)
    rng = np.random.default_rng(seed)
    if split == "iid":
        parts = _iid(len(labels), n, rng=rng)
    elif split == "dirichlet":
        parts = _dirichlet(labels, n, rng=rng, alpha=alpha, min_samples=min_samples)
    elif split == "shards":
        parts = _pathological(labels, n, rng=rng, shards_per_node=shards_per_node)
    else:
        parts = _fltrust(labels, n, rng=rng, p=p)
    if samples_per_node > 0:
        parts = [_subsample(p, samples_per_node, rng=rng) for p in parts]
    return [np.sort(p).astype(np.int64) for p in parts]


def label_histogram(labels: np.ndarray, shard: np.ndarray, num_classes: int) -> list[int]:
    """Return per-class sample counts of ``shard`` (length ``num_classes``)."""
    picked = np.asarray(labels)[np.asarray(shard, dtype=np.int64)]
    if picked.size and (picked.min() < 0 or picked.max() >= num_classes):
        raise ShardingError(f"shard has labels outside 0..{num_classes - 1}; raise num_classes to cover every label")
    return [int(c) for c in np.bincount(picked.astype(np.int64), minlength=num_classes)]


def _check_labels(labels: np.ndarray) -> np.ndarray:
    """Return ``labels`` as an array after checking it is 1-D integer."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ShardingError(
            f"labels must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}; "
            "pass the training labels as ints"
        )
    return arr


def _check_common(labels: np.ndarray, n: int, *, split: str, samples_per_node: int) -> None:
    """Validate the settings shared by every split."""
    if split not in SPLITS:
        raise ShardingError(f"unknown data.split={split!r}; choose one of {', '.join(SPLITS)}")
    if n < 1:
        raise ShardingError(f"nodes={n} must be at least 1; raise nodes")
    if n > len(labels):
        raise ShardingError(f"nodes={n} exceeds the {len(labels)} training samples; lower nodes")
    if samples_per_node < 0:
        raise ShardingError(
            f"data.samples_per_node={samples_per_node} must be >= 0 (0 means no limit); fix data.samples_per_node"
        )


def _iid(size: int, n: int, *, rng: np.random.Generator) -> list[np.ndarray]:
    """Seeded permutation cut into n near-equal parts."""
    return list(np.array_split(rng.permutation(size), n))


def _dirichlet(
    labels: np.ndarray, n: int, *, rng: np.random.Generator, alpha: float, min_samples: int
) -> list[np.ndarray]:
    """Hsu et al. (2019) per-class Dirichlet label skew, redrawn until big enough."""
    if not (math.isfinite(alpha) and alpha > 0):
        raise ShardingError(f"data.alpha={alpha} must be > 0; set data.alpha to e.g. 0.5")
    if min_samples < 0 or n * min_samples > len(labels):
        raise ShardingError(
            f"data.min_samples={min_samples} is impossible with nodes={n} and "
            f"{len(labels)} samples; lower data.min_samples"
        )
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(_DIRICHLET_TRIES):
        parts = _dirichlet_draw(classes, n, rng=rng, alpha=alpha)
        if min(len(p) for p in parts) >= min_samples:
            return parts
    raise ShardingError(
        f"data.split=dirichlet with alpha={alpha} never gave every node {min_samples} "
        f"samples in {_DIRICHLET_TRIES} tries; raise data.alpha or lower data.min_samples"
    )


def _dirichlet_draw(classes: list[np.ndarray], n: int, *, rng: np.random.Generator, alpha: float) -> list[np.ndarray]:
    """One Dirichlet draw: split each class's shuffled indices by proportions."""
    buckets: list[list[np.ndarray]] = [[] for _ in range(n)]
    for idx in classes:
        idx = rng.permutation(idx)
        proportions = rng.dirichlet(np.full(n, alpha))
        cuts = (np.cumsum(proportions) * len(idx)).astype(np.int64)[:-1]
        for node, piece in enumerate(np.split(idx, cuts)):
            buckets[node].append(piece)
    return [np.concatenate(b) for b in buckets]


def _pathological(labels: np.ndarray, n: int, *, rng: np.random.Generator, shards_per_node: int) -> list[np.ndarray]:
    """McMahan et al. (2017) label-sorted shards, shards_per_node per node."""
    num_shards = n * shards_per_node
    if shards_per_node < 1:
        raise ShardingError(
            f"data.shards_per_node={shards_per_node} must be at least 1; set data.shards_per_node to e.g. 2"
        )
    if num_shards > len(labels):
        raise ShardingError(
            f"nodes*data.shards_per_node={num_shards} shards exceed the {len(labels)} "
            "training samples; lower data.shards_per_node"
        )
    shuffled = rng.permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shards = np.array_split(by_label, num_shards)
    owners = rng.permutation(num_shards).reshape(n, shards_per_node)
    return [np.concatenate([shards[s] for s in row]) for row in owners]


def _fltrust(labels: np.ndarray, n: int, *, rng: np.random.Generator, p: float) -> list[np.ndarray]:
    """Cao et al. (2021) biased allocation: home group with probability p, see module doc."""
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ShardingError(f"data.p={p} must be in [0, 1]; set data.p to e.g. 0.5")
    classes = np.unique(labels)
    groups = min(len(classes), n)
    # Home group of each sample: the rank of its class, mod G.
    home = np.searchsorted(classes, labels) % groups
    stay = rng.random(len(labels)) < p
    if groups > 1:
        # Uniform over the G - 1 other groups: home + 1 + k (mod G), k in 0..G-2.
        other = (home + 1 + rng.integers(0, groups - 1, size=len(labels))) % groups
        group = np.where(stay, home, other)
    else:
        group = home
    sizes = np.array([len(range(g, n, groups)) for g in range(groups)])
    member = (rng.random(len(labels)) * sizes[group]).astype(np.int64)
    node = group + member * groups  # member k of group g is node g + k*G
    parts = [np.flatnonzero(node == i) for i in range(n)]
    empty = [i for i, part in enumerate(parts) if len(part) == 0]
    if empty:
        raise ShardingError(
            f"data.split=fltrust left nodes {empty} without samples; "
            "lower data.p or nodes, or use more training samples"
        )
    return parts


def _subsample(part: np.ndarray, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """Seeded random subset of ``size`` indices, or all of them if fewer."""
    if len(part) <= size:
        return part
    return rng.choice(part, size=size, replace=False)
