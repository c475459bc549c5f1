"""The math every defense shares, one module per topic: :mod:`~peer.defenses.ops.stacks`,
:mod:`~peer.defenses.ops.ranking`, :mod:`~peer.defenses.ops.distances` (norms, distances,
similarities), :mod:`~peer.defenses.ops.clipping`, :mod:`~peer.defenses.ops.statistics`
(coordinate-wise statistics, robust centres), :mod:`~peer.defenses.ops.selection`
(smallest-diameter subsets, Krum scores), :mod:`~peer.defenses.ops.spectral`,
:mod:`~peer.defenses.ops.clustering` (one-dimensional) and :mod:`~peer.defenses.ops.bounds`
(Byzantine bounds). A rule calls them all as ``ops.NAME``: this package holds their names
and the parameter checks (:mod:`peer.validation`) that rules call as ``ops.check_*``.

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

from peer.defenses.ops.bounds import byzantine_bound, default_bound, eq13_bound
from peer.defenses.ops.clipping import chunk_threshold, clip, clip_largest, clipped_average, clipped_updates_average
from peer.defenses.ops.clustering import gap_prefers_two, kmeans2_1d, two_median_1d
from peer.defenses.ops.distances import (
    cosine_similarity,
    nearest_rows,
    norm,
    pairwise_dists,
    pairwise_sq_dists,
    row_norms,
    sq_dists_to,
    wasserstein_1d_sum,
)
from peer.defenses.ops.ranking import argmin, argsort
from peer.defenses.ops.selection import (
    iterated_krum,
    krum_feasible,
    krum_scores,
    min_diameter_subset,
    neighborhood_scores,
)
from peer.defenses.ops.spectral import lbfgs_hvp, top_eigen
from peer.defenses.ops.stacks import (
    EPS,
    bucket_means,
    finite_only,
    flat,
    mean_rows,
    stack,
    to_output,
    unchanged,
)
from peer.defenses.ops.statistics import closest_to_median_mean, median, trimmed_mean, weiszfeld
from peer.validation import (
    check_choice,
    check_count,
    check_finite,
    check_flag,
    check_nonnegative,
    check_positive,
    check_range,
)

__all__ = [
    "EPS",
    "argmin",
    "argsort",
    "bucket_means",
    "byzantine_bound",
    "check_choice",
    "check_count",
    "check_finite",
    "check_flag",
    "check_nonnegative",
    "check_positive",
    "check_range",
    "chunk_threshold",
    "clip",
    "clip_largest",
    "clipped_average",
    "clipped_updates_average",
    "closest_to_median_mean",
    "cosine_similarity",
    "default_bound",
    "eq13_bound",
    "finite_only",
    "flat",
    "gap_prefers_two",
    "iterated_krum",
    "kmeans2_1d",
    "krum_feasible",
    "krum_scores",
    "lbfgs_hvp",
    "mean_rows",
    "median",
    "min_diameter_subset",
    "nearest_rows",
    "neighborhood_scores",
    "norm",
    "pairwise_dists",
    "pairwise_sq_dists",
    "row_norms",
    "sq_dists_to",
    "stack",
    "to_output",
    "top_eigen",
    "trimmed_mean",
    "two_median_1d",
    "unchanged",
    "wasserstein_1d_sum",
    "weiszfeld",
]
