"""Small dataset folders in the real on-disk formats, for tests that need a dataset
this machine does not have (CIFAR-10) or may not have (Fashion-MNIST): gzipped IDX files
(MNIST, Fashion-MNIST) and ``cifar-10-batches-py`` (Python 2 pickles, as in
cifar-10-python.tar.gz)."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from launch.sweeps.sweepfile import read_sweep_file
from protocol import config as config_mod

__all__ = [
    "N_PER_BATCH",
    "TRAIN_FILES",
    "cifar_batch",
    "dataset_of",
    "idx_images",
    "idx_labels",
    "overrides_for",
    "py2_pickle",
    "write_cifar10",
    "write_idx_dataset",
]


def idx_images(images: np.ndarray) -> bytes:
    """An IDX3 image file (magic 0x803, big-endian count, rows, cols, then uint8 pixels)."""
    n, h, w = images.shape
    return np.array([0x00000803, n, h, w], dtype=">u4").tobytes() + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """An IDX1 label file (magic 0x801, big-endian count, then uint8 labels)."""
    return np.array([0x00000801, len(labels)], dtype=">u4").tobytes() + labels.astype(np.uint8).tobytes()


def write_idx_dataset(folder: Path, *, n_train: int = 300, n_test: int = 50, seed: int = 0) -> Path:
    """Write the four gzipped IDX files of an MNIST-format dataset (28x28, labels i % 10)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {
        "train-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_labels(np.arange(n_test) % 10),
    }
    for name, payload in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
    return folder


N_PER_BATCH = 20
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


#: the pure-Python pickler: its dispatch table and its write and memoize steps, which
#: Py2Pickler extends, are internals that typeshed does not describe
_PurePickler: Any = pickle._Pickler


class Py2Pickler(_PurePickler):
    """Pickles ``bytes`` as Python 2 ``str`` opcodes, as cPickle wrote the CIFAR-10 files:
    read back with ``encoding="latin1"`` (torchvision) they are ``str``, with
    ``encoding="bytes"`` (the CIFAR-10 page's recipe) ``bytes``."""

    dispatch = dict(_PurePickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def cifar_batch(label: bytes, data: np.ndarray, labels: list[int]) -> bytes:
    return py2_pickle(
        {
            b"batch_label": label,
            b"labels": labels,
            b"data": data,
            b"filenames": [b"img_%04d.png" % i for i in range(len(labels))],
        }
    )


def write_cifar10(root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write ``root/cifar-10-batches-py`` with 20 images in each of the five training
    batches and 20 test images; return {file: (uint8 (20, 3072) data, labels)}.

    Labels: ``(i + b) % 10`` in data_batch_b, ``3 i % 10`` in test_batch. Image 0 of
    data_batch_1 is uniform with R = 255, G = 0, B = 128.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    content = {}
    for b, name in enumerate(TRAIN_FILES, start=1):
        data = np.random.default_rng(b).integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8)
        if b == 1:
            data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 255, 0, 128
        content[name] = (data, [(i + b) % 10 for i in range(N_PER_BATCH)])
    test = np.random.default_rng(99).integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8)
    content["test_batch"] = (test, [3 * i % 10 for i in range(N_PER_BATCH)])
    for name, (data, labels) in content.items():
        (folder / name).write_bytes(cifar_batch(f"{name} of a test set".encode(), data, labels))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(
        py2_pickle({b"num_cases_per_batch": N_PER_BATCH, b"label_names": names, b"num_vis": 3072})
    )
    return content


def dataset_of(path: Path) -> str:
    """The dataset a config or sweep file uses (no shipped sweep has it as an axis)."""
    text = path.read_text()
    if "axes" not in text and "extends" not in text:
        return config_mod.load(path).data.dataset
    data = read_sweep_file(path)
    return data.get("set", {}).get("data.dataset") or config_mod.load(data["base"]).data.dataset


def overrides_for(path: Path, roots: dict[str, str]) -> list[str]:
    """``data.root=...`` pointing at a generated folder when ``path`` needs one of ``roots``."""
    name = dataset_of(path)
    return [f"data.root={json.dumps(roots[name])}"] if name in roots else []
