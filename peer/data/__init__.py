"""Datasets for the peers, as a registry: every module in ``peer/data/sets/`` registers one
:class:`~peer.data.spec.DatasetSpec` under the name a config uses (``data.dataset``), and
the functions below look it up. Adding a dataset is one file there and one test
(docs/EXTENDING.md, *A dataset*).

* :func:`load` -- one split as :class:`ImageData` (the preloaded one when there is one).
* :func:`prepare` -- make the files readable once, before the peers start.
* :func:`train_labels` -- the training labels, cheaply (what the plan shards).
* :func:`num_classes` / :func:`image_shape` / :func:`spec` -- a dataset's facts without
  loading it.
* :func:`preload`, :func:`test_subset`, :func:`share_test_subset` -- the forkserver's
  cache (:mod:`peer.data.cache`).

Readers: :mod:`peer.data.idx` (MNIST-format IDX files) and the dataset modules themselves
(:mod:`peer.data.sets.cifar10`, :mod:`peer.data.sets.synthetic`). No function here ever
downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from peer.data import cache, sets
from peer.data.cache import share_test_subset, test_subset
from peer.data.image import ImageData
from peer.data.spec import DATASETS, DatasetError, DatasetSpec, Source, get, names
from peer.registry import import_submodules

import_submodules(sets.__name__, sets.__path__)  # each module registers one spec

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "ImageData",
    "Source",
    "image_shape",
    "load",
    "names",
    "num_classes",
    "prepare",
    "preload",
    "share_test_subset",
    "spec",
    "test_subset",
    "train_labels",
]


def spec(name: str) -> DatasetSpec:
    """The registered dataset ``name`` (DatasetError listing the choices if unknown)."""
    return get(name)


def num_classes(name: str) -> int:
    """Number of classes of dataset ``name`` (without loading it)."""
    return spec(name).num_classes


def image_shape(name: str) -> tuple[int, int, int]:
    """(channels, height, width) of one image of dataset ``name`` (without loading it)."""
    return spec(name).image_shape


def _source(root: Path | None, synthetic_size: int, seed: int) -> Source:
    return Source(root=Path(root) if root is not None else None, synthetic_size=synthetic_size, seed=seed)


def prepare(name: str, root: Path | None) -> Path | None:
    """Make dataset ``name`` readable from disk (decompress, lay out, check); return the
    folder its reader is pointed at (None: nothing on disk)."""
    return spec(name).prepare(_source(root, 0, 0))


def load(
    name: str,
    root: Path | None,
    *,
    train: bool,
    synthetic_size: int = 0,
    seed: int = 0,
) -> ImageData:
    """Load one split of dataset ``name``.

    Args:
        name: a registered dataset (:func:`names`).
        root: data folder (``data.root``; ignored by datasets without files).
        train: training split if true, else test split.
        synthetic_size: size of a generated dataset (0 = its default).
        seed: generator seed of a generated dataset; ignored by datasets on disk.
    """
    s = spec(name)
    source = _source(root, synthetic_size, seed)
    data = cache.cached(s, source, train=train)
    return data if data is not None else s.load(source, train=train)


def preload(name: str, root: Path | None, *, synthetic_size: int = 0, seed: int = 0) -> None:
    """Load both splits of dataset ``name`` now; later :func:`load` calls with the same
    arguments return these objects (whose tensors are never modified in place)."""
    s = spec(name)
    source = _source(root, synthetic_size, seed)
    for train in (True, False):
        data = cache.cached(s, source, train=train)
        cache.store(s, source, train=train, data=s.load(source, train=train) if data is None else data)


def train_labels(name: str, root: Path | None, *, synthetic_size: int = 0, seed: int = 0) -> np.ndarray:
    """Training labels of dataset ``name`` as int64 numpy array; equals
    ``load(name, root, train=True, ...).labels.numpy()`` but reads no more than it needs."""
    return spec(name).train_labels(_source(root, synthetic_size, seed))
