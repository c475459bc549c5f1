"""Datasets for the peers: MNIST and Fashion-MNIST (IDX files laid out as torchvision
expects, read by :func:`read_idx_images` / :func:`read_idx_labels` bit-equal to
``torchvision.datasets.MNIST`` but without importing torchvision), CIFAR-10 (through
torchvision) and a small synthetic task.

Public API:

* :data:`DATASETS` -- the dataset names :func:`load` understands.
* :class:`ImageData` -- uint8 images + int64 labels + normalisation constants.
* :func:`prepare` -- lay out the MNIST IDX files the way ``torchvision`` expects (CIFAR-10:
  check its folder).
* :func:`load` -- return one split as :class:`ImageData`.
* :func:`preload` -- load both splits ahead of time (the forkserver does, see
  ``peer/preload.py``); :func:`load` then returns them.
* :func:`train_labels` -- the training labels as a numpy array, cheaply (no images in torch).
* :func:`num_classes` / :func:`image_shape` -- a dataset's facts without loading it.
* :func:`find_idx_files` / :func:`prepare_torchvision_layout` -- reusable helpers for
  any dataset shipped as the four MNIST-style IDX files (e.g. Debian's Fashion-MNIST).
* :func:`read_idx_images` / :func:`read_idx_labels` -- IDX image and label files.
* :func:`find_cifar10` / :func:`read_cifar_batch` -- locate and validate the CIFAR-10
  python-version files.

No function here ever downloads anything.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

__all__ = [
    "CIFAR10_FILES",
    "DATASETS",
    "MNIST_FILES",
    "DatasetError",
    "ImageData",
    "find_cifar10",
    "find_idx_files",
    "image_shape",
    "load",
    "num_classes",
    "prepare",
    "prepare_torchvision_layout",
    "read_cifar_batch",
    "read_idx_images",
    "read_idx_labels",
    "train_labels",
]


class DatasetError(ValueError):
    """A dataset cannot be found, read or generated; the message says how to fix it."""


DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "synthetic")

#: The four IDX files of MNIST (and of Fashion-MNIST, which uses the same names).
MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: MNIST normalisation constants (the usual torchvision-example values).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

#: The CIFAR-10 "python version" (Krizhevsky 2009): ``cifar-10-python.tar.gz`` extracts to
#: this folder, which holds five training batches, one test batch and the class names.
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES: tuple[str, ...] = ("test_batch",)
CIFAR10_META_FILE = "batches.meta"
CIFAR10_FILES: tuple[str, ...] = (*CIFAR10_TRAIN_FILES, *CIFAR10_TEST_FILES, CIFAR10_META_FILE)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_NUM_CLASSES = 10
#: Per-channel (R, G, B) mean and standard deviation of the 50,000 training images on the
#: [0, 1] scale (the exact statistics, 0.49139968, 0.48215841, 0.44653091 and
#: 0.24703223, 0.24348513, 0.26158784, rounded to 4 digits like the MNIST constants).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_CIFAR10_PIXELS = 3 * 32 * 32
_CIFAR10_FIX = (
    f"extract cifar-10-python.tar.gz (the CIFAR-10 python version, {CIFAR10_URL}) into "
    "data.root, so that data.root/cifar-10-batches-py/ holds data_batch_1..5, test_batch "
    "and batches.meta"
)

#: Default number of synthetic training samples when ``synthetic_size`` is 0.
SYNTHETIC_DEFAULT_SIZE = 2000
SYNTHETIC_IMAGE_SIZE = 28
SYNTHETIC_NUM_CLASSES = 10
_SYNTHETIC_NOISE_STD = 60.0
_SYNTHETIC_MAX_SHIFT = 3
_SYNTHETIC_STATS_SAMPLES = 1000

# IDX type codes -> bytes per element.
_IDX_ITEM_SIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


# --------------------------------------------------------------------------- ImageData


@dataclass(frozen=True)
class ImageData:
    """One split of an image-classification dataset held in memory.

    Attributes:
        images: uint8 tensor of shape ``(N, H, W)`` (grayscale) or ``(N, C, H, W)``
            (channels first, e.g. RGB).
        labels: int64 tensor of shape ``(N,)``.
        num_classes: number of classes; labels lie in ``0 .. num_classes - 1``.
        mean: normalisation mean on the ``[0, 1]`` pixel scale: one float for every
            channel, or a tuple with one value per channel (``(N, C, H, W)`` images).
        std: normalisation standard deviation on the ``[0, 1]`` pixel scale, same form.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image, as the model sees it."""
        if self.images.dim() == 3:
            return (1, int(self.images.shape[1]), int(self.images.shape[2]))
        c, h, w = (int(v) for v in self.images.shape[1:])
        return (c, h, w)

    def tensors(
        self, index: torch.Tensor | np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return model-ready ``(x, y)`` for the samples selected by ``index``.

        Args:
            index: integer indices (tensor or numpy array) or a boolean mask; ``None``
                selects every sample.

        Returns:
            ``x``: float32 tensor of shape ``(B, C, H, W)`` (``C = 1`` for ``(N, H, W)``
            images) normalised as ``(pixel / 255 - mean) / std``, per channel when
            ``mean``/``std`` are tuples; ``y``: int64 tensor of shape ``(B,)``.
        """
        if index is None:
            images, labels = self.images, self.labels
        else:
            idx = torch.as_tensor(index)
            if idx.dtype != torch.bool:
                idx = idx.to(torch.int64)
            images, labels = self.images[idx], self.labels[idx]
        if isinstance(self.mean, tuple) or isinstance(self.std, tuple):
            channels = self.image_shape[0]
            mean = torch.tensor(self.mean, dtype=torch.float32).expand(channels).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32).expand(channels).view(1, -1, 1, 1)
            x = images.to(torch.float32, copy=True).div_(255.0)
            if x.dim() == 3:
                x = x.unsqueeze(1)
            return x.sub_(mean).div_(std), labels.to(torch.int64)
        x = images.to(torch.float32, copy=True).div_(255.0).sub_(self.mean).div_(self.std)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return x, labels.to(torch.int64)

    def __len__(self) -> int:
        """Number of samples."""
        return int(self.labels.shape[0])


