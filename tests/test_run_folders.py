"""Auto-named results folders stay one per launch (``launch/run/claim.py``), and the
progress line says when the accuracy it shows is carried over from an earlier evaluation
round (``launch/run/progress.py``)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.run.claim import claim_out_dir, release_out_dir
from launch.run.progress import Progress
from tests.support import commands
from tests.support.runs import small_config


def test_second_claim_of_a_name_gets_a_numbered_folder(tmp_path: Path) -> None:
    name = tmp_path / "runs" / "quickstart-20261206-101500"

    first, second, third = claim_out_dir(name), claim_out_dir(name), claim_out_dir(name)

    assert [first.name, second.name, third.name] == [name.name, f"{name.name}-2", f"{name.name}-3"]
    assert all(p.is_dir() for p in (first, second, third))


def test_claims_racing_for_one_name_each_get_their_own_folder(tmp_path: Path) -> None:
    # Arrange: eight launches naming the same folder at the same moment
    name, got, start = tmp_path / "runs" / "same-second", [], threading.Barrier(8)

    def claim() -> None:
        start.wait()
        got.append(claim_out_dir(name))

    # Act
    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Assert
    assert len(set(got)) == 8 and sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(p.name for p in got)


def test_release_removes_only_an_empty_folder(tmp_path: Path) -> None:
    empty, used = claim_out_dir(tmp_path / "a"), claim_out_dir(tmp_path / "b")
    (used / "config.json").write_text("{}")

    release_out_dir(empty)
    release_out_dir(used)

    assert not empty.exists() and (used / "config.json").is_file()


def test_progress_line_marks_accuracy_carried_over_from_an_earlier_round() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream=stream)
    acc = {"mean": 0.5, "worst": 0.25}

    for round_, honest in [(1, {}), (2, {"test_accuracy": acc}), (3, {}), (4, {"test_accuracy": acc})]:
        progress({"round": round_, "elapsed_s": float(round_), "round_s": 1.0, "failed": [], "honest": honest})

    lines = stream.getvalue().splitlines()
    assert "honest acc    -   |" in lines[0]
    assert "honest acc 0.5000 (worst 0.2500) | elapsed" in lines[1]
    assert "honest acc 0.5000 (worst 0.2500) at round 2 | elapsed" in lines[2]
    assert "honest acc 0.5000 (worst 0.2500) | elapsed" in lines[3]


@pytest.mark.cluster
def test_two_launches_in_the_same_second_write_two_folders(tmp_path: Path) -> None:
    # Arrange: one config, launched twice at once from one folder, without --out
    (tmp_path / "run.toml").write_text(small_config("twice", seed=1, nodes=3, rounds=1))
    argv = ["launch", "run.toml", "--quiet"]

    # Act: two processes of their own (tests/support/commands.py), started back to back
    procs = [
        commands.start(argv, tmp_path / f"out{i}.log", err=tmp_path / f"err{i}.log", cwd=tmp_path) for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]

    # Assert: each finished in a folder of its own
    assert [p.returncode for p in procs] == [0, 0], outputs
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all((f / "summary.json").is_file() for f in folders), outputs


def test_launch_that_fails_before_it_runs_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # in process: the launch fails before it starts any process
    (tmp_path / "run.toml").write_text(small_config("bad", seed=1, nodes=2, rounds=1))  # a ring needs 3
    monkeypatch.chdir(tmp_path)

    done = CliRunner().invoke(main, ["launch", "run.toml", "--quiet"])

    assert done.exit_code == 2 and done.stderr.startswith("error: topology.kind=ring needs nodes >= 3"), done.stderr
    assert list((tmp_path / "runs").iterdir()) == []
