"""The report's figures (matplotlib, Agg), made to go into a paper as they are.

* ``accuracy.png`` / ``asr.png``: honest mean test accuracy / attack success rate per
  round, mean over repeats with a ± std band. With few configurations one panel; with more,
  one small panel per combination of all axes but the last (e.g. split × attack), one line
  per value of the last axis (e.g. defense), one legend outside the panels.
* ``accuracy_worst.png`` / ``asr_worst.png``: the same for the worst honest peer (lowest
  accuracy, highest ASR), the number robustness claims are about.
* ``heatmap_accuracy.png`` / ``heatmap_asr.png``: final value (mean over repeats) for the
  attack × defense grid, one panel per value of the other axes.
* ``accuracy_time.png``: accuracy (and ASR) against wall-clock time
  (``launch/analysis/wallclock.py``);
* ``topology_<cell>.png``: the graph of the cell's first run, honest peers coloured by
  their final test accuracy (and ASR), Byzantine peers marked.

Series beyond 10 get a new line style as well as a colour; round ticks are integers.
Every figure is drawn in :data:`PAPER_RC`'s style (small fonts, compact legends, fonts
embedded as text in PDF and SVG) and written in one of :data:`FORMATS`: ``png`` (150 dpi),
or ``pdf`` and ``svg`` (vector) for a paper. A heatmap's colour scale spans the range of
the values it shows, with its colourbar as tall as the panels.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from launch.analysis.runs import CellResult
from launch.analysis.wallclock import wallclock_figure

#: (metric in rounds.jsonl, file stem, axis label, which honest statistic)
CURVES = (
    ("test_accuracy", "accuracy", "honest test accuracy (mean)", "mean"),
    ("test_accuracy", "accuracy_worst", "worst honest peer's test accuracy", "worst"),
    ("attack_success_rate", "asr", "attack success rate (honest mean)", "mean"),
    ("attack_success_rate", "asr_worst", "worst honest peer's attack success rate", "worst"),
)
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: at most this many series in one panel before the figure is split into facets
SINGLE_PANEL_MAX = 6
#: the file formats a report's figures can be written in (``byzemu report --format``)
FORMATS = ("png", "pdf", "svg")
#: matplotlib settings of every figure: font sizes for a two-column paper, compact
#: legends, TrueType fonts in PDF (type 42, as publishers ask) and text kept as text in SVG
PAPER_RC: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.handlelength": 1.6,
    "legend.handletextpad": 0.4,
    "legend.labelspacing": 0.3,
    "legend.borderaxespad": 0.3,
    "legend.columnspacing": 0.8,
    "legend.frameon": False,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
}
#: entries of a curve figure's legend per column
LEGEND_ROWS = 12


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def style(i: int) -> dict[str, Any]:
    """Series i: one of 10 colours, and past 10 a new line style (and marker). Earlier
    series are drawn wider, with larger hollow markers, so that series with equal values
    (e.g. defenses that do not bind) stay visible one inside the other."""
    rank = i % 4
    return {
        "color": f"C{i % 10}",
        "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)],
        "marker": MARKERS[i % len(MARKERS)],
        "markersize": 7.0 - 1.3 * rank,
        "markerfacecolor": "none",
        "markeredgewidth": 1.2,
        "linewidth": 2.6 - 0.5 * rank,
    }


def short(key: str) -> str:
    """``byzantine.attack`` -> ``attack``, ``defense.name`` -> ``defense``: axis names as
    a title shows them."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def label(values: dict[str, Any], *, bare: bool = False) -> str:
    """``split=iid, attack=backdoor``; with ``bare`` a single axis's value alone (for a
    legend whose title names the axis)."""
    if bare and len(values) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{short(k)}={v}" for k, v in values.items()) or "all"


def curve(cell: CellResult, metric: str, stat: str) -> tuple[list[int], list[float], list[float]]:
    """Rounds, mean and population std over the cell's repeats of the honest ``stat``
    (mean or worst) of ``metric``, on the rounds where every repeat evaluated it."""
    by_round: dict[int, list[float]] = {}
    for run in cell.runs:
        for rec in run.rounds:
            value = (rec.get("honest", {}).get(metric) or {}).get(stat)
            if value is not None:
                by_round.setdefault(rec["round"], []).append(value)
    xs = [x for x in sorted(by_round) if len(by_round[x]) == len(cell.runs)]
    means = [statistics.fmean(by_round[x]) for x in xs]
    stds = [statistics.pstdev(by_round[x]) if len(by_round[x]) > 1 else 0.0 for x in xs]
    return xs, means, stds


def _facets(cells: list[CellResult], axes: list[str]) -> tuple[list[str], list[str]]:
    """(panel axes, line axes): one panel per value combination of the panel axes."""
    if len(cells) <= SINGLE_PANEL_MAX or len(axes) < 2:
        return [], axes
    return axes[:-1], axes[-1:]


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return (n + cols - 1) // cols, cols