# --------------------------------------------------------------------------- IDX files


def _open_maybe_gz(path: Path) -> BinaryIO:
    """Open ``path`` for binary reading, transparently decompressing ``*.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _idx_size(path: Path) -> int:
    """Uncompressed byte size of the IDX file at ``path`` (gz or not), from its header."""
    try:
        with _open_maybe_gz(path) as f:
            head = f.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_ITEM_SIZE:
                raise DatasetError(
                    f"{path} is not an IDX file (bad magic {head.hex()}); "
                    "replace it with the original MNIST-format file"
                )
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); replace it with an intact copy") from exc
    if len(dims_raw) != 4 * ndim:
        raise DatasetError(f"{path} is truncated in its IDX header; replace it with an intact copy")
    dims = np.frombuffer(dims_raw, dtype=">u4").astype(np.int64)
    return 4 + 4 * ndim + int(np.prod(dims)) * _IDX_ITEM_SIZE[head[2]]


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an IDX1 label file (gz or not) into an int64 numpy array.

    Format: big-endian magic ``0x00000801``, big-endian uint32 count, then ``count``
    uint8 labels.
    """
    path = Path(path)
    try:
        with _open_maybe_gz(path) as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); replace it with an intact copy") from exc
    if len(raw) < 8:
        raise DatasetError(f"{path} is too short to be an IDX label file; replace it with an intact copy")
    magic, count = (int(v) for v in np.frombuffer(raw[:8], dtype=">u4"))
    if magic != 0x00000801:
        raise DatasetError(
            f"{path} has magic {magic:#010x}, not 0x00000801 (IDX uint8 labels); "
            "point data.root at the original label files"
        )
    if len(raw) != 8 + count:
        raise DatasetError(
            f"{path} holds {len(raw) - 8} labels but its header says {count}; "
            "replace it with an intact copy"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def read_idx_images(path: Path) -> np.ndarray:
    """Read an uncompressed IDX3 image file into a ``(N, H, W)`` uint8 numpy array.

    Format: big-endian magic ``0x00000803``, then big-endian uint32 ``N``, ``H``, ``W``,
    then ``N * H * W`` uint8 pixels, row-major. The same bytes and layout that
    ``torchvision.datasets.MNIST`` reads (tested equal), without importing torchvision,
    whose package import costs ~2 s of start-up (it pulls in ``torch._dynamo``).
    """
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read {path} ({exc}); replace it with an intact copy") from exc
    if raw.size < 16:
        raise DatasetError(f"{path} is too short to be an IDX image file; replace it with an intact copy")
    magic, n, h, w = (int(v) for v in raw[:16].view(">u4"))
    if magic != 0x00000803:
        raise DatasetError(
            f"{path} has magic {magic:#010x}, not 0x00000803 (IDX uint8 images); "
            "point data.root at the original image files"
        )
    if raw.size != 16 + n * h * w:
        raise DatasetError(
            f"{path} holds {raw.size - 16} pixel bytes but its header says {n}x{h}x{w}; "
            "replace it with an intact copy"
        )
    return raw[16:].reshape(n, h, w)


def find_idx_files(
    root: Path, names: tuple[str, ...] | list[str], *, subdir: str = "MNIST"
) -> dict[str, Path]:
    """Locate IDX files, gz-compressed or not, in the usual folders under ``root``.

    Searched in order: ``root``, ``root/raw``, ``root/<subdir>/raw`` (torchvision layout);
    in each folder ``<name>.gz`` is preferred over ``<name>``.

    Args:
        root: the folder the user pointed at (e.g. ``data.root``).
        names: file names without ``.gz`` (e.g. :data:`MNIST_FILES`).
        subdir: torchvision class folder name (``"MNIST"``, ``"FashionMNIST"``).

    Returns:
        Mapping from each name to the file found for it.

    Raises:
        DatasetError: ``root`` is not a folder, or some files are in none of the folders.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"data.root={root} is not a folder; point data.root at a folder holding "
            f"{', '.join(n + '[.gz]' for n in names)}"
        )
    folders = [root, root / "raw", root / subdir / "raw"]
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in names:
        for folder in folders:
            hit = next((p for p in (folder / f"{name}.gz", folder / name) if p.is_file()), None)
            if hit is not None:
                found[name] = hit
                break
        else:
            missing.append(name)
    if missing:
        raise DatasetError(
            f"data.root={root} has no {subdir} files ({', '.join(m + '[.gz]' for m in missing)}) "
            f"in it, raw/ or {subdir}/raw/; point data.root at a folder holding them"
        )
    return found


def _write_atomic(src: Path, dst: Path, expected: int) -> None:
    """Decompress/copy ``src`` to ``dst`` via a temp file in ``dst``'s folder + ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_maybe_gz(src) as inp:
            shutil.copyfileobj(inp, out, length=1 << 20)
        size = tmp.stat().st_size
        if size != expected:
            raise DatasetError(
                f"{src} decompresses to {size} bytes but its IDX header implies {expected}; "
                "replace it with an intact copy"
            )
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _materialize(files: dict[str, Path], raw_dir: Path) -> None:
    """Make every file in ``files`` exist uncompressed in ``raw_dir`` (OSError if unwritable)."""
    for name, src in files.items():
        dst = raw_dir / name
        expected = _idx_size(src)
        if dst.is_file() and dst.stat().st_size == expected:
            continue
        if src.resolve() == dst.resolve():
            raise DatasetError(
                f"{dst} is {dst.stat().st_size} bytes but its IDX header implies {expected}; "
                "delete it and provide the original file"
            )
        raw_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(src, dst, expected)


def _cache_root(kind: str, root: Path) -> Path:
    """Per-user fallback folder for a read-only ``root``."""
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "byzemu" / f"{kind}-{digest}"


def prepare_torchvision_layout(
    root: Path, *, names: tuple[str, ...] | list[str], subdir: str, kind: str
) -> Path:
    """Lay out IDX files as ``<tv_root>/<subdir>/raw/<name>`` (uncompressed) for torchvision.

    Files found by :func:`find_idx_files` are decompressed (or copied) through a temp
    file in the destination folder and ``os.replace``, so concurrent callers never see
    half-written files; files already present with the size implied by their IDX header
    are left alone. ``tv_root`` is ``root`` when it is writable (or already laid out),
    else ``~/.cache/byzemu/<kind>-<hash of root>``.

    Returns:
        ``tv_root``, the folder to pass as torchvision's ``root``.
    """
    root = Path(root).expanduser().absolute()
    files = find_idx_files(root, names, subdir=subdir)
    errors: list[str] = []
    for tv_root in (root, _cache_root(kind, root)):
        try:
            _materialize(files, tv_root / subdir / "raw")
            return tv_root
        except OSError as exc:
            errors.append(f"{tv_root}: {exc.strerror or exc}")
    raise DatasetError(
        f"cannot write the uncompressed {subdir} files ({'; '.join(errors)}); "
        f"make data.root or ~/.cache/byzemu writable, or place them under {root}/{subdir}/raw"
    )


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class _IdxDataset:
    """A dataset in the four-file IDX layout, read by a torchvision class."""

    subdir: str  #: torchvision's class folder (``<root>/<subdir>/raw``) and class name
    mean: float
    std: float


#: IDX datasets: MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017, the layout
#: Debian's ``dataset-fashion-mnist`` installs under /usr/share/datasets/fashion-mnist).
#: Normalisation constants: the usual per-dataset training-set mean and std.
IDX_DATASETS = {
    "mnist": _IdxDataset("MNIST", MNIST_MEAN, MNIST_STD),
    "fashion_mnist": _IdxDataset("FashionMNIST", 0.2860, 0.3530),
}

NUM_CLASSES = {
    "mnist": 10,
    "fashion_mnist": 10,
    "cifar10": CIFAR10_NUM_CLASSES,
    "synthetic": SYNTHETIC_NUM_CLASSES,
}

#: (channels, height, width) of one image, per dataset.
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "synthetic": (1, SYNTHETIC_IMAGE_SIZE, SYNTHETIC_IMAGE_SIZE),
}


