"""Sweeps and reports: real local clusters (tiny synthetic config), resume, report files.

One module fixture runs a 2 x 2 x 1 sweep in this process (the forkserver is reused);
the resume test reruns it after deleting one run's summary.json.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.sweeps.runner import run_sweep
from launch.sweeps.sweepfile import load_sweep
from tests.support.runs import small_config

BASE = small_config("sweep-test", seed=3)

SWEEP = """\
base = "base.toml"
repeats = 1

[set]
"byzantine.count" = 1

[axes]
"byzantine.attack" = ["none", "backdoor"]
"defense.name" = ["cdl", "norm_clip"]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sweep")
    (d / "base.toml").write_text(BASE)
    (d / "grid.toml").write_text(SWEEP)
    out = d / "out"
    lines: list[str] = []
    counts = run_sweep(load_sweep(d / "grid.toml"), out, jobs=1, echo=lines.append)
    assert counts == {"total": 4, "ran": 4, "skipped": 0}
    assert [line.split()[0] for line in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert all("honest accuracy" in line for line in lines)
    return d, out


@pytest.mark.cluster
def test_sweep_runs_every_cell(swept: tuple[Path, Path]) -> None:
    _, out = swept
    assert len(list(out.glob("*/rep0/summary.json"))) == 4
    grid = json.loads((out / "sweep.json").read_text())
    assert len(grid["cells"]) == 4 and grid["total_runs"] == 4
    assert grid["cells"][0]["name"] == "byzantine.attack=none__defense.name=cdl"
    assert grid["cells"][3]["values"] == {"byzantine.attack": "backdoor", "defense.name": "norm_clip"}
    for cell in grid["cells"]:
        cfg = json.loads((out / cell["runs"][0]["dir"] / "config.json").read_text())["config"]
        assert cfg["seed"] == 3  # base seed + repeat 0
        assert cfg["byzantine"]["attack"] == cell["values"]["byzantine.attack"]
        assert cfg["defense"]["name"] == cell["values"]["defense.name"]
        assert cfg["byzantine"]["count"] == 1


@pytest.mark.cluster
def test_resume_redoes_only_the_interrupted_run(swept: tuple[Path, Path]) -> None:
    d, out = swept
    summaries = sorted(out.glob("*/rep0/summary.json"))
    victim = summaries[1]
    victim.unlink()  # the run was interrupted: rounds.jsonl etc. remain, no summary
    before = {p: p.stat().st_mtime_ns for p in summaries if p != victim}
    result = CliRunner().invoke(main, ["sweep", str(d / "grid.toml"), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "3/4 runs already done" in result.output
    assert "[4/4]" in result.output
    assert victim.is_file()
    assert {p: p.stat().st_mtime_ns for p in before} == before


@pytest.mark.cluster
def test_report(swept: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = swept
    rep = tmp_path / "rep"
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(rep)])
    assert result.exit_code == 0, result.output
    md = (rep / "report.md").read_text()
    rows = list(csv.DictReader((rep / "report.csv").open()))
    assert len(rows) == 4
    grid = json.loads((out / "sweep.json").read_text())
    for cell in grid["cells"]:
        summary = json.loads((out / cell["runs"][0]["dir"] / "summary.json").read_text())
        acc = statistics.fmean([summary["final_accuracy"]["mean"]])
        attack, defense = cell["values"]["byzantine.attack"], cell["values"]["defense.name"]
        line = next(row for row in md.splitlines() if row.startswith(f"| {attack} | {defense} |"))
        assert f"{acc:.4f} ± 0.0000" in line
        row = next(r for r in rows if r["byzantine.attack"] == attack and r["defense.name"] == defense)
        assert float(row["accuracy_mean"]) == pytest.approx(acc)
        assert float(row["accuracy_worst"]) == pytest.approx(summary["final_accuracy"]["worst"])
        assert row["runs"] == "1"
    pngs = [rep / "accuracy.png", rep / "asr.png", *sorted(rep.glob("topology_*.png"))]
    assert len(pngs) == 6
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "sweep_text, message",
    [
        (SWEEP.replace('"defense.name"', '"defense.nmae"'), "error: defense.nmae: unknown field"),
        (SWEEP.replace('["cdl", "norm_clip"]', "[]"), "empty list"),
        (SWEEP.replace('base = "base.toml"\n', ""), "missing base"),
        (SWEEP.replace('"norm_clip"', '"no-such-rule"'), "unknown defense"),
        ('extends = "grid.toml"\n', "makes a loop"),
        ('extends = "nowhere.toml"\n', "no such file"),
    ],
    ids=["unknown_axis_field", "empty_axis", "missing_base", "bad_cell_value", "extends_loop", "extends_missing"],
)
def test_bad_sweep_file(tmp_path: Path, sweep_text: str, message: str) -> None:
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "grid.toml").write_text(sweep_text)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "grid.toml"), "--out", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not out.exists()  # nothing ran, no folder


