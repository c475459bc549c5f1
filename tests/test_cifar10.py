"""CIFAR-10 through torchvision: a tiny folder in the real ``cifar-10-batches-py`` format
(Python 2 pickles, as in cifar-10-python.tar.gz), loading, normalisation, the one-line
errors for a missing or bad folder, the per-channel backdoor trigger, the plan's
model/dataset check, and a multi-process run that is bit-identical to the reference."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from coordinator.plan import build_plan
from launch.run.local import launch_local
from launch.run.reference import run_reference
from peer import data as datasets
from peer.attacks import build_attack
from peer.attacks.base import DataInfo
from peer.data import DatasetError
from peer.data.sets.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from peer.models import MODELS, ModelError
from protocol import config as config_mod
from tests.support.datagen import cifar_batch, py2_pickle, write_cifar10
from tests.support.harness import read_rounds


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root)
    return root


@pytest.fixture(scope="module")
def cifar_content(cifar_root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    return write_cifar10(cifar_root.parent / "cifar-content")


@pytest.fixture(scope="module")
def cifar_train(cifar_root: Path) -> datasets.ImageData:
    return datasets.load("cifar10", cifar_root, train=True)


def _bad_copy(tmp_path: Path) -> Path:
    write_cifar10(tmp_path)
    return tmp_path / "cifar-10-batches-py"


# --------------------------------------------------------------------------- loading


def test_the_fixture_files_are_in_the_cifar10_page_format(cifar_root: Path) -> None:
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # the recipe on the CIFAR-10 page

    assert set(entry) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (20, 3072)
    assert entry[b"labels"][:3] == [1, 2, 3]


def test_stock_torchvision_rejects_the_small_files_by_md5(cifar_root: Path) -> None:
    import torchvision.datasets

    with pytest.raises(RuntimeError, match="not found or corrupted"):
        torchvision.datasets.CIFAR10(str(cifar_root), train=True, download=False)


def test_load_train_split(cifar_train: datasets.ImageData, cifar_content: dict) -> None:
    assert cifar_train.images.dtype == torch.uint8
    assert tuple(cifar_train.images.shape) == (100, 3, 32, 32)
    assert cifar_train.image_shape == (3, 32, 32)
    assert cifar_train.num_classes == 10
    assert cifar_train.labels.dtype == torch.int64
    # data_batch_b holds (i + b) % 10, the batches concatenated in order 1..5
    assert cifar_train.labels[:4].tolist() == [1, 2, 3, 4]
    assert cifar_train.labels[20:24].tolist() == [2, 3, 4, 5]
    assert cifar_train.labels[-1].item() == (19 + 5) % 10
    # row r of a batch = 1024 red, 1024 green, 1024 blue values -> (3, 32, 32)
    data_2 = cifar_content["data_batch_2"][0]
    assert np.array_equal(cifar_train.images[20:40].numpy(), data_2.reshape(20, 3, 32, 32))
    assert cifar_train.images[0, 0, 5, 7].item() == 255
    assert cifar_train.images[0, 1, 5, 7].item() == 0
    assert cifar_train.images[0, 2, 5, 7].item() == 128


def test_load_test_split(cifar_root: Path, cifar_content: dict) -> None:
    test = datasets.load("cifar10", cifar_root, train=False)

    assert tuple(test.images.shape) == (20, 3, 32, 32)
    assert test.labels.tolist() == [0, 3, 6, 9, 2, 5, 8, 1, 4, 7] * 2
    assert np.array_equal(test.images.numpy(), cifar_content["test_batch"][0].reshape(20, 3, 32, 32))


def test_tensors_are_normalised_per_channel(cifar_train: datasets.ImageData) -> None:
    assert cifar_train.mean == (0.4914, 0.4822, 0.4465)
    assert cifar_train.std == (0.2470, 0.2435, 0.2616)

    x, y = cifar_train.tensors(np.array([0, 20]))

    assert x.dtype == torch.float32 and tuple(x.shape) == (2, 3, 32, 32)
    assert y.tolist() == [1, 2]
    # image 0: R = 255, G = 0, B = 128 everywhere
    assert x[0, 0].unique().tolist() == pytest.approx([(1.0 - 0.4914) / 0.2470], abs=1e-6)  # 2.05911
    assert x[0, 1].unique().tolist() == pytest.approx([(0.0 - 0.4822) / 0.2435], abs=1e-6)  # -1.98029
    assert x[0, 2].unique().tolist() == pytest.approx([(128 / 255 - 0.4465) / 0.2616], abs=1e-6)  # 0.21201
    raw = cifar_train.images[20].to(torch.float64) / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465], dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616], dtype=torch.float64).view(3, 1, 1)
    torch.testing.assert_close(x[1].to(torch.float64), (raw - mean) / std, atol=1e-6, rtol=0)


def test_train_labels_without_torch_images(cifar_root: Path, cifar_train: datasets.ImageData) -> None:
    labels = datasets.train_labels("cifar10", cifar_root)

    assert labels.dtype == np.int64 and labels.shape == (100,)
    assert labels.tolist() == cifar_train.labels.tolist()
    assert np.bincount(labels).tolist() == [10] * 10


def test_dataset_facts_without_loading() -> None:
    assert datasets.image_shape("cifar10") == (3, 32, 32)
    assert datasets.num_classes("cifar10") == 10
    assert datasets.image_shape("mnist") == datasets.image_shape("fashion_mnist") == (1, 28, 28)
    assert datasets.image_shape("synthetic") == (1, 28, 28)


def test_prepare_returns_the_folder_and_writes_nothing(cifar_root: Path) -> None:
    before = sorted(p.name for p in cifar_root.rglob("*"))

    assert datasets.prepare("cifar10", cifar_root) == cifar_root
    assert sorted(p.name for p in cifar_root.rglob("*")) == before


def test_root_may_be_the_batches_folder_itself(cifar_root: Path) -> None:
    folder = cifar_root / "cifar-10-batches-py"

    assert datasets.train_labels("cifar10", folder)[:2].tolist() == [1, 2]
    assert len(datasets.load("cifar10", folder, train=False)) == 20


# --------------------------------------------------------------------------- errors


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for call in (
        lambda: datasets.load("cifar10", missing, train=True),
        lambda: datasets.train_labels("cifar10", missing),
        lambda: datasets.prepare("cifar10", missing),
    ):
        with pytest.raises(DatasetError) as info:
            call()
        message = _one_line(info)
        assert message.startswith(f"data.root={missing} is not a folder; extract cifar-10-python.tar.gz")
        assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message


def test_missing_files_are_named(tmp_path: Path) -> None:
    folder = _bad_copy(tmp_path)
    (folder / "test_batch").unlink()
    (folder / "batches.meta").unlink()

    with pytest.raises(DatasetError) as info:
        datasets.train_labels("cifar10", tmp_path)  # the plan's check fails on a missing test file

    message = _one_line(info)
    assert f"data.root={tmp_path} has no CIFAR-10 files (test_batch, batches.meta) in {folder};" in message
    assert "data_batch_1" not in message.split(";")[0]
    with pytest.raises(DatasetError, match="test_batch, batches.meta"):
        datasets.load("cifar10", tmp_path, train=True)


def test_empty_folder_names_every_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        datasets.load("cifar10", tmp_path, train=False)

    assert (
        "(data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta)"
        in _one_line(info)
    )


def test_cifar10_needs_a_root() -> None:
    with pytest.raises(
        DatasetError, match="dataset cifar10 needs data.root; set data.root to a folder holding cifar-10-batches-py/"
    ):
        datasets.load("cifar10", None, train=True)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda data, labels: (data, [12] + labels[1:]), "labels range over 0..12, need 0..9"),
        (lambda data, labels: (data[:, :3000], labels), "data is uint8[20, 3000], need uint8[N, 3072]"),
        (lambda data, labels: (data.astype(np.float32), labels), "data is float32[20, 3072], need uint8[N, 3072]"),
        (lambda data, labels: (data, labels[:19]), "labels are int64[19], need 20 integers"),
    ],
)
def test_malformed_batch_is_one_clear_line(tmp_path: Path, corrupt, expected: str) -> None:
    folder = _bad_copy(tmp_path)
    data = np.random.default_rng(3).integers(0, 256, (20, 3072), dtype=np.uint8)
    bad_data, bad_labels = corrupt(data, [(i + 3) % 10 for i in range(20)])
    (folder / "data_batch_3").write_bytes(cifar_batch(b"bad", bad_data, bad_labels))

    for call in (
        lambda: datasets.train_labels("cifar10", tmp_path),
        lambda: datasets.load("cifar10", tmp_path, train=True),
    ):
        with pytest.raises(DatasetError) as info:
            call()
        message = _one_line(info)
        assert message.startswith(f"{folder / 'data_batch_3'} is not a CIFAR-10 batch: {expected}; replace it")
    # the test split does not read the training batches
    assert len(datasets.load("cifar10", tmp_path, train=False)) == 20


def test_not_a_pickle_and_missing_keys(tmp_path: Path) -> None:
    folder = _bad_copy(tmp_path)
    (folder / "data_batch_1").write_bytes(b"<html>404 not found</html>")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}))

    with pytest.raises(DatasetError) as info:
        datasets.train_labels("cifar10", tmp_path)
    assert _one_line(info).startswith(f"{folder / 'data_batch_1'} is not a CIFAR-10 python-version pickle (")
    with pytest.raises(DatasetError) as info:
        datasets.load("cifar10", tmp_path, train=False)
    # a Python 3 pickle with bytes keys is not the CIFAR-10 format
    assert "is not a CIFAR-10 batch: no data or labels entry (keys: b'data')" in _one_line(info)


def test_bad_meta_file(tmp_path: Path) -> None:
    folder = _bad_copy(tmp_path)
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [b"cat", b"dog"]}))

    with pytest.raises(DatasetError, match="is not CIFAR-10's batches.meta: need label_names, a list of 10"):
        datasets.load("cifar10", tmp_path, train=True)


# --------------------------------------------------------------------------- trigger


def test_backdoor_trigger_is_white_in_every_channel() -> None:
    info = DataInfo(num_classes=10, image_shape=(3, 32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD)
    attack = build_attack("backdoor", {"trigger_size": 3, "target": 0})
    attack.bind(info)
    images = torch.zeros(4, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 3])

    asr_set = attack.triggered_test_set(images, labels)

    assert asr_set is not None
    x, y = asr_set
    white = [(1 - m) / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)]  # 2.0591, 2.0443, 2.1159
    assert y.tolist() == [0, 0, 0] and tuple(x.shape) == (3, 3, 32, 32)
    for c in range(3):
        assert x[:, c, 28:31, 28:31].unique().tolist() == pytest.approx([white[c]], abs=1e-6)
    assert x[:, :, :28].abs().sum().item() == 0 and x[:, :, :, :28].abs().sum().item() == 0
    assert x[:, :, 31].abs().sum().item() == 0  # the 1-pixel margin


# --------------------------------------------------------------------------- plan + runs


def _cfg(root: Path, **tables: dict) -> config_mod.RunConfig:
    data: dict[str, Any] = {
        "name": "cifar",
        "seed": 3,
        "nodes": 4,
        "rounds": 2,
        "topology": {"kind": "ring"},
        "data": {"dataset": "cifar10", "root": str(root)},
        "model": {"name": "lenet"},
        "train": {"local_steps": 2, "batch_size": 8, "lr": 0.05},
        "chunks": {"count": 4, "per_neighbor": 2},
        "byzantine": {"count": 1, "attack": "backdoor", "params": {"target": 0}},
        "eval": {"every": 1, "byzantine": True},  # peer 0 may be the Byzantine one
        "runtime": {"register_timeout": 60.0, "round_timeout": 60.0, "chunk_timeout": 30.0},
    }
    for key, value in tables.items():
        data[key] = {**data.get(key, {}), **value}
    return config_mod.from_dict(data)


def test_plan_uses_the_dataset_image_shape(cifar_root: Path) -> None:
    plan = build_plan(_cfg(cifar_root))

    assert sum(plan.chunk_sizes) == 62_006  # LeNet-5 on 3x32x32
    assert sorted(len(s) for s in plan.shards) == [25, 25, 25, 25]


def test_plan_rejects_a_model_that_does_not_fit_the_dataset(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a model hard-wired for 1x28x28 images
    monkeypatch.setitem(MODELS, "mnist_only", lambda **_: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))

    with pytest.raises(ModelError) as info:
        build_plan(_cfg(cifar_root, model={"name": "mnist_only"}))

    message = _one_line(info)
    assert message.startswith(
        "model.name='mnist_only' does not fit data.dataset='cifar10' (3x32x32 images, 10 classes): "
        "its forward pass fails (mat1 and mat2 shapes cannot be multiplied (1x3072 and 784x10))"
    )


@pytest.mark.cluster
def test_multiprocess_cifar10_run_is_bit_identical_to_reference(cifar_root: Path, tmp_path: Path) -> None:
    cfg = _cfg(cifar_root)

    launch_local(cfg, tmp_path / "mp", show_progress=False)
    run_reference(cfg, tmp_path / "ref")

    mp, ref = read_rounds(tmp_path / "mp"), read_rounds(tmp_path / "ref")
    assert [r["round"] for r in mp] == [r["round"] for r in ref] == [1, 2]
    for a, b in zip(mp, ref):
        for node in map(str, range(4)):
            assert a["peers"][node]["status"] == "ok"
            assert a["peers"][node]["metrics"] == b["peers"][node]["metrics"], (a["round"], node)
    metrics = mp[1]["peers"]["0"]["metrics"]
    assert {"test_accuracy", "attack_success_rate", "digest"} <= set(metrics)
    # 20 test images, 18 of them not of the target class 0 for the ASR
    assert round(metrics["test_accuracy"] * 20, 9).is_integer()
    assert round(metrics["attack_success_rate"] * 18, 9).is_integer()
    assert mp[0]["peers"]["0"]["metrics"]["digest"] != metrics["digest"]
