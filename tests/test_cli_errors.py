"""The ``byzemu`` CLI on bad input: exit status 2, one ``error: `` line, no traceback.

Every bad input is run through ``byzemu validate`` via the click entry point in this
process (cheap), and two cases through the installed console script as real processes:
a graph error on ``launch`` (which must fail before any peer or results folder exists)
and a valid config on ``validate``. Each real process pays the torch import (about 3
CPU seconds), so a module fixture starts them before the first test of this module and
the last tests collect them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from tests.support import BYZEMU

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

VALID = """\
name = "cli-test"
nodes = 3
rounds = 1

[topology]
kind = "complete"

[data]
dataset = "synthetic"
synthetic_size = 40

[model]
name = "logreg"
"""

REGULAR_5_3 = VALID.replace('kind = "complete"', 'kind = "regular"\ndegree = 3').replace("nodes = 3", "nodes = 5")

#: name -> (config text, or None for a file that does not exist; extra args; stderr prefix)
BAD: dict[str, tuple[str | None, list[str], str]] = {
    "unknown_field": (VALID + "\n[train]\nlrr = 0.1\n", [], "error: train.lrr: unknown field"),
    "wrong_type": (VALID + '\n[train]\nlr = "fast"\n', [], "error: train.lr: expected a number, got 'fast'"),
    "set_without_equals": (VALID, ["--set", "train.lr"], "error: --set 'train.lr': expected KEY=VALUE"),
    "set_wrong_type": (VALID, ["--set", "nodes=many"], "error: nodes: expected an integer"),
    "regular_degree_3_on_5_nodes": (REGULAR_5_3, [], "error: topology.degree=3"),
    "byzantine_count_equals_nodes": (VALID + "\n[byzantine]\ncount = 3\n", [], "error: byzantine.count=3"),
    "missing_data_root": (
        VALID.replace('dataset = "synthetic"', 'dataset = "mnist"\nroot = "no-such-folder"'),
        [],
        "error: data.root=",
    ),
    "unknown_defense": (
        VALID + '\n[defense]\nname = "no-such-rule"\n',
        [],
        "error: defense.name='no-such-rule': unknown defense; choose one of ",
    ),
    "unknown_attack": (
        VALID + '\n[byzantine]\ncount = 1\nattack = "no-such-attack"\n',
        [],
        "error: byzantine.attack='no-such-attack': unknown attack; choose one of ",
    ),
    "bad_attack_param": (
        VALID + '\n[byzantine]\ncount = 1\nattack = "gaussian"\nparams = {sigma = -1}\n',
        [],
        "error: byzantine.attack='gaussian': sigma=-1 must be >= 0",
    ),
    "backdoor_target_not_a_class": (
        VALID + '\n[byzantine]\ncount = 1\nattack = "backdoor"\nparams = {target = 12}\n',
        [],
        "error: byzantine.attack='backdoor': target=12 is not a class of this dataset (0..9)",
    ),
    "trigger_outside_image": (
        VALID + '\n[byzantine]\ncount = 1\nattack = "backdoor"\nparams = {trigger_position = [26, 26]}\n',
        [],
        "error: byzantine.attack='backdoor': trigger of size 4 at [26, 26] does not fit the 28x28 image",
    ),
    "negative_scale": (
        VALID + '\n[byzantine]\ncount = 1\nattack = "scaling"\nparams = {scale = -2.0}\n',
        [],
        "error: byzantine.attack='scaling': scale=-2.0 must be a finite number > 0",
    ),
    "unknown_knowledge_mode": (
        VALID + '\n[byzantine]\ncount = 1\nknowledge = "psychic"\n',
        [],
        "error: byzantine.knowledge='psychic': valid modes are observed, oracle",
    ),
    "per_neighbor_whole_model": (VALID, ["--set", "chunks.per_neighbor=8"], "error: chunks.per_neighbor=8"),
    "el_s_not_below_nodes": (
        VALID,
        ["--set", "topology.dynamic=el_oracle", "--set", "topology.s=3"],
        "error: topology.s=3: a peer sends to s others, so 1 <= s < nodes=3",
    ),
    "churn_empties_a_round": (
        VALID + "\n[churn]\naway = [[0, 1, 1], [1, 1, 1]]\n",
        [],
        "error: churn leaves 1 peer(s) in round 1: a round needs at least 2",
    ),
    "churn_unknown_node": (
        VALID + "\n[churn]\naway = [[5, 1, 1]]\n",
        [],
        "error: churn.away entry [5, 1, 1]: node 5 does not exist (nodes 0..2)",
    ),
    "leave_return_not_after_leave": (
        VALID.replace("rounds = 1", "rounds = 4") + "\n[churn]\nleave = [[1, 3, 3]]\n",
        [],
        "error: churn.leave entry [1, 3, 3]: rounds must satisfy 2 <= leave < return <= rounds=4",
    ),
    "leave_without_checkpoints": (
        VALID.replace("rounds = 1", "rounds = 4") + "\n[churn]\nleave = [[1, 2, 3]]\n",
        [],
        "error: churn.leave entry [1, 2, 3]: node 1 has no checkpoint before round 2 to return from",
    ),
    "unknown_device": (
        VALID,
        ["--set", "train.device=gpu"],
        "error: train.device: 'gpu' is not a device; choose one of cpu, cuda, cuda:N, auto",
    ),
    "device_map_unknown_node": (
        VALID + '\n[train]\ndevice_map = {"7" = "cpu"}\n',
        [],
        "error: train.device_map: key '7' is not a node id in 0..2",
    ),
    "missing_config": (None, [], "error: "),
    "invalid_toml": ("nodes = = 3\n", [], "error: "),
}


def test_every_user_input_error_derives_from_the_one_base_the_cli_catches() -> None:
    # Arrange: the error each layer raises for bad input
    from coordinator.churn import ChurnError
    from coordinator.results import ResumeError
    from coordinator.roles import RolesError
    from coordinator.server import CoordinatorError
    from coordinator.sharding import ShardingError
    from coordinator.topology import TopologyError
    from launch.cli import user_errors
    from peer.data import DatasetError
    from peer.models import ModelError
    from peer.registry import RegistryError
    from protocol.config import ConfigError
    from protocol.devices import DeviceError
    from protocol.errors import UserError

    errors = [
        ConfigError,
        DeviceError,
        ResumeError,
        TopologyError,
        ShardingError,
        RolesError,
        DatasetError,
        ModelError,
        RegistryError,
        CoordinatorError,
        ChurnError,
    ]

    # Act
    caught = user_errors()

    # Assert
    assert caught == (UserError,)  # one type, whose import costs nothing (no torch)
    assert [e for e in errors if not issubclass(e, UserError)] == []
    assert issubclass(UserError, ValueError)  # as each of them was before


def _config(folder: Path, text: str | None) -> Path:
    path = folder / "run.toml"
    if text is not None:
        path.write_text(text)
    return path


# ----------------------------------------------------------------------------- in process


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    exception: BaseException | None


def _invoke(tmp_path: Path, name: str) -> Outcome:
    text, extra, _ = BAD[name]
    result = CliRunner().invoke(main, ["validate", str(_config(tmp_path, text)), *extra])
    return Outcome(result.exit_code, result.stdout, result.stderr, result.exception)


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_exits_with_status_2(tmp_path: Path, name: str) -> None:
    out = _invoke(tmp_path, name)

    assert out.code == 2, out.stderr


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_raises_nothing_but_system_exit(tmp_path: Path, name: str) -> None:
    out = _invoke(tmp_path, name)

    assert isinstance(out.exception, SystemExit), repr(out.exception)


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_prints_one_error_line_naming_the_problem(tmp_path: Path, name: str) -> None:
    out = _invoke(tmp_path, name)

    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(BAD[name][2]), out.stderr
    assert out.stdout == ""


def test_missing_config_error_says_it_cannot_be_read(tmp_path: Path) -> None:
    assert "run.toml: cannot read config" in _invoke(tmp_path, "missing_config").stderr


def test_invalid_toml_error_says_not_valid_toml(tmp_path: Path) -> None:
    assert "run.toml: not valid TOML" in _invoke(tmp_path, "invalid_toml").stderr


def test_unknown_defense_error_lists_cdl_among_the_choices(tmp_path: Path) -> None:
    choices = _invoke(tmp_path, "unknown_defense").stderr.strip().partition("choose one of ")[2]

    assert "cdl" in choices.split(", ")


def test_missing_data_root_names_the_folder_resolved_next_to_the_config(tmp_path: Path) -> None:
    out = _invoke(tmp_path, "missing_data_root")

    assert str((tmp_path / "no-such-folder").resolve()) in out.stderr


# ----------------------------------------------------------------------------- real processes


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str
    folder: Path


#: name -> (config text, command, extra args)
#: (one process: each costs a torch import; ``validate`` of a good config runs in-process
#: below, through the same click entry point)
REAL: dict[str, tuple[str, str, list[str]]] = {
    "launch_bad_topology": (REGULAR_5_3, "launch", ["--quiet"]),
}


@pytest.fixture(scope="module", autouse=True)
def real_started(tmp_path_factory: pytest.TempPathFactory):
    """Start the real CLI processes before this module's first test so that they run while
    the in-process tests above do; the tests below collect them."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = {}
    for name, (text, command, extra) in REAL.items():
        folder = tmp_path_factory.mktemp(name)
        args = [BYZEMU, command, str(_config(folder, text)), *extra]
        if command == "launch":
            args += ["--out", str(folder / "out")]
        proc = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[name] = (folder, proc)
    yield started
    for _, proc in started.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def real(real_started) -> dict[str, Proc]:
    done = {}
    for name, (folder, proc) in real_started.items():
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        done[name] = Proc(proc.returncode, stdout, stderr, folder)
    return done


