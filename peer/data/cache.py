"""The one process-wide cache of datasets: splits and evaluation sets loaded ahead of time.

The forkserver (``peer/preload.py``) calls :func:`preload` and :func:`share_test_subset`
before it forks the peers, so forked peers share those tensors copy-on-write instead of
each reading and parsing the files and holding its own float32 copy of the evaluation set.
Without a preload nothing is kept: :func:`cached` misses and :func:`test_subset` builds a
fresh evaluation set. Cached tensors are never modified in place (training and evaluation
only read them).

Keys are what determines the data (dataset name, split, the spec's
:meth:`~peer.data.spec.DatasetSpec.cache_key` of the source), never an object's ``id()``;
an evaluation set is found through the split it was built from, compared by identity
with a split this cache holds, so a split that died cannot alias a new one.
"""

from __future__ import annotations

import numpy as np
import torch

from peer.data.image import ImageData
from peer.data.spec import DatasetSpec, Source

__all__ = ["cached", "clear", "store", "share_test_subset", "test_subset"]

_SplitKey = tuple

#: preloaded splits: (name, train, *cache_key) -> split
_SPLITS: dict[_SplitKey, ImageData] = {}
#: evaluation sets built ahead of time: (split key, sample count) -> (x, y)
_TEST_SUBSETS: dict[tuple[_SplitKey, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _key(spec: DatasetSpec, source: Source, train: bool) -> _SplitKey:
    return (spec.name, train, *spec.cache_key(source))


def cached(spec: DatasetSpec, source: Source, *, train: bool) -> ImageData | None:
    """The preloaded split for these arguments, or None."""
    return _SPLITS.get(_key(spec, source, train))


def store(spec: DatasetSpec, source: Source, *, train: bool, data: ImageData) -> None:
    """Keep ``data`` as the split for these arguments (for the rest of the process)."""
    _SPLITS[_key(spec, source, train)] = data


def clear() -> None:
    """Forget every cached split and evaluation set."""
    _SPLITS.clear()
    _TEST_SUBSETS.clear()


def _subset_size(test: ImageData, samples: int) -> int:
    return len(test) if samples <= 0 else min(samples, len(test))


def _key_of(split: ImageData) -> _SplitKey | None:
    return next((k for k, v in _SPLITS.items() if v is split), None)


def test_subset(test: ImageData, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation set: the first ``samples`` test items (all when 0), model-ready;
    the shared copy when :func:`share_test_subset` built it for this cached split."""
    n = _subset_size(test, samples)
    key = _key_of(test)
    shared = _TEST_SUBSETS.get((key, n)) if key is not None else None
    if shared is not None:
        return shared
    return test.tensors(np.arange(n))


def share_test_subset(test: ImageData, samples: int) -> None:
    """Build :func:`test_subset` ``(test, samples)`` now and return that same object from
    then on. ``test`` must be a split this cache holds (:func:`store`, ``preload``)."""
    key = _key_of(test)
    if key is None:
        raise ValueError("share_test_subset needs a preloaded split (peer.data.preload)")
    n = _subset_size(test, samples)
    _TEST_SUBSETS[(key, n)] = test.tensors(np.arange(n))


test_subset.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test