def num_classes(name: str) -> int:
    """Number of classes of dataset ``name`` (without loading it)."""
    return NUM_CLASSES[_check_name(name)]


def image_shape(name: str) -> tuple[int, int, int]:
    """(channels, height, width) of one image of dataset ``name`` (without loading it)."""
    return IMAGE_SHAPES[_check_name(name)]


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    return name


def _require_root(name: str, root: Path | None) -> Path:
    if root is None:
        what = "cifar-10-batches-py/" if name == "cifar10" else "its IDX files"
        raise DatasetError(f"dataset {name} needs data.root; set data.root to a folder holding {what}")
    return Path(root)


def prepare(name: str, root: Path | None) -> Path | None:
    """Make dataset ``name`` readable from disk; return the folder for torchvision.

    ``"mnist"`` and ``"fashion_mnist"``: accepts ``root`` holding the four IDX files (gz
    or not) directly, in ``root/raw`` or in ``root/<Class>/raw`` (``MNIST``,
    ``FashionMNIST``) and lays them out uncompressed under ``<tv_root>/<Class>/raw`` (see
    :func:`prepare_torchvision_layout`); returns ``tv_root``.
    ``"cifar10"``: checks that the CIFAR-10 python-version files exist (see
    :func:`find_cifar10`) and returns the folder holding ``cifar-10-batches-py``; writes
    nothing.
    ``"synthetic"``: nothing on disk; returns ``None`` (``root`` is ignored).

    Raises:
        DatasetError: unknown name, ``root`` missing, or files missing/unreadable.
    """
    _check_name(name)
    if name == "synthetic":
        return None
    if name == "cifar10":
        return find_cifar10(_require_root(name, root)).parent
    spec = IDX_DATASETS[name]
    return prepare_torchvision_layout(
        _require_root(name, root), names=MNIST_FILES, subdir=spec.subdir, kind=name
    )


