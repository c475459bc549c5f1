"""What a dataset is to byzemu: a :class:`DatasetSpec` registered under the name a config
uses (``data.dataset``), with its facts (classes, image shape, normalisation, whether it
needs torchvision) and how to read it (prepare, load a split, read the training labels).

Every dataset is one module in ``peer/data/sets/`` that registers one spec with
:func:`register`; the functions of :mod:`peer.data` look the spec up by name, so nothing
else in byzemu names a dataset.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from peer.data.image import ImageData
from protocol.errors import UserError

__all__ = ["DATASETS", "DatasetError", "DatasetSpec", "Source", "get", "names", "register"]


class DatasetError(UserError):
    """A dataset cannot be found, read or generated; the message says how to fix it."""


@dataclass(frozen=True)
class Source:
    """Where the splits come from: the config's ``data.root`` (None: not set) and, for a
    generated dataset, its size (``data.synthetic_size``, 0 = the dataset's default) and
    the run's seed. A dataset ignores the fields it has no use for."""

    root: Path | None = None
    synthetic_size: int = 0
    seed: int = 0


class DatasetSpec(ABC):
    """One dataset. Subclasses set the class attributes and implement :meth:`load`.

    Attributes:
        name: the ``data.dataset`` value (set by :func:`register`).
        num_classes: labels lie in ``0 .. num_classes - 1``.
        image_shape: ``(channels, height, width)`` of one image as the model sees it.
        mean, std: normalisation on the ``[0, 1]`` pixel scale, one float for every channel
            or one value per channel; ``None`` when it depends on the :class:`Source`
            (:meth:`normalisation` then computes it).
        needs_root: reads files under ``data.root``; :meth:`root` raises without one.
        root_hint: what ``data.root`` must hold, for the error message.
        needs_torchvision: reading it imports torchvision (the forkserver imports it
            ahead of the peers for such a run, ``peer/preload.py``).
    """

    name: str = ""
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: float | tuple[float, ...] | None = None
    std: float | tuple[float, ...] | None = None
    needs_root: bool = True
    root_hint: str = "its files"
    needs_torchvision: bool = False

    @abstractmethod
    def load(self, source: Source, *, train: bool) -> ImageData:
        """The training split if ``train``, else the test split."""

    def train_labels(self, source: Source) -> np.ndarray:
        """The training labels as int64 numpy array; override to skip reading the images."""
        return self.load(source, train=True).labels.numpy()

    def prepare(self, source: Source) -> Path | None:
        """Make the files readable (decompress, lay out) once, before the peers start;
        return the folder a reader is pointed at (None: nothing on disk)."""
        return self.root(source) if self.needs_root else None

    def cache_key(self, source: Source) -> tuple:
        """The part of ``source`` that determines the data (the preload cache's key)."""
        if not self.needs_root or source.root is None:
            return (None,)
        return (str(Path(source.root).expanduser().resolve()),)

    def root(self, source: Source) -> Path:
        """``source.root``, or a one-line DatasetError saying that this dataset needs it."""
        if source.root is None:
            raise DatasetError(
                f"dataset {self.name} needs data.root; set data.root to a folder holding {self.root_hint}"
            )
        return Path(source.root)


#: name -> spec of every registered dataset (filled by the modules in ``peer/data/sets/``)
DATASETS: dict[str, DatasetSpec] = {}

S = TypeVar("S", bound=DatasetSpec)


def register(name: str, spec: S) -> S:
    """Register ``spec`` under ``name`` (a dataset module calls this once)."""
    if name in DATASETS:
        raise RuntimeError(f"dataset {name!r} registered twice")
    spec.name = name
    DATASETS[name] = spec
    return spec


def names() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(DATASETS)


def get(name: str) -> DatasetSpec:
    """The spec registered as ``name``, or a one-line DatasetError listing the choices."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; use one of {', '.join(names())}") from None
