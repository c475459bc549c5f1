"""CIFAR-10 (Krizhevsky 2009): 50,000 + 10,000 colour images, 3x32x32, 10 classes, as the
"python version" (``cifar-10-python.tar.gz`` extracted: pickled batches), read through
torchvision with its MD5 check replaced by a structural one (:func:`read_cifar_batch`), so
any well-formed copy loads. No function here downloads anything.

Normalisation: the per-channel (R, G, B) mean and std of the 50,000 training images on the
[0, 1] scale (exactly 0.49139968, 0.48215841, 0.44653091 and 0.24703223, 0.24348513,
0.26158784), rounded to 4 digits like the MNIST constants.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch

from peer.data.image import ImageData
from peer.data.spec import DatasetError, DatasetSpec, Source, register

#: The CIFAR-10 "python version" (Krizhevsky 2009): ``cifar-10-python.tar.gz`` extracts to
#: this folder, which holds five training batches, one test batch and the class names.
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES: tuple[str, ...] = ("test_batch",)
CIFAR10_META_FILE = "batches.meta"
CIFAR10_FILES: tuple[str, ...] = (*CIFAR10_TRAIN_FILES, *CIFAR10_TEST_FILES, CIFAR10_META_FILE)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_NUM_CLASSES = 10
#: Per-channel (R, G, B) normalisation (see the module docstring).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_CIFAR10_PIXELS = 3 * 32 * 32
_CIFAR10_FIX = (
    f"extract cifar-10-python.tar.gz (the CIFAR-10 python version, {CIFAR10_URL}) into "
    "data.root, so that data.root/cifar-10-batches-py/ holds data_batch_1..5, test_batch "
    "and batches.meta"
)


def find_cifar10(root: Path) -> Path:
    """The ``cifar-10-batches-py`` folder under ``root``, with every file present.

    ``root`` is the folder holding ``cifar-10-batches-py/`` (torchvision's ``root``); a
    ``root`` that is itself named ``cifar-10-batches-py`` is accepted too.

    Raises:
        DatasetError: ``root`` is not a folder, or files are missing (one line naming them
            and saying where to get CIFAR-10).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data.root={root} is not a folder; {_CIFAR10_FIX}")
    folder = root if root.name == CIFAR10_FOLDER else root / CIFAR10_FOLDER
    missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        raise DatasetError(
            f"data.root={root} has no CIFAR-10 files ({', '.join(missing)}) in "
            f"{folder}; {_CIFAR10_FIX}"
        )
    return folder


def _unpickle(path: Path) -> object:
    """Unpickle a CIFAR-10 python-version file as torchvision does (``latin1``: Python 2
    ``str`` keys become ``str``). The files are pickles: read only trusted copies."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as exc:  # truncated, not a pickle, unknown class, ...
        raise DatasetError(
            f"{path} is not a CIFAR-10 python-version pickle ({type(exc).__name__}: {exc}); "
            f"replace it with the file from {CIFAR10_URL}"
        ) from exc


def _bad_batch(path: Path, what: str) -> DatasetError:
    return DatasetError(
        f"{path} is not a CIFAR-10 batch: {what}; replace it with the file from {CIFAR10_URL}"
    )


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check one CIFAR-10 python-version batch file.

    Format: a pickled dict (written by Python 2; read with ``encoding="latin1"``, or with
    ``encoding="bytes"`` as ``b"data"``, ``b"labels"``) with ``data``, a uint8 array of
    shape ``(N, 3072)`` (1024 red, then green, then blue values of a 32x32 image, row by
    row), and ``labels``, N integers in ``0..9``.

    Returns:
        ``(data, labels)``: the uint8 ``(N, 3072)`` array and the int64 ``(N,)`` labels.

    Raises:
        DatasetError: unreadable, or keys, shapes, dtype or label range are wrong.
    """
    path = Path(path)
    entry = _unpickle(path)
    if not isinstance(entry, dict):
        raise _bad_batch(path, f"it holds a {type(entry).__name__}, not a dict")
    missing = [k for k in ("data", "labels") if k not in entry]
    if missing:
        keys = ", ".join(repr(k) for k in list(entry)[:6])
        raise _bad_batch(path, f"no {' or '.join(missing)} entry (keys: {keys})")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR10_PIXELS:
        desc = f"{data.dtype}{list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _bad_batch(path, f"data is {desc}, need uint8[N, {_CIFAR10_PIXELS}]")
    try:
        labels = np.asarray(entry["labels"])
    except Exception as exc:  # ragged or exotic objects
        raise _bad_batch(path, f"labels are not a list of integers ({exc})") from exc
    if labels.ndim != 1 or len(labels) != len(data) or (len(labels) and labels.dtype.kind not in "iu"):
        raise _bad_batch(path, f"labels are {labels.dtype}{list(labels.shape)}, need {len(data)} integers")
    if len(labels) and (labels.min() < 0 or labels.max() >= CIFAR10_NUM_CLASSES):
        raise _bad_batch(
            path, f"labels range over {labels.min()}..{labels.max()}, need 0..{CIFAR10_NUM_CLASSES - 1}"
        )
    return data, labels.astype(np.int64)


def _check_cifar10_meta(path: Path) -> None:
    meta = _unpickle(path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != CIFAR10_NUM_CLASSES:
        raise DatasetError(
            f"{path} is not CIFAR-10's batches.meta: need label_names, a list of "
            f"{CIFAR10_NUM_CLASSES} class names; replace it with the file from {CIFAR10_URL}"
        )


@functools.cache
def _cifar10_class() -> type:
    """``torchvision.datasets.CIFAR10`` with the integrity check replaced (built lazily:
    importing torchvision is slow)."""
    from torchvision.datasets import CIFAR10

    class CheckedCIFAR10(CIFAR10):
        """torchvision's CIFAR-10 reader whose integrity check validates the files'
        structure (:func:`read_cifar_batch`) instead of their MD5 sums, so that any
        well-formed copy (e.g. a small test set in the same format) loads; a bad folder
        raises :class:`DatasetError` rather than torchvision's generic RuntimeError."""

        meta = {**CIFAR10.meta, "md5": None}  # _load_meta: existence; content checked below

        def _check_integrity(self) -> bool:
            folder = find_cifar10(Path(self.root))
            for name in CIFAR10_TRAIN_FILES if self.train else CIFAR10_TEST_FILES:
                read_cifar_batch(folder / name)
            _check_cifar10_meta(folder / CIFAR10_META_FILE)
            return True

    return CheckedCIFAR10


class Cifar10(DatasetSpec):
    """CIFAR-10 under ``data.root`` (the folder holding ``cifar-10-batches-py/``, or that
    folder itself); :meth:`prepare` checks the files and writes nothing."""

    num_classes = CIFAR10_NUM_CLASSES
    image_shape = (3, 32, 32)
    mean = CIFAR10_MEAN
    std = CIFAR10_STD
    root_hint = "cifar-10-batches-py/"
    needs_torchvision = True

    def prepare(self, source: Source) -> Path:
        return find_cifar10(self.root(source)).parent

    def load(self, source: Source, *, train: bool) -> ImageData:
        """One split through torchvision, as uint8 ``(N, 3, 32, 32)`` images."""
        tv_root = self.prepare(source)
        try:
            ds = _cifar10_class()(str(tv_root), train=train, download=False)
        except RuntimeError as exc:  # torchvision's own checks (e.g. the metadata file)
            raise DatasetError(
                f"torchvision cannot read CIFAR-10 under {tv_root / CIFAR10_FOLDER} ({exc}); {_CIFAR10_FIX}"
            ) from exc
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # HWC -> CHW
        return ImageData(
            images=images,
            labels=torch.as_tensor(np.asarray(ds.targets, dtype=np.int64)),
            num_classes=CIFAR10_NUM_CLASSES,
            mean=CIFAR10_MEAN,
            std=CIFAR10_STD,
        )

    def train_labels(self, source: Source) -> np.ndarray:
        """The five training batches are unpickled and checked; their images stay numpy
        arrays and are dropped (no torchvision, nothing written)."""
        folder = find_cifar10(self.root(source))
        return np.concatenate([read_cifar_batch(folder / f)[1] for f in CIFAR10_TRAIN_FILES])


CIFAR10 = register("cifar10", Cifar10())