@pytest.mark.cluster
def test_resume_refuses_runs_made_with_another_config(swept: tuple[Path, Path]) -> None:
    d, out = swept
    (d / "edited.toml").write_text(SWEEP.replace('"byzantine.count" = 1', '"byzantine.count" = 1\nrounds = 3'))
    before = sorted(p.stat().st_mtime_ns for p in out.glob("*/rep0/summary.json"))
    result = CliRunner().invoke(main, ["sweep", str(d / "edited.toml"), "--out", str(out)])
    assert result.exit_code == 2
    assert "different config" in result.output.strip().splitlines()[-1]
    assert sorted(p.stat().st_mtime_ns for p in out.glob("*/rep0/summary.json")) == before


def test_extends_merges_set_and_replaces_axes(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "grid.toml").write_text(SWEEP)
    (tmp_path / "small.toml").write_text(
        'extends = "grid.toml"\nrepeats = 2\n\n[set]\nrounds = 1\n\n[axes]\n"defense.name" = ["median"]\n'
    )
    sweep = load_sweep(tmp_path / "small.toml")

    assert [c.name for c in sweep.cells] == [
        "byzantine.attack=none__defense.name=median",
        "byzantine.attack=backdoor__defense.name=median",
    ]
    cfg = sweep.runs[0].cfg
    # [set] of the parent (byzantine.count) and of the child (rounds) both apply.
    assert (cfg.byzantine.count, cfg.rounds, sweep.repeats, len(sweep.runs)) == (1, 1, 2, 4)


def test_extra_set_wins_over_set_and_axes(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "grid.toml").write_text(SWEEP)
    sweep = load_sweep(tmp_path / "grid.toml", ["byzantine.count=2", 'defense.name="median"'])

    assert {(r.cfg.byzantine.count, r.cfg.defense.name) for r in sweep.runs} == {(2, "median")}
    assert len(sweep.cells) == 4  # cell names still follow the axes


@pytest.mark.cluster
def test_kept_run_from_an_older_schema_is_kept(swept: tuple[Path, Path]) -> None:
    # A config.json written before a field existed (here: data.p removed) still matches.
    d, out = swept
    path = next(out.glob("*/rep0/config.json"))
    original = path.read_text()
    data = json.loads(original)
    del data["config"]["data"]["p"]
    path.write_text(json.dumps(data))
    try:
        result = CliRunner().invoke(main, ["sweep", str(d / "grid.toml"), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "4/4 runs already done" in result.output
    finally:
        path.write_text(original)


@pytest.mark.cluster
def test_report_format_pdf_writes_vector_figures_the_report_links(swept: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = swept
    rep = tmp_path / "rep"

    result = CliRunner().invoke(main, ["report", str(out), "--out", str(rep), "--format", "pdf"])

    assert result.exit_code == 0, result.output
    assert (rep / "accuracy.pdf").read_bytes()[:4] == b"%PDF" and not list(rep.glob("*.png"))
    assert "![accuracy](accuracy.pdf)" in (rep / "report.md").read_text().splitlines()
