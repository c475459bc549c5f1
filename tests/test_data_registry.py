"""The dataset registry (peer/data/): every spec's facts match its data, and a dataset
defined in one place is usable through every function of peer.data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from peer import data
from peer.data import DatasetSpec, ImageData, Source, cache
from peer.data.spec import DATASETS, register

REPO_MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"


@pytest.fixture
def roots(data_roots: dict[str, str]) -> dict[str, Path | None]:
    return {
        "mnist": REPO_MNIST,
        "fashion_mnist": Path(data_roots["fashion_mnist"]),
        "cifar10": Path(data_roots["cifar10"]),
        "synthetic": None,
    }


def test_every_dataset_module_is_registered() -> None:
    # Arrange: one module per dataset in peer/data/sets/
    modules = sorted(p.stem for p in Path(data.sets.__file__).parent.glob("[!_]*.py"))

    # Act
    registered = data.names()

    # Assert
    assert registered == modules == ["cifar10", "fashion_mnist", "mnist", "synthetic"]


@pytest.mark.parametrize("name", ["cifar10", "fashion_mnist", "mnist", "synthetic"])
def test_spec_facts_match_the_loaded_test_split(name: str, roots: dict[str, Path | None]) -> None:
    # Arrange
    spec = data.spec(name)

    # Act
    test = data.load(name, roots[name], train=False, synthetic_size=100, seed=1)

    # Assert: what the plan reads without loading is what the peers get
    assert (test.num_classes, test.image_shape) == (spec.num_classes, spec.image_shape)
    if spec.mean is not None:
        assert (test.mean, test.std) == (spec.mean, spec.std)
    assert int(test.labels.max()) < spec.num_classes


def test_torchvision_is_needed_by_cifar10_only() -> None:
    needs = [name for name in data.names() if data.spec(name).needs_torchvision]

    assert needs == ["cifar10"]


class Stripes(DatasetSpec):
    """A dataset defined in a test: 2 classes of 4x4 images, vertical (0) or horizontal (1)
    stripes, 6 training and 2 test images; labels 0, 1, 0, 1, ..."""

    num_classes = 2
    image_shape = (1, 4, 4)
    mean = 0.5
    std = 0.5
    needs_root = False

    def load(self, source: Source, *, train: bool) -> ImageData:
        n = 6 if train else 2
        labels = torch.arange(n) % 2
        vertical = torch.tensor([[0, 255, 0, 255]] * 4, dtype=torch.uint8)
        images = torch.stack([vertical if y == 0 else vertical.T for y in labels.tolist()])
        return ImageData(images=images, labels=labels, num_classes=2, mean=self.mean, std=self.std)


@pytest.fixture
def stripes(monkeypatch: pytest.MonkeyPatch) -> Iterator[DatasetSpec]:
    monkeypatch.setattr(cache, "_SPLITS", {})
    monkeypatch.setattr(cache, "_TEST_SUBSETS", {})
    yield register("stripes", Stripes())
    del DATASETS["stripes"]


def test_a_registered_dataset_is_served_by_every_function(stripes: DatasetSpec) -> None:
    # Act
    train = data.load("stripes", None, train=True)
    labels = data.train_labels("stripes", None)
    data.preload("stripes", None)

    # Assert
    assert "stripes" in data.names()
    assert (data.num_classes("stripes"), data.image_shape("stripes")) == (2, (1, 4, 4))
    assert data.prepare("stripes", None) is None
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]
    x, y = train.tensors(np.array([1]))
    assert x.shape == (1, 1, 4, 4) and y.tolist() == [1]
    assert x[0, 0, 0].tolist() == [-1.0, -1.0, -1.0, -1.0]  # horizontal stripes, row 0 is 0: (0 - 0.5) / 0.5
    assert data.load("stripes", None, train=False) is data.load("stripes", None, train=False)  # preloaded


def test_registering_a_name_twice_fails(stripes: DatasetSpec) -> None:
    with pytest.raises(RuntimeError, match="'stripes' registered twice"):
        register("stripes", Stripes())


def test_a_dataset_without_its_root_says_so() -> None:
    with pytest.raises(
        data.DatasetError, match="dataset mnist needs data.root; set data.root to a folder holding its IDX files"
    ):
        data.load("mnist", None, train=True)
