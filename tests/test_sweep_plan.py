"""``byzemu sweep FILE --plan``: the runs of a sweep and an estimate of their time from
two-round probes in process (launch/sweeps/estimate.py), without running the sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.sweeps import estimate
from launch.sweeps.sweepfile import load_sweep
from tests.support.runs import small_config

SWEEP = """base = "base.toml"
repeats = 2

[axes]
"defense.name" = ["cdl", "median"]
"""


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    (tmp_path / "base.toml").write_text(small_config("plan", seed=1, nodes=4, rounds=6, eval={"every": 3}))
    (tmp_path / "grid.toml").write_text(SWEEP)
    return tmp_path / "grid.toml"


def test_plan_probes_each_configuration_once_and_applies_the_formula(sweep_file: Path) -> None:
    # Arrange
    sweep = load_sweep(sweep_file)
    probed: list[str] = []

    def measure(cfg):  # the real probe, recording which configs it was asked for
        probed.append(cfg.defense.name)
        return estimate.probe(cfg)

    # Act
    planned = estimate.plan(sweep, jobs=1, cores=2, measure=measure)

    # Assert: two configurations (repeats share a probe), four runs
    assert probed == ["cdl", "median"]
    assert [(p.run.cell, p.run.rep) for p in planned] == [
        ("defense.name=cdl", 0),
        ("defense.name=cdl", 1),
        ("defense.name=median", 0),
        ("defense.name=median", 1),
    ]
    first = planned[0]
    assert first.cpu_s > 0 and planned[1].cpu_s == first.cpu_s
    # 6 rounds, evaluations in rounds 3 and 6; 4 peers on 2 cores
    p = estimate.probe(sweep.runs[0].cfg)
    assert p.cpu_s(sweep.runs[0].cfg) == pytest.approx(
        6 * p.train_round_s + 2 * max(0.0, p.eval_round_s - p.train_round_s)
    )
    lines = estimate.plan_lines(planned, jobs=1, cores=2)
    assert lines[1].startswith("defense.name=cdl | 2 | 4 | 6 | synthetic + logreg | ")
    assert lines[-1].startswith("total: 4 runs, 1 at once on 2 cores: about ")


def test_cli_plan_prints_the_runs_and_runs_nothing(sweep_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    # in process: the command's parsing and output are the point, not a process start
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--plan", "--jobs", "1", "--out", str(out)])

    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "plan: 2 configurations x 2 repeats = 4 runs, 1 at once" in result.stdout
    assert "defense.name=median | 2 | 4 | 6 | synthetic + logreg |" in result.stdout
    assert not out.exists()
