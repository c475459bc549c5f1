"""GPU peers on a machine without a GPU (``train.device``; protocol/devices.py,
peer/device.py, launch/run/gpus.py): the placement rule, the launcher's refusal with
its arithmetic, and that a CPU run stays as it was (no CUDA call, no global flag).

The GPU side (cluster and reference digests equal on a CUDA device, the CUDA context's
size, peers per GPU) runs on a GPU machine: ``bench/gpu.py``, and the last test here,
which is skipped without CUDA.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from launch.run import gpus
from launch.run.capacity import MARGIN, MODEL_MIB
from protocol import config as config_mod
from protocol.devices import DeviceError, peers_per_device, place, placement
from tests.support import BYZEMU
from tests.support.runs import small_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("setting", "visible", "expected"),
    [
        ("cpu", 2, ["cpu"] * 5),
        ("cuda", 2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]),
        ("cuda", 3, ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]),
        ("cuda:1", 2, ["cuda:1"] * 5),
        ("auto", 0, ["cpu"] * 5),
        ("auto", 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"]),
    ],
)
def test_placement_is_round_robin_by_node_id_over_the_visible_devices(
    setting: str, visible: int, expected: list[str]
) -> None:
    assert [place(setting, node, visible) for node in range(5)] == expected


def test_device_map_overrides_the_device_of_the_nodes_it_names() -> None:
    # Act
    places = placement("cuda", {"1": "cpu", "4": "cuda:0"}, range(6), 2)

    # Assert
    assert places == {0: "cuda:0", 1: "cpu", 2: "cuda:0", 3: "cuda:1", 4: "cuda:0", 5: "cuda:1"}
    assert peers_per_device(places) == {"cuda:0": 3, "cuda:1": 2}


@pytest.mark.parametrize(
    ("setting", "visible", "message"),
    [
        ("cuda", 0, "train.device 'cuda' for node 3: no CUDA device is visible (torch.cuda.device_count() is 0)"),
        ("cuda:2", 2, "train.device 'cuda:2' for node 3: only 2 CUDA device(s) visible (cuda:0..cuda:1)"),
    ],
)
def test_a_device_that_is_not_there_is_one_clear_error(setting: str, visible: int, message: str) -> None:
    with pytest.raises(DeviceError) as err:
        place(setting, 3, visible)
    assert str(err.value).startswith(message)


def _cfg(tmp_path: Path, **train: object) -> config_mod.RunConfig:
    path = tmp_path / "run.toml"
    path.write_text(
        small_config(
            "gpu",
            seed=1,
            nodes=16,
            rounds=1,
            model={"name": "lenet"},
            data={"test_samples": 1000},
            train={"local_steps": 1, **train},
        )
    )
    return config_mod.load(path)


def test_refusal_counts_a_context_and_the_model_per_peer_against_free_device_memory(tmp_path: Path) -> None:
    # Arrange: 16 LeNet peers; one GPU with 5 GiB free, then two
    cfg = _cfg(tmp_path, device="cuda")
    per_peer = MARGIN * (gpus.CUDA_CONTEXT_MIB + MODEL_MIB["lenet"] + 1000 * (784 * 4 + 8) / 2**20)
    small = gpus.Gpu(0, "Card", free_mib=5120.0, total_mib=8192.0)

    # Act
    one = gpus.shortfall(cfg, [small])
    two = gpus.shortfall(cfg, [small, gpus.Gpu(1, "Card", free_mib=5120.0, total_mib=8192.0)])

    # Assert: data.test_samples = 1,000; 16 x per_peer > 5 GiB, 8 x per_peer is not
    assert gpus.peer_gpu_mib(cfg) == pytest.approx(per_peer)
    assert one == (
        f"16 peers on cuda:0 (Card) need ~{16 * per_peer / 1024:.1f} GiB of its memory ({per_peer:.0f} MiB each, "
        f"a CUDA context included), 5.0 GiB free (~{int(5120 // per_peer)} fit); spread them with "
        "train.device = 'cuda' over more GPUs, run CUDA MPS, or put some on the CPU with train.device_map"
    )
    assert 8 * per_peer < 5120 and two is None


def test_no_gpu_refuses_cuda_and_lets_auto_run_on_the_cpu(tmp_path: Path) -> None:
    assert "no CUDA device is visible" in (gpus.shortfall(_cfg(tmp_path, device="cuda"), []) or "")
    assert gpus.shortfall(_cfg(tmp_path, device="auto"), []) is None
    assert gpus.check(_cfg(tmp_path), gpus=None) == []  # cpu: nothing probed


def test_trainer_copying_each_batch_to_its_device_trains_as_without(tmp_path: Path) -> None:
    # Arrange: the device path of LocalTrainer with the CPU as its device
    from peer.models import build_model
    from peer.training import LocalTrainer

    images, labels = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def trained(device: torch.device | None) -> torch.Tensor:
        torch.manual_seed(0)
        model = build_model("logreg")
        trainer = LocalTrainer(
            model=model, images=images, labels=labels, batch_size=8, lr=0.1, momentum=0.9,
            weight_decay=0.0, seed=5, device=device,
        )  # fmt: skip
        trainer.train(12)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    # Act / Assert
    assert torch.equal(trained(None), trained(torch.device("cpu")))


def test_a_cpu_run_touches_no_cuda_and_sets_no_global_flag(tmp_path: Path) -> None:
    # Arrange: a fresh interpreter, so nothing else of the suite has touched torch's state
    cfg = tmp_path / "run.toml"
    cfg.write_text(small_config("cpu", seed=2, nodes=3, rounds=2, train={"local_steps": 1, "device": "cpu"}))
    probe = (
        "import json, os, sys, torch\n"
        "from launch.run.reference import run_reference\n"
        "from protocol import config\n"
        "s = run_reference(config.load(sys.argv[1]), sys.argv[2])\n"
        "print(json.dumps([torch.cuda.is_initialized(), torch.are_deterministic_algorithms_enabled(),\n"
        "                  'CUBLAS_WORKSPACE_CONFIG' in os.environ, s['rounds_completed']]))\n"
    )

    # Act
    out = subprocess.run(
        [sys.executable, "-c", probe, str(cfg), str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip

    # Assert
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False, False, 2]


@pytest.mark.cluster
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no GPU is visible")
def test_launch_asking_for_cuda_without_a_gpu_fails_in_one_line_before_any_peer(tmp_path: Path) -> None:
    # Arrange
    cfg = tmp_path / "run.toml"
    cfg.write_text(small_config("cuda", seed=2, nodes=3, rounds=1))
    out = tmp_path / "run"

    # Act
    proc = subprocess.run(
        [BYZEMU, "launch", str(cfg), "--set", "train.device=cuda", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    # Assert
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: train.device 'cuda' for node 0: no CUDA device is visible (torch.cuda.device_count() is 0); "
        "set train.device = 'cpu' or 'auto'"
    ]
    assert not out.exists()


@pytest.mark.cluster
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_cluster_and_the_reference_give_the_same_models(tmp_path: Path) -> None:
    # Arrange: 4 LeNet peers on the GPU(s), 3 rounds
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        small_config(
            "gpu", seed=4, nodes=4, rounds=3, model={"name": "lenet"}, train={"local_steps": 2, "device": "cuda"}
        )
    )

    # Act
    for mode in ("launch", "reference"):  # through the module: bench/gpu.py runs this where byzemu is not installed
        cmd = [sys.executable, "-m", "launch.cli", mode, str(cfg), "--out", str(tmp_path / mode), "--quiet"]
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=600)

    # Assert
    def digests(mode: str) -> list[str]:
        last = (tmp_path / mode / "rounds.jsonl").read_text().splitlines()[-1]
        return [p["metrics"]["digest"] for _, p in sorted(json.loads(last)["peers"].items(), key=lambda kv: int(kv[0]))]

    assert digests("launch") == digests("reference")
