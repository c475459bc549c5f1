"""Tests for peer.data: MNIST (IDX files, bit-equal to torchvision), IDX layout handling, synthetic data."""

from __future__ import annotations

import gzip
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from peer import data as datasets
from peer.data import DatasetError, ImageData, cache, idx, load, names, prepare, train_labels
from peer.data.idx import IDX_FILES, find_idx_files
from peer.data.sets import synthetic
from tests.support.datagen import idx_images, idx_labels

REPO_MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"
GZ_FILES = [f"{n}.gz" for n in IDX_FILES]


# --------------------------------------------------------------------------- helpers


def _write_fake_mnist(folder: Path, *, gz: bool = True, n_train: int = 6, n_test: int = 3) -> dict[str, bytes]:
    """Write tiny valid MNIST-format files; return name -> uncompressed bytes."""
    rng = np.random.default_rng(0)
    content = {
        "train-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_labels(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_labels((np.arange(n_test) + 7) % 10),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)
    return content


def _assert_layout(tv_root: Path, content: dict[str, bytes]) -> None:
    raw = tv_root / "MNIST" / "raw"
    for name, data in content.items():
        assert (raw / name).read_bytes() == data
    assert not [p for p in raw.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only copies of the four shipped .gz files."""
    if not all((REPO_MNIST / f).is_file() for f in GZ_FILES):
        pytest.skip(f"shipped MNIST files missing under {REPO_MNIST}")
    root = tmp_path_factory.mktemp("mnist_gz")
    for f in GZ_FILES:
        shutil.copy2(REPO_MNIST / f, root / f)
    return root


@pytest.fixture(scope="module")
def mnist_train(mnist_root: Path) -> ImageData:
    return load("mnist", mnist_root, train=True)


@pytest.fixture(scope="module")
def mnist_test(mnist_root: Path) -> ImageData:
    return load("mnist", mnist_root, train=False)


def test_mnist_prepare_from_gz_only_is_idempotent(mnist_root: Path, mnist_train: ImageData) -> None:
    raw = mnist_root / "MNIST" / "raw"
    sizes = {
        "train-images-idx3-ubyte": 47_040_016,
        "train-labels-idx1-ubyte": 60_008,
        "t10k-images-idx3-ubyte": 7_840_016,
        "t10k-labels-idx1-ubyte": 10_008,
    }
    assert {p.name: p.stat().st_size for p in raw.iterdir()} == sizes
    before = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    assert prepare("mnist", mnist_root) == mnist_root.absolute()
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == before


def test_mnist_train_split(mnist_train: ImageData) -> None:
    assert len(mnist_train) == 60_000
    assert mnist_train.images.shape == (60_000, 28, 28)
    assert mnist_train.images.dtype == torch.uint8
    assert mnist_train.labels.dtype == torch.int64
    assert int(mnist_train.labels[0]) == 5
    assert mnist_train.num_classes == 10
    assert (mnist_train.mean, mnist_train.std) == (0.1307, 0.3081)
    assert torch.bincount(mnist_train.labels).tolist()[1] == 6742


def test_mnist_test_split(mnist_test: ImageData) -> None:
    assert len(mnist_test) == 10_000
    assert mnist_test.images.shape == (10_000, 28, 28)
    assert int(mnist_test.labels[0]) == 7


def test_mnist_train_labels_match_torchvision(mnist_root: Path, mnist_train: ImageData) -> None:
    expected = mnist_train.labels.numpy()
    got = train_labels("mnist", mnist_root)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    # read-only on the shipped folder (gz), and on the uncompressed torchvision raw folder
    np.testing.assert_array_equal(train_labels("mnist", REPO_MNIST), expected)
    np.testing.assert_array_equal(train_labels("mnist", mnist_root / "MNIST" / "raw"), expected)


def test_mnist_tensors_normalised(mnist_train: ImageData) -> None:
    x, y = mnist_train.tensors(np.arange(256))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist() == mnist_train.labels[:256].tolist()
    expected = (mnist_train.images[:256].float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x[:, 0], expected)
    assert float(x.mean()) == pytest.approx(0.0, abs=0.1)


# --------------------------------------------------------------------------- layout handling


@pytest.mark.parametrize("where", [".", "raw", "MNIST/raw"])
@pytest.mark.parametrize("gz", [True, False])
def test_prepare_accepts_each_layout(tmp_path: Path, where: str, gz: bool) -> None:
    content = _write_fake_mnist(tmp_path / where, gz=gz)
    tv_root = prepare("mnist", tmp_path)
    assert tv_root == tmp_path.absolute()
    _assert_layout(tv_root, content)
    train = load("mnist", tmp_path, train=True)
    test = load("mnist", tmp_path, train=False)
    assert (len(train), len(test)) == (6, 3)
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(train_labels("mnist", tmp_path), train.labels.numpy())


def test_prepare_repairs_wrong_size_file(tmp_path: Path) -> None:
    content = _write_fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"half")
    prepare("mnist", tmp_path)
    _assert_layout(tmp_path, content)


def test_prepare_concurrent_callers(tmp_path: Path) -> None:
    content = _write_fake_mnist(tmp_path, n_train=2000)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            prepare("mnist", tmp_path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _assert_layout(tmp_path, content)


def test_prepare_falls_back_to_cache_when_root_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "readonly"
    content = _write_fake_mnist(root)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    real_write = idx._write_atomic

    def write(src: Path, dst: Path, expected: int) -> None:
        if root in dst.parents:
            raise PermissionError(13, "Permission denied", str(dst))
        real_write(src, dst, expected)

    monkeypatch.setattr(idx, "_write_atomic", write)
    tv_root = prepare("mnist", root)
    assert tv_root is not None
    assert tv_root.parent == home / ".cache" / "byzemu"
    assert tv_root.name.startswith("mnist-")
    _assert_layout(tv_root, content)
    assert prepare("mnist", root) == tv_root
    assert len(load("mnist", root, train=False)) == 3


def test_prepare_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError, match=re.escape(f"data.root={missing} ")):
        prepare("mnist", missing)
    with pytest.raises(DatasetError, match="nope"):
        load("mnist", missing, train=True)
    with pytest.raises(DatasetError, match="nope"):
        train_labels("mnist", missing)


def test_prepare_missing_file(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\[\.gz\]") as info:
        prepare("mnist", tmp_path)
    assert "train-images" not in str(info.value)
    assert "\n" not in str(info.value)


def test_prepare_rejects_non_idx_file(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(DatasetError, match="not an IDX file"):
        prepare("mnist", tmp_path)
    with pytest.raises(DatasetError, match="0x00000801"):
        train_labels("mnist", tmp_path)


def test_mnist_needs_root() -> None:
    with pytest.raises(DatasetError, match="data.root"):
        prepare("mnist", None)
    with pytest.raises(DatasetError, match="data.root"):
        train_labels("mnist", None)


def test_find_idx_files_other_subdir(tmp_path: Path) -> None:
    _write_fake_mnist(tmp_path / "FashionMNIST" / "raw", gz=False)
    found = find_idx_files(tmp_path, IDX_FILES, subdir="FashionMNIST")
    assert set(found) == set(IDX_FILES)
    assert all(p.parent == tmp_path / "FashionMNIST" / "raw" for p in found.values())


@pytest.mark.parametrize("fn", ["load", "prepare", "train_labels"])
def test_unknown_dataset(fn: str) -> None:
    call = {
        "load": lambda: load("cifar", None, train=True),
        "prepare": lambda: prepare("cifar", None),
        "train_labels": lambda: train_labels("cifar", None),
    }[fn]
    with pytest.raises(DatasetError, match="use one of cifar10, fashion_mnist, mnist, synthetic"):
        call()
    assert names() == ["cifar10", "fashion_mnist", "mnist", "synthetic"]
    assert issubclass(DatasetError, ValueError)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_and_sizes() -> None:
    train = load("synthetic", None, train=True)
    test = load("synthetic", None, train=False)
    assert (len(train), len(test)) == (2000, 500)
    assert train.images.shape == (2000, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.num_classes == 10
    assert torch.bincount(train.labels).tolist() == [200] * 10
    assert torch.bincount(test.labels).tolist() == [50] * 10
    assert (train.mean, train.std) == (test.mean, test.std)
    assert isinstance(train.mean, float) and isinstance(train.std, float)  # one channel
    assert 0.0 < train.mean < 1.0 and 0.0 < train.std < 1.0
    assert prepare("synthetic", Path("/nonexistent")) is None
    big = load("synthetic", Path("/nonexistent"), train=False, synthetic_size=4000)
    assert len(big) == 1000
    assert len(load("synthetic", None, train=True, synthetic_size=30)) == 30


def test_synthetic_deterministic_per_seed() -> None:
    a = load("synthetic", None, train=True, synthetic_size=300, seed=3)
    b = load("synthetic", None, train=True, synthetic_size=300, seed=3)
    c = load("synthetic", None, train=True, synthetic_size=300, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert (a.mean, a.std) == (b.mean, b.std)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.labels, c.labels)
    t = load("synthetic", None, train=False, synthetic_size=300, seed=3)
    assert len(t) == 500 and not torch.equal(t.images[:300], a.images)
    np.testing.assert_array_equal(train_labels("synthetic", None, synthetic_size=300, seed=3), a.labels.numpy())
    np.testing.assert_array_equal(train_labels("synthetic", None), load("synthetic", None, train=True).labels.numpy())


def test_synthetic_bad_arguments() -> None:
    with pytest.raises(DatasetError, match="synthetic_size=-1"):
        load("synthetic", None, train=True, synthetic_size=-1)
    with pytest.raises(DatasetError, match="seed=-2"):
        load("synthetic", None, train=True, seed=-2)


def test_synthetic_is_learnable() -> None:
    train = load("synthetic", None, train=True, seed=0)
    test = load("synthetic", None, train=False, seed=0)
    x, y = train.tensors()
    xt, yt = test.tensors()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(0, len(train), (32,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.8


def test_tensors_index_forms() -> None:
    data = load("synthetic", None, train=True, synthetic_size=50)
    x_all, y_all = data.tensors()
    assert x_all.shape == (50, 1, 28, 28) and y_all.shape == (50,)
    idx = np.array([3, 1, 4])
    x_np, y_np = data.tensors(idx)
    x_t, y_t = data.tensors(torch.tensor([3, 1, 4]))
    torch.testing.assert_close(x_np, x_all[[3, 1, 4]])
    torch.testing.assert_close(x_t, x_np)
    assert y_np.tolist() == y_t.tolist() == y_all[[3, 1, 4]].tolist()
    mask = data.labels == 2
    assert data.tensors(mask)[0].shape[0] == int(mask.sum())
    assert isinstance(data.std, float) and isinstance(data.mean, float)  # one channel
    norm = x_all * data.std + data.mean
    torch.testing.assert_close(norm, data.images.unsqueeze(1).float() / 255)


# --------------------------------------------------------------------------- fashion-mnist

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_reads_idx_files(tmp_path: Path) -> None:
    # tiny files in the real IDX layout, gzipped as Debian's dataset-fashion-mnist ships them
    content = _write_fake_mnist(tmp_path / "fm", n_train=6, n_test=3)

    train = datasets.load("fashion_mnist", tmp_path / "fm", train=True)
    test = datasets.load("fashion_mnist", tmp_path / "fm", train=False)

    assert (tmp_path / "fm" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert train.labels.tolist() == [0, 1, 2, 3, 4, 5]  # arange(6) % 10
    assert test.labels.tolist() == [7, 8, 9]  # (arange(3) + 7) % 10
    expected = np.frombuffer(content["train-images-idx3-ubyte"][16:], np.uint8).reshape(6, 28, 28)
    assert np.array_equal(train.images.numpy(), expected)
    assert (train.mean, train.std, train.num_classes) == (0.2860, 0.3530, 10)
    assert datasets.train_labels("fashion_mnist", tmp_path / "fm").tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_the_debian_package(tmp_path: Path) -> None:
    root = tmp_path / "fm"
    root.mkdir()
    for f in DEBIAN_FASHION.iterdir():  # a copy, so the test writes nothing under /usr/share
        (root / f.name).symlink_to(f)

    labels = datasets.train_labels("fashion_mnist", root)
    test = datasets.load("fashion_mnist", root, train=False)

    assert labels.shape == (60000,) and np.bincount(labels).tolist() == [6000] * 10
    assert len(test) == 10000 and test.labels[:3].tolist() == [9, 2, 1]  # ankle boot, pullover, trouser


def test_preloaded_splits_are_returned_by_load_for_the_same_arguments_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "_SPLITS", {})

    datasets.preload("synthetic", None, synthetic_size=200, seed=3)
    train = load("synthetic", None, train=True, synthetic_size=200, seed=3)
    again = load("synthetic", None, train=True, synthetic_size=200, seed=3)
    other_seed = load("synthetic", None, train=True, synthetic_size=200, seed=4)

    assert again is train  # the preloaded object, not a new load
    assert other_seed is not train
    fresh = synthetic.SYNTHETIC.load(datasets.Source(synthetic_size=200, seed=3), train=True)
    assert torch.equal(train.images, fresh.images) and torch.equal(train.labels, fresh.labels)


@pytest.mark.parametrize("train", [True, False])
def test_idx_reader_equals_torchvision_mnist(mnist_root: Path, train: bool) -> None:
    """byzemu reads MNIST's IDX files itself (no torchvision import at start-up): the same
    tensors, bit for bit, as torchvision.datasets.MNIST on the same laid-out folder."""
    import torchvision.datasets

    ours = load("mnist", mnist_root, train=train)
    theirs = torchvision.datasets.MNIST(str(mnist_root), train=train, download=False)
    assert ours.images.dtype == theirs.data.dtype == torch.uint8
    assert torch.equal(ours.images, theirs.data)
    assert torch.equal(ours.labels, theirs.targets.to(torch.int64))


def test_idx_reader_rejects_bad_files(tmp_path: Path) -> None:
    bad_magic = tmp_path / "labels-as-images"
    bad_magic.write_bytes(idx_labels(np.arange(40) % 10))
    with pytest.raises(DatasetError, match="not 0x00000803"):
        idx.read_idx_images(bad_magic)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(idx_images(np.zeros((3, 28, 28), np.uint8))[:-5])
    with pytest.raises(DatasetError, match="header says 3x28x28"):
        idx.read_idx_images(truncated)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DatasetError, match="too short"):
        idx.read_idx_images(short)


def test_shared_test_subset_is_one_object_with_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_SPLITS", {})
    monkeypatch.setattr(cache, "_TEST_SUBSETS", {})
    datasets.preload("synthetic", None, synthetic_size=200, seed=3)
    test = load("synthetic", None, train=False, synthetic_size=200, seed=3)
    fresh = datasets.test_subset(test, 40)
    datasets.share_test_subset(test, 40)
    shared, again = datasets.test_subset(test, 40), datasets.test_subset(test, 40)
    assert shared is again  # every forked peer reads the forkserver's one copy
    assert shared is not fresh
    assert torch.equal(shared[0], fresh[0]) and torch.equal(shared[1], fresh[1])
    assert shared[0].shape[0] == 40
    assert datasets.test_subset(test, 30) is not datasets.test_subset(test, 30)  # another size: built anew


def test_a_split_that_is_not_preloaded_is_never_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_SPLITS", {})
    monkeypatch.setattr(cache, "_TEST_SUBSETS", {})
    datasets.preload("synthetic", None, synthetic_size=200, seed=3)
    preloaded = load("synthetic", None, train=False, synthetic_size=200, seed=3)
    datasets.share_test_subset(preloaded, 40)
    twin = synthetic.SYNTHETIC.load(datasets.Source(synthetic_size=200, seed=3), train=False)  # equal, not cached

    first, second = datasets.test_subset(twin, 40), datasets.test_subset(twin, 40)

    assert first is not second  # built for the caller, not the preloaded split's copy
    with pytest.raises(ValueError, match="preloaded split"):
        datasets.share_test_subset(twin, 40)
