"""The run folder's one owner (protocol/rundir.py): its state rule, its readers, the two
discoveries of run folders, and the one config flattener that names report.csv's axis
columns and the ``runs`` DataFrame's config columns alike."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import pytest

from protocol import config as config_mod
from protocol.rundir import RunDir, flatten_config, prepared_runs, read_rounds, started_runs, write_json
from tests.support.runs import small_config


def test_flatten_config_makes_dotted_keys_all_the_way_down_and_keeps_lists() -> None:
    # Arrange
    config = {"seed": 1, "train": {"lr": 0.1}, "defense": {"name": "cdl", "params": {"tau": 2.0, "k": [1, 2]}}}

    # Act
    flat = flatten_config(config)

    # Assert
    assert flat == {
        "seed": 1,
        "train.lr": 0.1,
        "defense.name": "cdl",
        "defense.params.tau": 2.0,
        "defense.params.k": [1, 2],
    }


def test_flatten_config_keeps_a_whole_table_when_asked() -> None:
    # Arrange: a sweep's [set] replaces a params table whole
    data = {"defense": {"params": {"tau": 2.0}}, "rounds": 3}

    # Act
    flat = flatten_config(data, whole=("params",))

    # Assert
    assert flat == {"defense.params": {"tau": 2.0}, "rounds": 3}


def test_read_rounds_stops_at_a_torn_line(tmp_path: Path) -> None:
    # Arrange: two whole lines, then half a line (a crash while writing)
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"round": 1}\n{"round": 2}\n{"round": 3, "pe')

    # Act
    lines, records = read_rounds(path)

    # Assert
    assert records == [{"round": 1}, {"round": 2}]
    assert lines == [b'{"round": 1}', b'{"round": 2}']


def test_unfinished_reason_says_which_state_a_folder_is_in(tmp_path: Path) -> None:
    # Arrange
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    empty = run.unfinished_reason()
    run.rounds.write_text('{"round": 1}\n')
    killed = run.unfinished_reason()
    write_json(run.interrupted, {"rounds_completed": 1, "rounds": 5, "reason": "Ctrl-C"})
    stopped = run.unfinished_reason()
    write_json(run.summary, {"rounds_completed": 5, "rounds": 5})

    # Act
    done = run.unfinished_reason()

    # Assert
    assert empty == "no results in it"
    assert killed == "stopped after round 1 without a summary (killed, or still running)"
    assert stopped == "interrupted at round 1 of 5 (Ctrl-C)"
    assert done is None and run.is_finished()


def test_started_runs_need_config_json_and_prepared_runs_config_toml(tmp_path: Path) -> None:
    # Arrange: a started run (config.json) and a run prepared for Slurm (config.toml only)
    started, prepared = RunDir(tmp_path / "a" / "rep0"), RunDir(tmp_path / "b" / "rep0")
    for run in (started, prepared):
        run.path.mkdir(parents=True)
        run.config_toml.write_text("")
    write_json(started.config_json, {"mode": "reference", "config": {}})

    # Act
    found_started, found_prepared = started_runs(tmp_path), prepared_runs(tmp_path)

    # Assert
    assert found_started == [started.path]
    assert found_prepared == [started.path, prepared.path]
    assert prepared_runs(started.path) == [started.path]  # a run folder itself


def _finished_run(root: Path, name: str, tau: float) -> None:
    """A finished run folder written by hand: norm_clip with ``defense.params.tau``."""
    cfg = config_mod.from_dict(
        tomllib.loads(small_config("flat", seed=1, defense={"name": "norm_clip", "params": {"tau": tau}}))
    )
    run = RunDir(root / name)
    run.path.mkdir(parents=True)
    write_json(run.config_json, {"mode": "reference", "config": cfg.to_dict()})
    run.rounds.write_text("")
    acc = {"mean": 0.5, "std": 0.0, "worst": 0.5, "n": 3}
    write_json(
        run.summary,
        {
            "rounds_completed": 2,
            "rounds": 2,
            "final_accuracy": acc,
            "wall_s": 1.0,
            "final_round": 2,
            "convergence_round": 1,
            "failed_peers": [],
        },
    )


def test_report_csv_and_the_runs_table_name_a_params_field_alike(tmp_path: Path) -> None:
    # Arrange: two runs that differ only in defense.params.tau
    pytest.importorskip("pandas")
    from launch.analysis.report import write_report
    from launch.analysis.tables import runs

    _finished_run(tmp_path, "low", 0.5)
    _finished_run(tmp_path, "high", 2.0)

    # Act
    res = write_report(tmp_path)
    frame = runs(tmp_path)

    # Assert
    assert res["axes"] == ["defense.params.tau"]
    with open(tmp_path / "report.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[1] == "defense.params.tau"
    assert sorted(frame["defense.params.tau"]) == [0.5, 2.0]
