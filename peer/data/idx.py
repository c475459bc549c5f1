"""Image datasets in the IDX format (LeCun et al. 1998): the four files
``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` of MNIST, used unchanged by
Fashion-MNIST. :class:`IdxDataset` is the spec of any such dataset.

The readers (:func:`read_idx_images`, :func:`read_idx_labels`) return the same bytes and
layout that ``torchvision.datasets.MNIST`` reads (tested bit-equal) without importing
torchvision, whose package import is a large part of a peer's start-up (it pulls in
``torch._dynamo``; BENCHMARKS.md). :func:`prepare_torchvision_layout` lays gzipped files out uncompressed
as torchvision expects (``<root>/<Class>/raw/<name>``), atomically, once per run.
No function here downloads anything.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from peer.data.image import ImageData
from peer.data.spec import DatasetError, DatasetSpec, Source

__all__ = [
    "IDX_FILES",
    "IdxDataset",
    "find_idx_files",
    "prepare_torchvision_layout",
    "read_idx_images",
    "read_idx_labels",
]

#: The four IDX files of MNIST (and of Fashion-MNIST, which uses the same names).
IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# IDX type codes -> bytes per element.
_IDX_ITEM_SIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


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
    ``torchvision.datasets.MNIST`` reads (tested equal), without importing torchvision
    (see the module docstring).
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
        names: file names without ``.gz`` (e.g. :data:`IDX_FILES`).
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


class IdxDataset(DatasetSpec):
    """A 10-class dataset of 28x28 grayscale images in the four-file IDX layout.

    ``data.root`` may hold the four files (gz or not) directly, in ``raw/`` or in
    ``<subdir>/raw/`` (torchvision's layout); :meth:`prepare` lays them out uncompressed
    under ``<tv_root>/<subdir>/raw`` (:func:`prepare_torchvision_layout`).
    """

    num_classes = 10
    image_shape = (1, 28, 28)
    root_hint = "its IDX files"

    def __init__(self, *, subdir: str, mean: float, std: float) -> None:
        self.subdir = subdir  #: torchvision's class folder and class name (``MNIST``)
        self.mean: float = mean  # always given here (optional on DatasetSpec)
        self.std: float = std

    def prepare(self, source: Source) -> Path:
        return prepare_torchvision_layout(
            self.root(source), names=IDX_FILES, subdir=self.subdir, kind=self.name
        )

    def load(self, source: Source, *, train: bool) -> ImageData:
        raw = self.prepare(source) / self.subdir / "raw"  # the uncompressed files
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
            num_classes=self.num_classes,
            mean=self.mean,
            std=self.std,
        )

    def train_labels(self, source: Source) -> np.ndarray:
        """Only the labels file is read (gz or not); nothing is written."""
        name = "train-labels-idx1-ubyte"
        return read_idx_labels(find_idx_files(self.root(source), (name,), subdir=self.subdir)[name])
