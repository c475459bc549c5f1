"""The report's figures for a paper (``launch/analysis/plots.py``): PDF and SVG besides
PNG, fonts embedded, a heatmap whose colour scale spans its data with a colourbar as tall
as its panel; cells built by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from launch.analysis import plots
from launch.analysis.runs import CellResult, RunResult

pytest.importorskip("matplotlib")

#: (attack, defense) -> final honest accuracy
FINAL = {("none", "cdl"): 0.95, ("none", "median"): 0.93, ("backdoor", "cdl"): 0.81, ("backdoor", "median"): 0.88}
AXES = ["byzantine.attack", "defense.name"]


def _cells() -> list[CellResult]:
    cells = []
    for (attack, defense), final in FINAL.items():
        rounds = [
            {"round": r, "honest": {"test_accuracy": {"mean": final * r / 3, "worst": final * r / 4}}}
            for r in (1, 2, 3)
        ]
        run = RunResult(Path(f"/{attack}/{defense}"), {}, {"final_accuracy": {"mean": final}}, rounds, None)
        values = {"byzantine.attack": attack, "defense.name": defense}
        cells.append(CellResult(f"{attack}-{defense}", values, [run]))
    return cells


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plotting functions close, kept for inspection."""
    import matplotlib.pyplot as plt

    kept: list[Any] = []
    close = plt.close

    def keep(fig: Any = None) -> None:
        kept.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    return kept


def test_heatmap_colour_scale_spans_the_data_and_its_bar_is_as_tall_as_the_panel(
    tmp_path: Path, drawn: list[Any]
) -> None:
    # Act
    assert plots.heatmap_figure(_cells(), AXES, "final_accuracy", "final accuracy", tmp_path / "h.png")

    # Assert: the scale runs from the lowest to the highest value, not over [0, 1]
    fig = drawn[-1]
    panel, bar = fig.axes
    assert panel.images[0].get_clim() == (0.81, 0.95)
    assert bar.get_ylim() == pytest.approx((0.81, 0.95))
    fig.canvas.draw()
    p, b = panel.get_position(), bar.get_position()
    assert (b.y0, b.y1) == pytest.approx((p.y0, p.y1), abs=0.01)  # aligned with the panel
    assert b.x0 > p.x1  # beside it


def test_single_value_heatmap_gets_a_scale_around_it() -> None:
    assert plots.color_range([0.5, 0.5]) == pytest.approx((0.45, 0.55))


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """format -> the figures written in it, drawn once for the tests below (rendering a PDF
    or SVG costs seconds on a loaded machine)."""
    return {fmt: plots.all_figures(_cells(), AXES, tmp_path_factory.mktemp(fmt), fmt) for fmt in ("png", "pdf", "svg")}


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_every_figure_is_written_in_the_format_asked_for(
    figures: dict[str, list[Path]], fmt: str, magic: bytes
) -> None:
    paths = figures[fmt]

    names = sorted(p.name for p in paths)
    assert names == sorted(f"{stem}.{fmt}" for stem in ("accuracy", "accuracy_worst", "heatmap_accuracy"))
    assert all(p.read_bytes().startswith(magic) for p in paths)


def test_pdf_embeds_truetype_fonts_and_svg_keeps_text_as_text(figures: dict[str, list[Path]]) -> None:
    pdf = figures["pdf"][0].read_bytes()
    svg = figures["svg"][0].read_text()

    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # type 42 (TrueType), not type 3
    assert "<text" in svg and "honest test accuracy" in svg


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--format eps: choose one of png, pdf, svg"):
        plots.all_figures(_cells(), AXES, tmp_path, "eps")


def _timed_run(name: str, elapsed: list[float], acc: list[float | None]) -> RunResult:
    rounds = [
        {"round": r, "elapsed_s": t, "honest": {"test_accuracy": {"mean": a}} if a is not None else {}}
        for r, (t, a) in enumerate(zip(elapsed, acc), start=1)
    ]
    return RunResult(Path(f"/{name}"), {}, {}, rounds, None)


def test_accuracy_against_wall_clock_time_averages_repeats_on_rounds_both_evaluated(tmp_path: Path) -> None:
    from launch.analysis.wallclock import time_curve

    slow = CellResult(
        "slow",
        {"stragglers.factor": 4.0},
        [_timed_run("a", [1.0, 2.0, 3.0], [0.5, None, 0.7]), _timed_run("b", [2.0, 4.0, 5.0], [0.6, 0.65, 0.9])],
    )
    fast = CellResult("fast", {"stragglers.factor": 1.0}, [_timed_run("c", [0.5, 1.0, 1.5], [0.5, 0.6, 0.7])])

    assert time_curve(slow, "test_accuracy") == ([1.5, 4.0], [0.55, 0.8])  # round 2: one repeat only
    paths = plots.all_figures([slow, fast], ["stragglers.factor"], tmp_path)
    assert tmp_path / "accuracy_time.png" in paths
