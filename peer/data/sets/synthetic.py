"""A small synthetic task for fast tests and demos, generated from the run's seed with
nothing on disk: 10 classes of 28x28 grayscale images, each class a prototype of three
blurred bright strokes, every sample its prototype shifted by up to +-3 pixels plus
gaussian noise (std 60 on the 0-255 scale), clipped to uint8. Labels are balanced
(``i % 10``, shuffled).

Sizes: ``data.synthetic_size`` training samples (0 = 2000), ``max(500, size // 4)`` test
samples. Normalisation: mean and std of a fixed 1000-sample reference draw for the seed
(independent of the size and the split, so both splits share them). Split codes of the
generators: 0 = train, 1 = test, 2 = the statistics draw.
"""

from __future__ import annotations

import numpy as np
import torch

from peer.data.image import ImageData
from peer.data.spec import DatasetError, DatasetSpec, Source, register

#: Default number of synthetic training samples when ``synthetic_size`` is 0.
SYNTHETIC_DEFAULT_SIZE = 2000
SYNTHETIC_IMAGE_SIZE = 28
SYNTHETIC_NUM_CLASSES = 10
_SYNTHETIC_NOISE_STD = 60.0
_SYNTHETIC_MAX_SHIFT = 3
_SYNTHETIC_STATS_SAMPLES = 1000


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


class Synthetic(DatasetSpec):
    """The generated task; ``data.root`` is ignored."""

    num_classes = SYNTHETIC_NUM_CLASSES
    image_shape = (1, SYNTHETIC_IMAGE_SIZE, SYNTHETIC_IMAGE_SIZE)
    needs_root = False

    def load(self, source: Source, *, train: bool) -> ImageData:
        size, seed = source.synthetic_size, source.seed
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

    def train_labels(self, source: Source) -> np.ndarray:
        """The labels alone (no images generated)."""
        n = _synthetic_count(train=True, size=source.synthetic_size, seed=source.seed)
        return _synthetic_labels(n, seed=source.seed, split=0)

    def cache_key(self, source: Source) -> tuple:
        return (source.synthetic_size, source.seed)


SYNTHETIC = register("synthetic", Synthetic())