def test_real_cli_launch_bad_input_exits_2_with_one_error_line(real: dict[str, Proc]) -> None:
    r = real["launch_bad_topology"]

    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_real_cli_launch_reports_the_topology_problem(real: dict[str, Proc]) -> None:
    assert real["launch_bad_topology"].stderr.startswith("error: topology.degree=3")


def test_real_cli_launch_fails_before_creating_a_results_folder(real: dict[str, Proc]) -> None:
    folder = real["launch_bad_topology"].folder

    assert not (folder / "out").exists() and not (folder / "runs").exists()


def test_validate_ok_on_valid_config(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["validate", str(_config(tmp_path, VALID))])

    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("ok: 3 peers, complete topology (degrees [2])"), r.stdout


# ----------------------------------------------------------------------------- sweep files


def _sweep(folder: Path, lrs: str) -> Path:
    (folder / "base.toml").write_text(VALID)
    path = folder / "grid.toml"
    path.write_text(f'base = "base.toml"\nrepeats = 2\n\n[axes]\n"train.lr" = {lrs}\n')
    return path


def test_validate_checks_every_run_of_a_sweep_file(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["validate", str(_sweep(tmp_path, "[0.1, 0.2]"))])

    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert (
        lines[0] == "ok: sweep of 4 runs (2 cells x 2 repeats), every run's config and plan checked; 3 peers, 1 rounds"
    )
    assert lines[1].startswith("the largest run (train.lr=0.1/rep0): on this machine: ")


