"""Refusing a run that cannot fit the machine, before anything starts (launch/run/capacity.py).

The estimate is arithmetic on the measured figures of the module's tables, so the rules
are tested in process with a made-up :class:`Host`; one command checks that ``byzemu
launch`` refuses the oversized quickstart with one line and starts nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from launch.run import capacity
from launch.run.capacity import MARGIN, MIB, CapacityError, Host, check, describe, estimate, shortfalls
from protocol import config as config_mod
from tests.support import BYZEMU

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "configs" / "quickstart.toml"
#: a 24 GiB machine with 22 GiB free and common limits
ROOMY = Host(
    mem_available_mib=22 * 1024,
    tasks_now=500,
    pid_max=32768,
    threads_max=190_000,
    user_processes=None,
    open_files=20_000,
    ports=28_232,
)


def _cfg(*sets: str) -> config_mod.RunConfig:
    return config_mod.load(QUICKSTART, list(sets))


def test_quickstart_estimate_is_peers_times_their_cost_plus_launcher_and_data() -> None:
    est = estimate(_cfg())  # 16 LeNet peers on MNIST

    mnist_mib = 60_000 * 784 * 4 / MIB  # 179.4 MiB of float32 training images
    assert est.per_peer_mib == pytest.approx(MARGIN * (capacity.PEER_BASE_MIB + capacity.MODEL_MIB["lenet"]))
    assert est.fixed_mib == pytest.approx(MARGIN * (capacity.FIXED_MIB + 2 * mnist_mib))
    assert est.memory_mib == pytest.approx(est.fixed_mib + 16 * est.per_peer_mib)
    assert (est.tasks, est.launcher_fds, est.ports) == (16 * 5, 64 + 16 * 3, 17)
    assert shortfalls(est, ROOMY) == []


def test_sixty_thousand_peers_are_short_of_memory_threads_files_and_ports() -> None:
    short = shortfalls(estimate(_cfg("nodes=60000", "model.name=lenet")), ROOMY)

    assert [s.split(" (")[0].split(",")[0] for s in short] == ["~1", "300", "180", "60"]
    assert "~1,231.5 GiB of memory" in short[0] and "22.0 GiB available" in short[0]
    assert "(~1,020 such peers fit)" in short[0]  # (22,528 - 1,090.7) / 21.0
    assert short[1] == "300,000 threads (5 per peer), 32,268 free under kernel.pid_max"
    assert short[3] == "60,001 local ports, net.ipv4.ip_local_port_range holds 28,232"


def test_user_process_limit_counts_only_where_it_is_enforced() -> None:
    limited = Host(**{**ROOMY.__dict__, "user_processes": 4096})
    est = estimate(_cfg("nodes=1024", "model.name=logreg"))

    assert shortfalls(est, ROOMY) == []
    assert shortfalls(est, limited) == ["5,120 threads, ulimit -u is 4,096 (raise it with ulimit -u)"]


def test_a_trigger_attack_adds_each_peers_triggered_test_set() -> None:
    plain = estimate(_cfg("data.test_samples=1000"))
    backdoor = estimate(_cfg("data.test_samples=1000", "byzantine.count=2", "byzantine.attack=backdoor"))

    assert backdoor.per_peer_mib - plain.per_peer_mib == pytest.approx(MARGIN * 1000 * 784 * 4 / MIB)


def test_check_raises_one_line_naming_the_fix() -> None:
    with pytest.raises(CapacityError) as err:
        check(_cfg("nodes=2000", "model.name=resnet18", "data.dataset=cifar10"), ROOMY)

    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("2,000 peers do not fit this machine: need ~")
    assert message.endswith(
        "use fewer nodes, a smaller model, or Slurm across hosts (--on slurm); --ignore-capacity starts it anyway"
    )


def test_validate_line_says_whether_launch_would_start_it() -> None:
    assert describe(_cfg(), ROOMY).endswith("22.0 GiB available; fits")
    assert "does not fit (needs ~" in describe(_cfg("nodes=5000"), ROOMY)


def test_every_registered_model_and_dataset_has_a_measured_figure() -> None:
    from peer import data
    from peer.models import MODELS

    assert sorted(capacity.MODEL_MIB) == sorted(MODELS)
    assert sorted(capacity.DATASETS) == sorted(data.names())


def test_launch_refuses_an_oversized_run_with_one_line_and_starts_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [BYZEMU, "launch", str(QUICKSTART), "--set", "nodes=60000", "--set", "model.name=lenet"]
    # before the check this forked peers until it was killed: the timeout guards the test
    done = subprocess.run([*cmd, "--set", "rounds=1", "--out", str(out)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 60,000 peers do not fit this machine: need ~1,231.5 GiB")
    assert not out.exists()