#: splits loaded ahead of time by :func:`preload` (in the forkserver, so that forked peers
#: share them copy-on-write instead of each reading and parsing the files)
_PRELOADED: dict[tuple[str, str | None, bool, int, int], ImageData] = {}


def _preload_key(name: str, root: Path | None, train: bool, synthetic_size: int, seed: int) -> tuple:
    where = None if name == "synthetic" or root is None else str(Path(root).expanduser().resolve())
    return (name, where, train, synthetic_size if name == "synthetic" else 0, seed if name == "synthetic" else 0)


def preload(name: str, root: Path | None, *, synthetic_size: int = 0, seed: int = 0) -> None:
    """Load both splits of dataset ``name`` now; later :func:`load` calls with the same
    arguments return these objects (whose tensors are never modified in place)."""
    for train in (True, False):
        data = load(name, root, train=train, synthetic_size=synthetic_size, seed=seed)
        _PRELOADED[_preload_key(name, root, train, synthetic_size, seed)] = data


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
        name: one of :data:`DATASETS`.
        root: data folder (ignored for ``synthetic``).
        train: training split if true, else test split.
        synthetic_size: ``synthetic`` training-set size (0 = 2000); the test split has
            ``max(500, synthetic_size // 4)`` samples.
        seed: ``synthetic`` generator seed (prototypes and samples); ignored for mnist.

    Returns:
        The split as :class:`ImageData`.
    """
    _check_name(name)
    cached = _PRELOADED.get(_preload_key(name, root, train, synthetic_size, seed))
    if cached is not None:
        return cached
    if name == "synthetic":
        return _synthetic(train=train, size=synthetic_size, seed=seed)
    if name == "cifar10":
        return _load_cifar10(_require_root(name, root), train=train)
    tv_root = prepare(name, root)
    spec = IDX_DATASETS[name]
    assert tv_root is not None
    raw = tv_root / spec.subdir / "raw"  # the uncompressed files prepare() laid out
    prefix = "train" if train else "t10k"
    images = read_idx_images(raw / f"{prefix}-images-idx3-ubyte")
    labels = read_idx_labels(raw / f"{prefix}-labels-idx1-ubyte")
    if len(images) != len(labels):
        raise DatasetError(
            f"{raw}: {len(images)} {prefix} images but {len(labels)} labels; "
            "delete that folder and run again"
        )
    return ImageData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        num_classes=NUM_CLASSES[name],
        mean=spec.mean,
        std=spec.std,
    )


def train_labels(
    name: str, root: Path | None, *, synthetic_size: int = 0, seed: int = 0
) -> np.ndarray:
    """Training labels of dataset ``name`` as int64 numpy array, without loading images.

    Equals ``load(name, root, train=True, ...).labels.numpy()``. For ``mnist`` and
    ``fashion_mnist`` only the labels IDX file is read (gz or not); for ``cifar10`` the five
    training batches are unpickled and checked (their images stay numpy arrays and are
    dropped); nothing is written.
    """
    _check_name(name)
    if name == "synthetic":
        n = _synthetic_count(train=True, size=synthetic_size, seed=seed)
        return _synthetic_labels(n, seed=seed, split=0)
    if name == "cifar10":
        folder = find_cifar10(_require_root(name, root))
        return np.concatenate([read_cifar_batch(folder / f)[1] for f in CIFAR10_TRAIN_FILES])
    subdir = IDX_DATASETS[name].subdir
    files = find_idx_files(_require_root(name, root), ("train-labels-idx1-ubyte",), subdir=subdir)
    return read_idx_labels(files["train-labels-idx1-ubyte"])


# --------------------------------------------------------------------------- CIFAR-10


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


def _load_cifar10(root: Path, *, train: bool) -> ImageData:
    """One CIFAR-10 split through torchvision, as uint8 ``(N, 3, 32, 32)`` images."""
    tv_root = find_cifar10(root).parent
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


# --------------------------------------------------------------------------- synthetic


def _synthetic_count(*, train: bool, size: int, seed: int = 0) -> int:
    if seed < 0:
        raise DatasetError(f"seed={seed} is negative; use a seed >= 0 for the synthetic dataset")
    if size < 0:
        raise DatasetError(f"data.synthetic_size={size} is negative; use 0 (default 2000) or a positive count")
    n = size or SYNTHETIC_DEFAULT_SIZE
    return n if train else max(500, n // 4)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur of a 2-D array (zero padding)."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    img = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, img)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, img)


def _synthetic_prototypes(seed: int) -> np.ndarray:
    """Ten float32 28x28 class prototypes in ``[0, 255]``: 3 blurred bright strokes each."""
    rng = np.random.default_rng(seed)
    s = SYNTHETIC_IMAGE_SIZE
    protos = np.zeros((SYNTHETIC_NUM_CLASSES, s, s), dtype=np.float64)
    t = np.linspace(0.0, 1.0, 40)
    for c in range(SYNTHETIC_NUM_CLASSES):
        canvas = np.zeros((s, s))
        for _ in range(3):
            p0, p1 = rng.uniform(5, s - 6, size=(2, 2))
            pts = np.rint(p0[None, :] + t[:, None] * (p1 - p0)[None, :]).astype(int)
            canvas[pts[:, 0], pts[:, 1]] = 1.0
        canvas = _blur(canvas, 0.8)
        protos[c] = 255.0 * canvas / canvas.max()
    return protos.astype(np.float32)


def _synthetic_labels(n: int, *, seed: int, split: int) -> np.ndarray:
    """Balanced labels ``i % 10`` shuffled by a generator derived from ``(seed, split)``."""
    rng = np.random.default_rng([seed, split, 0])
    return rng.permutation(np.arange(n, dtype=np.int64) % SYNTHETIC_NUM_CLASSES)


def _synthetic_images(protos: np.ndarray, labels: np.ndarray, *, seed: int, split: int) -> np.ndarray:
    """uint8 samples: prototype shifted by up to +-3 px, plus gaussian noise, clipped."""
    rng = np.random.default_rng([seed, split, 1])
    n = labels.shape[0]
    m = _SYNTHETIC_MAX_SHIFT
    shifts = rng.integers(-m, m + 1, size=(n, 2))
    noise = rng.normal(0.0, _SYNTHETIC_NOISE_STD, size=(n,) + protos.shape[1:]).astype(np.float32)
    s = SYNTHETIC_IMAGE_SIZE
    padded = np.pad(protos, ((0, 0), (m, m), (m, m)))
    rows = (np.arange(s)[None, :] + m - shifts[:, :1])[:, :, None]  # (n, s, 1)
    cols = (np.arange(s)[None, :] + m - shifts[:, 1:])[:, None, :]  # (n, 1, s)
    out = padded[labels[:, None, None], rows, cols] + noise
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _synthetic_stats(protos: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean/std on the [0, 1] scale, from a fixed 1000-sample reference draw for ``seed``.

    Independent of ``synthetic_size`` and of the split, so train and test share them.
    """
    labels = _synthetic_labels(_SYNTHETIC_STATS_SAMPLES, seed=seed, split=2)
    x = _synthetic_images(protos, labels, seed=seed, split=2).astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def _synthetic(*, train: bool, size: int, seed: int) -> ImageData:
    """Generate the synthetic split (split code 0 = train, 1 = test, 2 = stats draw)."""
    n = _synthetic_count(train=train, size=size, seed=seed)
    split = 0 if train else 1
    protos = _synthetic_prototypes(seed)
    labels = _synthetic_labels(n, seed=seed, split=split)
    images = _synthetic_images(protos, labels, seed=seed, split=split)
    mean, std = _synthetic_stats(protos, seed)
    return ImageData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        num_classes=SYNTHETIC_NUM_CLASSES,
        mean=mean,
        std=std,
    )