def test_validate_of_a_sweep_names_the_cell_whose_config_is_bad(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["validate", str(_sweep(tmp_path, "[0.1, -1.0]"))])

    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["error: train.lr=-1.0: must be >= 0 (sweep cell train.lr=-1.0)"]


def test_a_sweep_file_given_where_a_run_config_goes_says_how_to_run_it(tmp_path: Path) -> None:
    from launch import api
    from protocol.config import ConfigError

    sweep = _sweep(tmp_path, "[0.1]")

    with pytest.raises(ConfigError) as err:
        api.load_config(sweep)

    assert str(err.value) == (
        f"{sweep} is a sweep file (it has axes, base, repeats), not a run's config: run it with "
        f"`byzemu sweep {sweep}`; `byzemu validate {sweep}` checks every run of it"
    )


def test_what_marks_a_sweep_file_is_the_sweep_file_keys_no_run_config_has() -> None:
    """protocol.config cannot import launch, so it names the keys that mark a sweep file
    itself: they must stay launch.sweeps.sweepfile.SWEEP_KEYS less ``set`` (looks_like_sweep
    does not use it), and no run config field may share a name with them."""
    from launch.sweeps.sweepfile import SWEEP_KEYS
    from protocol.config import SWEEP_ONLY_KEYS, RunConfig

    fields = set(RunConfig.__dataclass_fields__)
    assert set(SWEEP_ONLY_KEYS) == set(SWEEP_KEYS) - {"set"}
    assert not fields & set(SWEEP_ONLY_KEYS)
