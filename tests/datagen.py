"""Small dataset folders in the real on-disk formats, for tests that need a dataset
this machine does not have (CIFAR-10) or may not have (Fashion-MNIST)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from launch.sweep import _read_sweep_file
from protocol import config as config_mod

from tests.test_cifar10 import write_cifar10
from tests.test_datasets import _idx_images, _idx_labels

__all__ = ["dataset_of", "overrides_for", "write_cifar10", "write_idx_dataset"]


def write_idx_dataset(folder: Path, *, n_train: int = 300, n_test: int = 50, seed: int = 0) -> Path:
    """Write the four gzipped IDX files of an MNIST-format dataset (28x28, labels i % 10)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {
        "train-images-idx3-ubyte": _idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": _idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": _idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": _idx_labels(np.arange(n_test) % 10),
    }
    for name, payload in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
    return folder


def dataset_of(path: Path) -> str:
    """The dataset a config or sweep file uses (no shipped sweep has it as an axis)."""
    text = path.read_text()
    if "axes" not in text and "extends" not in text:
        return config_mod.load(path).data.dataset
    data = _read_sweep_file(path)
    return data.get("set", {}).get("data.dataset") or config_mod.load(data["base"]).data.dataset


def overrides_for(path: Path, roots: dict[str, str]) -> list[str]:
    """``data.root=...`` pointing at a generated folder when ``path`` needs one of ``roots``."""
    name = dataset_of(path)
    return [f"data.root={json.dumps(roots[name])}"] if name in roots else []
