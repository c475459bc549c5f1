"""The report's accuracy against wall-clock time: ``accuracy_time.png``.

Rounds hide what a slow network, stragglers and deadlines cost: a run whose rounds wait
for a deadline reaches an accuracy in the same number of rounds but later. This figure
puts every configuration of a report on one time axis: honest mean test accuracy (and,
when the runs have an attack with a trigger, its success rate in a second panel) at each
evaluation round, against the round's ``elapsed_s`` (wall seconds from the first round's
start to the round's close, rounds.jsonl), each the mean over the cell's repeats. The
in-process reference has an ideal network: compare times of runs of one driver.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from launch.analysis.runs import CellResult

#: (metric in rounds.jsonl, axis label) of the figure's panels
PANELS = (
    ("test_accuracy", "honest test accuracy (mean)"),
    ("attack_success_rate", "attack success rate (honest mean)"),
)


def time_curve(cell: CellResult, metric: str) -> tuple[list[float], list[float]]:
    """(mean elapsed seconds, mean honest ``metric``) over the cell's repeats, at the rounds
    where every repeat evaluated it."""
    by_round: dict[int, list[tuple[float, float]]] = {}
    for run in cell.runs:
        for rec in run.rounds:
            value = (rec.get("honest", {}).get(metric) or {}).get("mean")
            elapsed = rec.get("elapsed_s")
            if value is not None and elapsed is not None:
                by_round.setdefault(rec["round"], []).append((float(elapsed), float(value)))
    rounds = [r for r in sorted(by_round) if len(by_round[r]) == len(cell.runs)]
    return (
        [statistics.fmean(t for t, _ in by_round[r]) for r in rounds],
        [statistics.fmean(v for _, v in by_round[r]) for r in rounds],
    )


def wallclock_figure(cells: list[CellResult], axes: list[str], path: Path, plt: Any, style: Any, label: Any) -> bool:
    """Write the figure to ``path``; False if no cell has an accuracy curve. ``plt``,
    ``style`` and ``label`` are the report's matplotlib and its series style and labels
    (``launch/analysis/plots.py``)."""
    panels = [(m, y) for m, y in PANELS if any(time_curve(c, m)[0] for c in cells)]
    if not panels or panels[0][0] != "test_accuracy":
        return False
    fig, grid = plt.subplots(1, len(panels), figsize=(3.8 * len(panels) + 2.6, 3.0), squeeze=False)
    for ax, (metric, ylabel) in zip(grid[0], panels):
        for i, cell in enumerate(cells):
            xs, ys = time_curve(cell, metric)
            if xs:
                shown = {k: v for k in axes if (v := cell.values.get(k)) is not None}
                ax.plot(xs, ys, label=label(shown) if shown else cell.name, **style(i))
        ax.set_xlabel("wall-clock time (s)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    handles, labels = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("against wall-clock time (mean over repeats)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