def curves_figure(cells: list[CellResult], axes: list[str], metric: str, stat: str, ylabel: str, path: Path) -> bool:
    """One curve figure (see the module docstring); False if no cell has the metric."""
    series = [(c, *curve(c, metric, stat)) for c in cells]
    series = [s for s in series if s[1]]
    if not series:
        return False
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    panel_axes, line_axes = _facets([s[0] for s in series], axes)
    panels: dict[str, list[Any]] = {}
    for s in series:
        panels.setdefault(label({k: s[0].values.get(k) for k in panel_axes}), []).append(s)
    line_keys = list(dict.fromkeys(label({k: s[0].values.get(k) for k in line_axes}, bare=True) for s in series))
    rows, cols = _grid(len(panels))
    fig, grid = plt.subplots(
        rows, cols, figsize=(3.6 * cols + 2.6, 2.8 * rows + 0.6), squeeze=False, sharex=True, sharey=True
    )
    filled = list(panels.items())
    for i, ax in enumerate(grid.flat):  # rows * cols >= len(panels): the last axes may be spare
        if i >= len(filled):
            ax.set_visible(False)
            continue
        title, members = filled[i]
        for cell, xs, ys, sd in members:
            key = label({k: cell.values.get(k) for k in line_axes}, bare=True)
            st = style(line_keys.index(key))
            ax.plot(xs, ys, label=key, **st)
            if len(cell.runs) > 1:
                # accuracy and ASR are rates: the band stays within [0, 1]
                ax.fill_between(
                    xs,
                    [max(0.0, y - d) for y, d in zip(ys, sd)],
                    [min(1.0, y + d) for y, d in zip(ys, sd)],
                    color=st["color"],
                    alpha=0.15,
                    linewidth=0,
                )
        if panel_axes:
            ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in grid[-1]:
        ax.set_xlabel("round", fontsize=9)
    for ax in grid[:, 0]:
        ax.set_ylabel(ylabel, fontsize=9)
    handles, labels = grid.flat[0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in grid.flat[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    repeats = max(len(s[0].runs) for s in series)
    title = f"{ylabel}, mean ± std over {repeats} repeats" if repeats > 1 else ylabel
    fig.suptitle(title, fontsize=10)
    fig.legend(
        seen.values(),
        seen.keys(),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        ncols=-(-len(seen) // LEGEND_ROWS),
        title=", ".join(short(k) for k in line_axes) or None,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _final(cell: CellResult, key: str) -> float | None:
    values = [r.summary[key]["mean"] for r in cell.runs if (r.summary.get(key) or {}).get("mean") is not None]
    return statistics.fmean(values) if values else None


def color_range(values: list[float]) -> tuple[float, float]:
    """The colour scale of a heatmap: the values' range (0.1 wide around a single value),
    so that close values get distinct colours."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    return lo, hi


def heatmap_figure(cells: list[CellResult], axes: list[str], key: str, title: str, path: Path) -> bool:
    """Final ``key`` (a summary statistic) over the attack × defense grid; False without one."""
    row_axis = "byzantine.attack" if "byzantine.attack" in axes else None
    col_axis = "defense.name" if "defense.name" in axes else None
    if row_axis is None or col_axis is None:
        return False
    if all(_final(c, key) is None for c in cells):
        return False
    plt = _plt()
    rest = [a for a in axes if a not in (row_axis, col_axis)]
    panels: dict[str, dict[tuple[Any, Any], float | None]] = {}
    for c in cells:
        panels.setdefault(label({k: c.values.get(k) for k in rest}), {})[(c.values[row_axis], c.values[col_axis])] = (
            _final(c, key)
        )
    # rows and columns with no value anywhere (e.g. ASR of attack "none") are left out
    all_rows = list(dict.fromkeys(c.values[row_axis] for c in cells))
    all_cols = list(dict.fromkeys(c.values[col_axis] for c in cells))

    def has(r: Any, c: Any) -> bool:
        return any(t.get((r, c)) is not None for t in panels.values())

    row_vals = [r for r in all_rows if any(has(r, c) for c in all_cols)]
    col_vals = [c for c in all_cols if any(has(r, c) for r in row_vals)]
    n = len(panels)
    lo, hi = color_range([v for t in panels.values() for v in t.values() if v is not None])
    fig, grid = plt.subplots(
        1, n, figsize=(1.25 * len(col_vals) * n + 1.8, 0.55 * len(row_vals) + 2.4), squeeze=False, layout="constrained"
    )
    image = None
    for ax, (name, table) in zip(grid.flat, panels.items()):
        data = [[table.get((r, c)) for c in col_vals] for r in row_vals]
        masked = [[float("nan") if v is None else v for v in row] for row in data]
        image = ax.imshow(masked, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                if v is None:
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="grey")
                else:  # white on the dark (low) end of viridis
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if (v - lo) / (hi - lo) < 0.6 else "black",
                    )
        ax.set_xticks(range(len(col_vals)), [str(v) for v in col_vals], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(row_vals)), [str(v) for v in row_vals], fontsize=8)
        ax.set_xlabel(short(col_axis), fontsize=9)
        if ax is grid.flat[0]:
            ax.set_ylabel(short(row_axis), fontsize=9)
        if rest:
            ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    # constrained layout gives the bar the panels' height (shrink=1), next to the last one
    bar = fig.colorbar(image, ax=list(grid.flat), shrink=1.0, fraction=0.05, pad=0.02, aspect=25)
    bar.ax.tick_params(labelsize=8)
    fig.savefig(path)
    plt.close(fig)
    return True


def _final_peers(rounds: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Each peer's metrics in the run's last evaluation round."""
    for rec in reversed(rounds):
        peers = rec.get("peers", {})
        if any("test_accuracy" in (p.get("metrics") or {}) for p in peers.values()):
            return {int(n): p.get("metrics") or {} for n, p in peers.items()}
    return {}


def topology_figure(cell: CellResult, path: Path) -> bool:
    """The cell's graph (first run with a topology), peers coloured by final accuracy and
    ASR, Byzantine peers as red diamonds; False without a topology."""
    run = next((r for r in cell.runs if r.topology), None)
    if run is None or run.topology is None:
        return False
    plt = _plt()
    import networkx as nx

    topo = run.topology
    g = nx.Graph()
    g.add_nodes_from(n["id"] for n in topo["nodes"])
    g.add_edges_from(tuple(e) for e in topo["edges"])
    byz = sorted(n["id"] for n in topo["nodes"] if n.get("byzantine"))
    honest = [n for n in g.nodes if n not in byz]
    final = _final_peers(run.rounds)
    metrics = [("test_accuracy", "final test accuracy")]
    if any("attack_success_rate" in m for m in final.values()):
        metrics.append(("attack_success_rate", "final attack success rate"))
    pos = nx.spring_layout(g, seed=0)
    fig, grid = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics) + 0.6, 4.4), squeeze=False)
    for ax, (metric, title) in zip(grid.flat, metrics):
        nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.35)
        values = [final.get(n, {}).get(metric, float("nan")) for n in honest]
        drawn = nx.draw_networkx_nodes(
            g,
            pos,
            nodelist=honest,
            node_color=values,
            cmap="viridis",
            vmin=0.0,
            vmax=1.0,
            node_size=260,
            ax=ax,
            edgecolors="black",
            linewidths=0.5,
        )
        if byz:
            nx.draw_networkx_nodes(
                g,
                pos,
                nodelist=byz,
                node_color="tab:red",
                node_shape="D",
                node_size=260,
                ax=ax,
                edgecolors="black",
                linewidths=0.8,
                label="Byzantine peer",
            )
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8, frameon=False, markerscale=0.5)
        # dark numbers on the bright end of the colour map, white ones elsewhere
        for nodes, colour in (
            ([n for n, v in zip(honest, values) if v == v and v > 0.6], "black"),
            ([n for n, v in zip(honest, values) if not (v == v and v > 0.6)] + byz, "white"),
        ):
            nx.draw_networkx_labels(g, pos, labels={n: str(n) for n in nodes}, ax=ax, font_size=7, font_color=colour)
        bar = fig.colorbar(drawn, ax=ax, fraction=0.046, pad=0.02)
        bar.set_label(f"honest peers' {title}", fontsize=8)
        bar.ax.tick_params(labelsize=8)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    where = ", ".join(f"{short(k)}={v}" for k, v in cell.values.items()) or cell.name
    fig.suptitle(f"{where}\n{topo.get('kind', '')} graph, Byzantine peers: {byz or 'none'}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def all_figures(cells: list[CellResult], axes: list[str], out: Path, fmt: str = "png") -> list[Path]:
    """Every figure of the report, written to ``out`` as ``fmt`` (one of :data:`FORMATS`)
    in the paper style (:data:`PAPER_RC`); their paths."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    plt = _plt()
    paths = []
    with plt.rc_context(PAPER_RC):
        for metric, stem, ylabel, stat in CURVES:
            if curves_figure(cells, axes, metric, stat, ylabel, out / f"{stem}.{fmt}"):
                paths.append(out / f"{stem}.{fmt}")
        if wallclock_figure(cells, axes, out / f"accuracy_time.{fmt}", plt, style, label):
            paths.append(out / f"accuracy_time.{fmt}")
        for key, stem, title in (
            ("final_accuracy", "heatmap_accuracy", "final honest test accuracy (mean over peers and repeats)"),
            (
                "final_attack_success_rate",
                "heatmap_asr",
                "final attack success rate (mean over honest peers and repeats)",
            ),
        ):
            if heatmap_figure(cells, axes, key, title, out / f"{stem}.{fmt}"):
                paths.append(out / f"{stem}.{fmt}")
        for cell in cells:
            path = out / f"topology_{cell.name}.{fmt}"
            if topology_figure(cell, path):
                paths.append(path)
    return paths
