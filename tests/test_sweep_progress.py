"""A sweep's live progress line (``launch/sweeps/progress.py``) and ``byzemu status`` over a
sweep folder whose runs are partly queued: results folders written by hand, then one real
sweep whose output is read."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.sweeps.progress import SweepProgress
from launch.sweeps.sweepfile import load_sweep
from protocol.rundir import RunDir, round_line, write_json
from tests.support.runs import small_config

BASE = small_config("progress-test", seed=5, rounds=3)

SWEEP = """\
base = "base.toml"
repeats = 1

[axes]
"defense.name" = ["cdl", "median", "mean", "trimmed_mean"]
"""


def _record(round_: int, accuracy: float | None) -> dict:
    honest = {"test_accuracy": {"mean": accuracy, "std": 0.0, "worst": accuracy}} if accuracy is not None else {}
    return {"round": round_, "elapsed_s": float(round_), "failed": [], "honest": honest, "peers": {}}


def _write_run(run_dir: Path, records: list[dict], *, finished: bool = False) -> None:
    run = RunDir(run_dir)
    run_dir.mkdir(parents=True)
    run.config_toml.write_text(BASE)
    write_json(run.config_json, {"config": {}})
    if records:
        run.rounds.write_bytes(b"".join(round_line(r) for r in records))
    if finished:
        write_json(run.summary, {"rounds": 3, "rounds_completed": 3})


@pytest.fixture()
def sweep_dir(tmp_path: Path) -> tuple[Path, list]:
    """A sweep of 4 runs: one finished, one at round 2 (accuracy of round 1 carried), one
    started with no round yet, one not started (no folder)."""
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "grid.toml").write_text(SWEEP)
    sweep = load_sweep(tmp_path / "grid.toml")
    out = tmp_path / "out"
    out.mkdir()
    write_json(out / "sweep.json", sweep.to_json())
    runs = sweep.runs
    _write_run(out / runs[0].rel_dir, [_record(1, 0.5), _record(2, 0.6), _record(3, 0.7)], finished=True)
    _write_run(out / runs[1].rel_dir, [_record(1, 0.9112), _record(2, None)])
    _write_run(out / runs[2].rel_dir, [])
    return out, runs


def test_line_shows_done_count_and_each_running_runs_round_and_accuracy(sweep_dir: tuple[Path, list]) -> None:
    # Arrange: the three unfinished runs are the sweep's to-do list
    out, runs = sweep_dir
    live = SweepProgress(out, runs[1:], total=4, done=1, stream=io.StringIO())

    # Act
    line = live.line()

    # Assert: the queued run (no folder) is left out; no round yet shows r0 and "-"
    assert line == (f"[1/4 done] running: {runs[1].rel_dir} r2/3 0.9112 | {runs[2].rel_dir} r0/3 -")


def test_ended_run_leaves_the_line_and_counts_as_done(sweep_dir: tuple[Path, list]) -> None:
    out, runs = sweep_dir
    printed: list[str] = []
    live = SweepProgress(out, runs[1:], total=4, done=1, stream=io.StringIO(), echo=printed.append)

    live.ended(runs[1], "run ended")

    assert printed == ["run ended"]
    assert live.line() == f"[2/4 done] running: {runs[2].rel_dir} r0/3 -"


def test_status_counts_started_rounds_as_running_and_the_rest_as_queued(sweep_dir: tuple[Path, list]) -> None:
    out, runs = sweep_dir

    result = CliRunner().invoke(main, ["status", str(out)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == "4 runs: 1 finished, 2 queued, 1 running"
    assert any(line.startswith(runs[3].rel_dir) and line.endswith("queued      | not started") for line in lines)


@pytest.mark.cluster
def test_sweep_prints_progress_lines_when_not_a_terminal_and_none_when_quiet(tmp_path: Path) -> None:
    # Arrange: two runs of 3 rounds with one evaluation each, one at a time in this process
    # (a line with two runs at once: test_line_shows_done_count_and_each_running_runs_round_and_accuracy;
    # the parallel pool: test_interrupt.py)
    (tmp_path / "base.toml").write_text(small_config("progress-real", seed=5, rounds=3, nodes=3))
    (tmp_path / "grid.toml").write_text('base = "base.toml"\nrepeats = 2\n')
    (tmp_path / "one.toml").write_text('base = "base.toml"\nrepeats = 1\n')

    # Act: through the click entry point in this process (the sweep's runs are real
    # clusters either way; what is read is the command's output)
    shown = CliRunner().invoke(
        main,
        ["sweep", str(tmp_path / "grid.toml"), "--jobs", "1", "--out", str(tmp_path / "a"), "--progress-every", "0.2"],
    )
    quiet = CliRunner().invoke(
        main, ["sweep", str(tmp_path / "one.toml"), "--jobs", "1", "--out", str(tmp_path / "b"), "--quiet"]
    )

    # Assert: plain progress lines naming a run, its round and accuracy; none with --quiet
    assert shown.exit_code == 0 and quiet.exit_code == 0, shown.output + quiet.output
    run = r"base/rep[01] r[0-3]/3 (\d\.\d{4}|-)"
    pattern = re.compile(rf"^\[[01]/2 done\] running: {run}( \| {run})?$")
    progress = [line for line in shown.stderr.splitlines() if line.startswith("[")]
    assert progress and all(pattern.match(line) for line in progress), shown.stderr
    assert len(progress) == len(set(progress))  # a line is printed only when it changed
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("[")], quiet.stderr
    assert [line.split()[0] for line in quiet.stdout.splitlines() if line.startswith("[")] == ["[1/1]"]
