"""Curves figures (``layout = "curves"``): a metric of ``curves.csv`` over rounds, drawn to
a PNG on render."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from launch.analysis.published.common import number, read_csv
from launch.analysis.published.lines import provenance_line
from launch.analysis.published.specs import TableSpec, first_seen, label, row_key, row_keys
from protocol import rundir


def render_curves(spec: TableSpec, *, page: Path | None, write: bool) -> str:
    """A figure of ``curves.csv``: the honest ``metric`` per evaluation round, mean over
    repeats, one line per value of ``lines``, one panel per combination of ``panels``;
    drawn to ``out`` (PNG, 150 dpi) when ``write``. Returns the image link and provenance."""
    fig_spec = spec.figure
    out = spec.root / fig_spec["out"]
    if write:
        draw_curves(spec, out)
    link = os.path.relpath(out, page.parent) if page is not None else str(out.relative_to(spec.root))
    prov = json.loads((spec.results / rundir.PROVENANCE).read_text())
    title = fig_spec.get("title", fig_spec.get("label", fig_spec["metric"]))
    return f"![{title}]({link})\n\n{provenance_line(spec, prov)}"


def draw_curves(spec: TableSpec, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig_spec = spec.figure
    runs = {(r["cell"], r["rep"]): r for r in read_csv(spec.results / "runs.csv")}
    curves = read_csv(spec.results / "curves.csv")
    for axis, keep in spec.filters.items():
        curves = [c for c in curves if runs[(c["cell"], c["rep"])].get(axis) in keep]
    panels_axes = list(fig_spec.get("panels", []))
    line_axis = fig_spec["lines"]
    metric = fig_spec["metric"]
    panel_keys = row_keys([runs[(c["cell"], c["rep"])] for c in curves], panels_axes) if panels_axes else [()]
    ncols = min(3, len(panel_keys))
    nrows = math.ceil(len(panel_keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, sharex=True, sharey=True)
    handles: dict[str, Any] = {}
    for i, key in enumerate(panel_keys):
        ax = axes[i // ncols][i % ncols]
        in_panel = [c for c in curves if row_key(runs[(c["cell"], c["rep"])], panels_axes) == key]
        for line in first_seen([runs[(c["cell"], c["rep"])] for c in in_panel], line_axis):
            points: dict[int, list[float]] = {}
            for c in in_panel:
                value = number(c[metric])
                if runs[(c["cell"], c["rep"])].get(line_axis) == line and value is not None:
                    points.setdefault(int(c["round"]), []).append(value)
            xs = sorted(points)
            (handle,) = ax.plot(xs, [statistics.fmean(points[x]) for x in xs], marker="o", markersize=3)
            handles.setdefault(label(spec, line), handle)
        ax.set_title(" / ".join(label(spec, k) for k in key), fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for j in range(len(panel_keys), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("round")
    for row in axes:
        row[0].set_ylabel(fig_spec.get("label", metric))
    fig.tight_layout()
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(7, len(handles)),
        frameon=False,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
