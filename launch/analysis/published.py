"""Results as code: the measured tables of the docs, rendered from committed result files.

Every table of measured numbers in the docs is the output of three steps, each one command:

1. **run** a shipped sweep file (``byzemu sweep configs/sweeps/X.toml --out runs/X``;
   resumable, so an interrupted sweep goes on where it stopped);
2. **collect** the sweep's results folder into a small committed summary
   (``byzemu publish collect runs/X results/X``): ``runs.csv`` (one row per run: the cell's
   axis values, seed, final and best honest metrics, the peers' final model digests),
   ``curves.csv`` (honest metrics at every evaluation round) and ``provenance.json`` (the
   commits, platforms and times that produced the runs; :mod:`protocol.provenance`);
3. **render** the tables into the docs (``byzemu publish render``): each table sits between
   ``<!-- byzemu:table configs/tables/T.toml -->`` and ``<!-- byzemu:end -->`` and is replaced
   by what its spec file ``configs/tables/T.toml`` says (rows, columns, metric, format, the
   paper's numbers to print beside), with one provenance line and the commands that
   regenerate it. ``byzemu publish check`` (and the test suite) fails when a table in the
   docs is not what its results render to, so no number is typed by hand or left stale.

The render step needs no training: a fresh clone regenerates every table from the committed
``results/`` folders. Spec format: docs/EXPERIMENTS.md, *Results as code*.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
import statistics
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import provenance as prov_mod
from protocol import rundir
from protocol.errors import UserError
from protocol.rundir import RunDir, read_json

#: the folder that holds pyproject.toml: table specs and results paths are relative to it
PROJECT_ROOT = Path(__file__).resolve().parents[2]

RUN_FIELDS = (
    "cell",
    "rep",
    "seed",
    "rounds",
    "rounds_completed",
    "acc_mean",
    "acc_std",
    "acc_worst",
    "asr_mean",
    "asr_worst",
    "loss_mean",
    "best_acc_mean",
    "best_round",
    "convergence_round",
    "failed_peers",
    "wall_s",
    "digest",
    "platform",
)
#: config fields every runs.csv row carries (besides the sweep's axes), so that results of
#: several sweeps collected together can be told apart (e.g. one sweep per Byzantine ratio)
CONFIG_FIELDS = (
    "nodes",
    "data.dataset",
    "data.split",
    "model.name",
    "byzantine.count",
    "byzantine.fraction",
    "byzantine.attack",
    "byzantine.params",
    "defense.name",
    "defense.params",
    "chunks.count",
    "chunks.per_neighbor",
)
CURVE_FIELDS = ("cell", "rep", "round", "acc_mean", "acc_worst", "asr_mean", "asr_worst", "loss_mean")

BEGIN = re.compile(r"<!-- byzemu:table (?P<spec>\S+) -->")
END = "<!-- byzemu:end -->"


class PublishError(UserError):
    """A results folder, spec file or docs page that cannot be collected or rendered."""


# ---------------------------------------------------------------------------------------
# collect: a results folder -> results/NAME/{runs.csv, curves.csv, provenance.json}


def _stat(block: Any, key: str) -> float | None:
    if isinstance(block, dict) and isinstance(block.get(key), (int, float)):
        return float(block[key])
    return None


def final_digest(records: list[dict[str, Any]]) -> str:
    """One hash of every peer's model digest in the last round (bit-identity in one value)."""
    if not records:
        return ""
    peers = records[-1].get("peers", {})
    joined = ";".join(
        f"{n}:{p.get('metrics', {}).get('digest', '')}" for n, p in sorted(peers.items(), key=lambda x: int(x[0]))
    )
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def _field(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _run_row(
    run_dir: Path, cell: str, values: dict[str, Any], rep: int
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    run = RunDir(run_dir)
    summary = run.read_summary()
    if summary is None or not run.is_finished():
        raise PublishError(f"{run_dir}: not a finished run ({run.unfinished_reason()}); finish the sweep first")
    prov = run.read_provenance()
    if prov is None:
        raise PublishError(f"{run_dir}: no {rundir.PROVENANCE} (made by an older byzemu); rerun it")
    config = (run.read_config() or {}).get("config", {})
    records = run.records()
    final = records[-1]["honest"] if records else {}
    # the final evaluation round, which summary.json's final_* fields describe
    evals = [r for r in records if "test_accuracy" in r.get("honest", {})]
    last_eval = evals[-1]["honest"] if evals else {}
    row: dict[str, Any] = {
        "cell": cell,
        "rep": rep,
        "seed": config.get("seed"),
        "rounds": summary["rounds"],
        "rounds_completed": summary["rounds_completed"],
        "acc_mean": _stat(summary.get("final_accuracy"), "mean"),
        "acc_std": _stat(summary.get("final_accuracy"), "std"),
        "acc_worst": _stat(summary.get("final_accuracy"), "worst"),
        "asr_mean": _stat(summary.get("final_attack_success_rate"), "mean"),
        "asr_worst": _stat(summary.get("final_attack_success_rate"), "worst"),
        "loss_mean": _stat(last_eval.get("test_loss") or final.get("test_loss"), "mean"),
        "best_acc_mean": _stat(summary.get("best_accuracy"), "mean"),
        "best_round": summary.get("best_round"),
        "convergence_round": summary.get("convergence_round"),
        "failed_peers": len(summary.get("failed_peers") or []),
        "wall_s": summary.get("wall_s"),
        "digest": final_digest(records),
        "platform": prov_mod.platform_key(prov),
        **{k: _cell_value(_field(config, k)) for k in CONFIG_FIELDS},
        **values,
    }
    curves = [
        {
            "cell": cell,
            "rep": rep,
            "round": r["round"],
            "acc_mean": _stat(r["honest"].get("test_accuracy"), "mean"),
            "acc_worst": _stat(r["honest"].get("test_accuracy"), "worst"),
            "asr_mean": _stat(r["honest"].get("attack_success_rate"), "mean"),
            "asr_worst": _stat(r["honest"].get("attack_success_rate"), "worst"),
            "loss_mean": _stat(r["honest"].get("test_loss"), "mean"),
        }
        for r in evals
    ]
    return row, curves, prov


def _runs_of(root: Path) -> list[tuple[Path, str, dict[str, Any], int]]:
    """(run folder, cell name, axis values, repeat) of a sweep folder, or of one run folder."""
    sweep = read_json(root / rundir.SWEEP)
    if sweep is None:
        if not RunDir(root).config_json.is_file():
            raise PublishError(
                f"{root}: neither a sweep folder ({rundir.SWEEP}) nor a run folder ({rundir.CONFIG_JSON})"
            )
        return [(root, "base", {}, 0)]
    return [
        (root / run["dir"], cell["name"], dict(cell.get("values") or {}), int(run["rep"]))
        for cell in sweep["cells"]
        for run in cell["runs"]
    ]


def _cell_value(value: Any) -> Any:
    """An axis value as one CSV field (tables and dicts as compact JSON)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, (dict, list)) else value


def combine_provenance(provs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The provenance of a set of runs: every platform and commit that made them, their
    span in time and added wall time, and the first run's full record."""
    platforms: dict[str, int] = {}
    commits: dict[str, int] = {}
    for p in provs:
        key = prov_mod.platform_key(p)
        platforms[key] = platforms.get(key, 0) + 1
        code = p.get("byzemu") or {}
        commit = (code.get("commit") or "unknown") + ("+dirty" if code.get("dirty") else "")
        commits[commit] = commits.get(commit, 0) + 1
    starts = [p["started"] for p in provs if p.get("started")]
    ends = [p["finished"] for p in provs if p.get("finished")]
    return {
        "runs": len(provs),
        "platforms": platforms,
        "commits": commits,
        "started": min(starts) if starts else None,
        "finished": max(ends) if ends else None,
        "wall_s": sum(float(p.get("wall_s") or 0.0) for p in provs),
        "example": provs[0] if provs else {},
    }


def collect(
    root: str | Path | Sequence[str | Path], dest: str | Path, *, sweep_file: str | None = None
) -> dict[str, Any]:
    """Write ``dest``/runs.csv, curves.csv and provenance.json from the finished runs under
    ``root`` (a sweep folder or one run folder, or several of them: their runs one after
    another, e.g. the same sweep on two platforms); returns the combined provenance."""
    roots = [Path(r) for r in ([root] if isinstance(root, (str, Path)) else root)]
    dest = Path(dest)
    runs = [r for one in roots for r in _runs_of(one)]
    root = roots[0]
    rows, curves, provs = [], [], []
    axes: list[str] = []
    for run_dir, cell, values, rep in runs:
        row, curve, prov = _run_row(run_dir, cell, {k: _cell_value(v) for k, v in values.items()}, rep)
        axes.extend(k for k in values if k not in axes and k not in CONFIG_FIELDS)
        rows.append(row)
        curves.extend(curve)
        provs.append(prov)
    dest.mkdir(parents=True, exist_ok=True)
    _write_csv(dest / "runs.csv", [*RUN_FIELDS, *CONFIG_FIELDS, *axes], rows)
    _write_csv(dest / "curves.csv", list(CURVE_FIELDS), curves)
    combined = combine_provenance(provs)
    sweep = read_json(root / rundir.SWEEP) or {}
    combined["sweep"] = sweep_file or _project_relative(sweep.get("sweep_file"))
    combined["axes"] = axes
    (dest / rundir.PROVENANCE).write_text(json.dumps(combined, indent=2, sort_keys=True) + "\n")
    return combined


def _project_relative(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return Path(path).name


def _fmt_csv(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest round-trip text: the exact value
    return value


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt_csv(row.get(k)) for k in fields})
    path.write_text(buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise PublishError(f"{path}: cannot read ({exc.strerror}); run `byzemu publish collect` first") from None


# ---------------------------------------------------------------------------------------
# table specs


@dataclass(frozen=True)
class Metric:
    """One column of a list table: a runs.csv field, reduced over repeats."""

    name: str
    label: str
    digits: int = 4
    scale: float = 1.0
    reduce: str = "mean"  # mean | min | max
    std: bool = False  # mean ± population std over repeats (as byzemu report), when 2 or more


@dataclass(frozen=True)
class TableSpec:
    """A table of the docs: which results, which layout, which published numbers beside.

    ``layout = "grid"``: ``rows`` (one axis) x ``columns`` (one axis), one ``metric``;
    ``layout = "list"``: one row per combination of the ``rows`` axes, one column per metric.
    """

    path: Path
    results: Path
    sweep: str
    layout: str
    rows: tuple[str, ...]
    columns: str | None
    metrics: tuple[Metric, ...]
    labels: dict[str, str] = field(default_factory=dict)
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    published_label: str = "paper"
    note: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)
    published_digits: int | None = None
    root: Path = PROJECT_ROOT
    #: ``sweep`` is one run's config (``launch = FILE`` in the spec), not a sweep file
    launch: bool = False
    #: the commands that regenerate the results, when they are not one sweep or launch
    commands: tuple[str, ...] = ()
    #: grid: add the largest difference between a row's columns (e.g. between platforms)
    spread: bool = False
    #: layout "index": one entry per paper (paper, sweeps, tables)
    entries: tuple[dict[str, Any], ...] = ()
    #: layout "curves": metric, lines, panels, out, label, title ([figure] of the spec)
    figure: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem


def _metric(data: dict[str, Any], where: str) -> Metric:
    allowed = {"name", "label", "digits", "scale", "reduce", "std"}
    unknown = set(data) - allowed
    if unknown:
        raise PublishError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if data.get("name") not in RUN_FIELDS:
        raise PublishError(f"{where}: metric name must be one of {list(RUN_FIELDS)}, not {data.get('name')!r}")
    if data.get("reduce", "mean") not in ("mean", "min", "max"):
        raise PublishError(f"{where}: reduce must be mean, min or max")
    return Metric(
        name=data["name"],
        label=str(data.get("label", data["name"])),
        digits=int(data.get("digits", 4)),
        scale=float(data.get("scale", 1.0)),
        reduce=str(data.get("reduce", "mean")),
        std=bool(data.get("std", False)),
    )


def load_spec(path: str | Path, *, root: Path = PROJECT_ROOT) -> TableSpec:
    """Read and check a table spec file (format: module docstring and docs/EXPERIMENTS.md);
    its ``results`` path is relative to ``root`` (the project's folder)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PublishError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PublishError(f"{path}: not valid TOML ({exc})") from None
    if data.get("layout") == "index":
        return _load_index(path, data, root)
    allowed = {
        "results",
        "sweep",
        "launch",
        "commands",
        "layout",
        "rows",
        "columns",
        "metric",
        "metrics",
        "labels",
        "published",
        "note",
        "filter",
        "spread",
        "figure",
    }
    unknown = set(data) - allowed
    if unknown:
        raise PublishError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in ("results", "layout", "rows"):
        if key not in data:
            raise PublishError(f"{path}: missing {key!r}")
    if ("sweep" in data) == ("launch" in data):
        raise PublishError(f"{path}: missing 'sweep' (a sweep file) or 'launch' (one run's config): give one")
    layout = data["layout"]
    rows = (data["rows"],) if isinstance(data["rows"], str) else tuple(data["rows"])
    figure: dict[str, Any] = {}
    if layout == "curves":
        figure = dict(data.get("figure") or {})
        unknown_fig = set(figure) - {"metric", "label", "panels", "lines", "out", "title"}
        if unknown_fig or not {"metric", "out", "lines"} <= set(figure) or figure["metric"] not in CURVE_FIELDS:
            raise PublishError(
                f"{path}: a curves figure needs [figure] metric (a curves.csv column), lines (an axis), out "
                f"(the PNG, relative to the project), and may give panels (axes), label, title"
            )
        metrics: tuple[Metric, ...] = ()
    elif layout == "grid":
        if not isinstance(data.get("columns"), str) or "metric" not in data or not rows:
            raise PublishError(f"{path}: a grid has 'rows' (one axis or a list), one 'columns' axis and one [metric]")
        metrics = (_metric(data["metric"], f"{path} [metric]"),)
    elif layout == "list":
        if not data.get("metrics"):
            raise PublishError(f"{path}: a list table needs [[metrics]]")
        metrics = tuple(_metric(m, f"{path} [[metrics]] {i + 1}") for i, m in enumerate(data["metrics"]))
    else:
        raise PublishError(f"{path}: layout must be 'grid', 'list', 'curves' or 'index', not {layout!r}")
    published = data.get("published") or {}
    return TableSpec(
        path=path,
        results=root / data["results"],
        root=root,
        sweep=str(data.get("sweep") or data["launch"]),
        launch="launch" in data,
        commands=tuple(str(c) for c in data.get("commands", ())),
        layout=layout,
        rows=rows,
        columns=data.get("columns"),
        metrics=metrics,
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        published={str(k): dict(v) for k, v in (published.get("values") or {}).items()},
        published_label=str(published.get("label", "paper")),
        note=str(data.get("note", "")),
        published_digits=published.get("digits"),
        spread=bool(data.get("spread", False)),
        figure=figure,
        filters={str(k): [str(x) for x in v] for k, v in (data.get("filter") or {}).items()},
    )


def _load_index(path: Path, data: dict[str, Any], root: Path) -> TableSpec:
    """A paper index spec: ``[[paper]]`` entries with ``name``, ``sweeps`` (shipped sweep
    files, the paper's full grid first) and ``tables`` (the specs of its rendered tables)."""
    entries = []
    for i, entry in enumerate(data.get("paper", [])):
        unknown = set(entry) - {"name", "sweeps", "tables", "note"}
        if unknown or "name" not in entry or not entry.get("sweeps"):
            raise PublishError(f"{path}: [[paper]] {i + 1} needs name and sweeps (and may give tables, note)")
        entries.append(dict(entry))
    if not entries:
        raise PublishError(f"{path}: an index needs [[paper]] entries")
    return TableSpec(
        path=path,
        results=root,
        sweep="",
        layout="index",
        rows=(),
        columns=None,
        metrics=(),
        root=root,
        entries=tuple(entries),
    )


# ---------------------------------------------------------------------------------------
# render


def _number(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _key(row: dict[str, str], axes: Sequence[str]) -> tuple[str, ...]:
    return tuple(row.get(a, "") for a in axes)


def _keys(rows: list[dict[str, str]], axes: Sequence[str]) -> list[tuple[str, ...]]:
    """The distinct values of ``axes`` in ``rows``, in order of first appearance."""
    keys: list[tuple[str, ...]] = []
    for r in rows:
        if _key(r, axes) not in keys:
            keys.append(_key(r, axes))
    return keys


def _reduced_value(values: list[float], metric: Metric) -> float:
    if metric.reduce == "min":
        return min(values)
    if metric.reduce == "max":
        return max(values)
    return statistics.fmean(values)


def _reduce(values: list[float], metric: Metric) -> str:
    if not values:
        return ""
    v = _reduced_value(values, metric)
    text = f"{v * metric.scale:.{metric.digits}f}"
    if metric.std and metric.reduce == "mean" and len(values) > 1:
        text += f" ± {statistics.pstdev(values) * metric.scale:.{metric.digits}f}"
    return text


def _order(rows: list[dict[str, str]], axis: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.get(axis, "") not in seen:
            seen.append(r.get(axis, ""))
    return seen


def _paper(spec: TableSpec, value: Any) -> str:
    """A published number as the paper prints it (``published.digits`` places if given)."""
    if value is None:
        return ""
    if spec.published_digits is not None and isinstance(value, (int, float)):
        return f"{value:.{spec.published_digits}f}"
    return str(value)


def _label(spec: TableSpec, value: str) -> str:
    """Display text of an axis value (``[labels]``), safe inside a Markdown table cell."""
    return spec.labels.get(value, value).replace("|", "\\|")


def render_table(spec: TableSpec, *, page: Path | None = None, write: bool = False) -> str:
    """The Markdown table of ``spec`` from its committed results, with a provenance line
    (a ``curves`` spec: the image link, and with ``write`` the PNG is drawn)."""
    if spec.layout == "index":
        return render_index(spec)
    if spec.layout == "curves":
        return render_curves(spec, page=page, write=write)
    rows = read_csv(spec.results / "runs.csv")
    for axis, keep in spec.filters.items():
        rows = [r for r in rows if r.get(axis) in keep]
    for axis in (*spec.rows, *([spec.columns] if spec.columns else [])):
        if rows and axis not in rows[0]:
            raise PublishError(f"{spec.path}: {axis!r} is not an axis of {spec.results / 'runs.csv'}")
    lines: list[str] = []
    if spec.layout == "grid":
        metric = spec.metrics[0]
        col_axis = spec.columns or ""
        cols = _order(rows, col_axis)
        header = list(spec.rows)
        for c in cols:
            header.append(_label(spec, c))
            if any(c in v for v in spec.published.values()):
                header.append(f"{_label(spec, c)} ({spec.published_label})")
        if spec.spread:
            header.append("largest difference")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for key in _keys(rows, spec.rows):
            pub_key = "/".join(key)
            cells = [_label(spec, k) for k in key]
            found = []
            for c in cols:
                raw = [_number(r[metric.name]) for r in rows if _key(r, spec.rows) == key and r.get(col_axis) == c]
                vals = [v for v in raw if v is not None]
                cells.append(_reduce(vals, metric))
                if vals:
                    found.append(_reduced_value(vals, metric))
                if any(c in v for v in spec.published.values()):
                    cells.append(_paper(spec, spec.published.get(pub_key, {}).get(c)))
            if spec.spread:
                cells.append(f"{(max(found) - min(found)) * metric.scale:.{metric.digits}f}" if len(found) > 1 else "")
            lines.append("| " + " | ".join(cells) + " |")
    else:
        keys = _keys(rows, spec.rows)
        header = [*spec.rows, "runs", *(m.label for m in spec.metrics)]
        paper_cols = list(dict.fromkeys(k for v in spec.published.values() for k in v))
        header += [f"{c} ({spec.published_label})" for c in paper_cols]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for key in keys:
            group = [r for r in rows if _key(r, spec.rows) == key]
            cells = [_label(spec, k) for k in key] + [str(len(group))]
            for m in spec.metrics:
                raw = [_number(r[m.name]) for r in group]
                cells.append(_reduce([v for v in raw if v is not None], m))
            pub = spec.published.get("/".join(key), {})
            cells += [_paper(spec, pub.get(c)) for c in paper_cols]
            lines.append("| " + " | ".join(cells) + " |")
    prov = json.loads((spec.results / rundir.PROVENANCE).read_text())
    lines.append("")
    lines.append(provenance_line(spec, prov))
    return "\n".join(lines)


def render_curves(spec: TableSpec, *, page: Path | None, write: bool) -> str:
    """A figure of ``curves.csv``: the honest ``metric`` per evaluation round, mean over
    repeats, one line per value of ``lines``, one panel per combination of ``panels``;
    drawn to ``out`` (PNG, 150 dpi) when ``write``. Returns the image link and provenance."""
    fig_spec = spec.figure
    out = spec.root / fig_spec["out"]
    if write:
        _draw_curves(spec, out)
    link = os.path.relpath(out, page.parent) if page is not None else str(out.relative_to(spec.root))
    prov = json.loads((spec.results / rundir.PROVENANCE).read_text())
    title = fig_spec.get("title", fig_spec.get("label", fig_spec["metric"]))
    return f"![{title}]({link})\n\n{provenance_line(spec, prov)}"


def _draw_curves(spec: TableSpec, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_spec = spec.figure
    runs = {(r["cell"], r["rep"]): r for r in read_csv(spec.results / "runs.csv")}
    curves = read_csv(spec.results / "curves.csv")
    for axis, keep in spec.filters.items():
        curves = [c for c in curves if runs[(c["cell"], c["rep"])].get(axis) in keep]
    panels_axes = list(fig_spec.get("panels", []))
    line_axis = fig_spec["lines"]
    metric = fig_spec["metric"]
    panel_keys = _keys([runs[(c["cell"], c["rep"])] for c in curves], panels_axes) if panels_axes else [()]
    ncols = min(3, len(panel_keys))
    nrows = math.ceil(len(panel_keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, sharex=True, sharey=True)
    handles: dict[str, Any] = {}
    for i, key in enumerate(panel_keys):
        ax = axes[i // ncols][i % ncols]
        in_panel = [c for c in curves if _key(runs[(c["cell"], c["rep"])], panels_axes) == key]
        for line in _order([runs[(c["cell"], c["rep"])] for c in in_panel], line_axis):
            points: dict[int, list[float]] = {}
            for c in in_panel:
                value = _number(c[metric])
                if runs[(c["cell"], c["rep"])].get(line_axis) == line and value is not None:
                    points.setdefault(int(c["round"]), []).append(value)
            xs = sorted(points)
            (handle,) = ax.plot(xs, [statistics.fmean(points[x]) for x in xs], marker="o", markersize=3)
            handles.setdefault(_label(spec, line), handle)
        ax.set_title(" / ".join(_label(spec, k) for k in key), fontsize=9)
        ax.grid(alpha=0.3)
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


def _sweep_runs(path: Path) -> int:
    """Runs of a sweep file: the product of its axes' lengths times its repeats (read from
    the file, ``extends`` resolved; no config is loaded)."""
    from launch.sweeps.sweepfile import read_sweep_file

    data = read_sweep_file(path)
    return math.prod(len(v) for v in (data.get("axes") or {}).values()) * int(data.get("repeats", 1))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def render_index(spec: TableSpec) -> str:
    """The paper index: per paper its sweep files with their number of runs, and per
    rendered table the runs measured, their run time and platform (from the committed
    provenance), so a reader picks a row and gets the commands."""
    lines = [
        "| paper | sweep file | runs | measured here | regenerate |",
        "|---|---|---|---|---|",
    ]
    for entry in spec.entries:
        first = True
        for sweep in entry["sweeps"]:
            runs = _sweep_runs(spec.root / sweep)
            tables = [t for t in entry.get("tables", []) if load_spec(spec.root / t, root=spec.root).sweep == sweep]
            measured, command = (
                "not run here: `byzemu sweep " + sweep + " --plan` estimates it",
                f"`byzemu sweep {sweep}`",
            )
            if tables:
                table = load_spec(spec.root / tables[0], root=spec.root)
                prov = read_json(table.results / rundir.PROVENANCE)
                if prov is None:
                    raise PublishError(f"{spec.path}: {tables[0]} has no collected results ({table.results})")
                example = prov.get("example") or {}
                cpu = (example.get("machine") or {}).get("cpu", "?")
                cores = (example.get("machine") or {}).get("cores", "?")
                measured = (
                    f"{prov.get('runs')} run(s), {_minutes(prov.get('wall_s', 0.0))} of run time on {cpu} "
                    f"({cores} cores); table `{Path(tables[0]).name}`"
                )
                command = "; ".join(f"`{c}`" for c in regenerate_commands(table))
            name = entry["name"] if first else ""
            lines.append(f"| {name} | `{sweep}` | {runs} | {measured} | {command} |")
            first = False
    lines.append("")
    lines.append("<sub>Runs counted from the shipped sweep files; times from each table's committed provenance.</sub>")
    return "\n".join(lines)


def provenance_line(spec: TableSpec, prov: dict[str, Any]) -> str:
    """One line under a table: where its numbers came from and how to regenerate them."""
    example = prov.get("example") or {}
    commits = sorted(prov.get("commits") or {})
    platforms = prov.get("platforms") or {}
    where = prov_mod.short_line(example)
    if len(commits) > 1:
        where += f" (runs from {len(commits)} commits: {', '.join(c[:7] for c in commits)})"
    if len(platforms) > 1:
        where += f" ({len(platforms)} platforms)"
    command = ", ".join(f"`{c}`" for c in regenerate_commands(spec))
    wall = f"{prov.get('runs')} run(s), {_minutes(prov.get('wall_s', 0.0))} of run wall time"
    return f"<sub>Measured: {where}; {wall}. Regenerate: {command}.</sub>"


def render_page(text: str, *, page: Path | None = None, root: Path = PROJECT_ROOT, write: bool = False) -> str:
    """``text`` with every ``byzemu:table`` block replaced by its rendering (spec paths
    relative to ``root``)."""
    out: list[str] = []
    pos = 0
    for match in BEGIN.finditer(text):
        if match.start() < pos:
            continue
        end = text.find(END, match.end())
        if end < 0:
            raise PublishError(f"{page or 'page'}: {match.group(0)} has no {END}")
        spec = load_spec(root / match.group("spec"), root=root)
        out.append(text[pos : match.end()])
        out.append("\n" + render_table(spec, page=page, write=write) + "\n")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def doc_pages(root: Path = PROJECT_ROOT) -> list[Path]:
    """The Markdown pages that may hold rendered tables: README.md, BENCHMARKS.md, docs/."""
    pages = [root / "README.md", root / "BENCHMARKS.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in pages if p.is_file()]


def render_docs(pages: Iterable[Path] | None = None, *, write: bool = True, root: Path = PROJECT_ROOT) -> list[Path]:
    """Re-render every table block in ``pages`` (default: :func:`doc_pages`); returns the
    pages whose text changed (written back when ``write``)."""
    changed = []
    for page in pages if pages is not None else doc_pages(root):
        text = page.read_text()
        new = render_page(text, page=page, root=root, write=write)
        if new != text:
            changed.append(page)
            if write:
                page.write_text(new)
    return changed


def specs_in_docs(pages: Iterable[Path] | None = None) -> list[str]:
    """The spec paths named by table blocks in ``pages`` (in order, with repeats)."""
    return [
        m.group("spec")
        for page in (pages if pages is not None else doc_pages())
        for m in BEGIN.finditer(page.read_text())
    ]


def regenerate_commands(spec: TableSpec) -> list[str]:
    """The shell commands that rerun, collect and render ``spec``'s table."""
    if spec.commands:
        return [*spec.commands, "byzemu publish render"]
    results = spec.results.relative_to(spec.root)
    out = f"runs/{results.name}"
    return [
        shlex.join(["byzemu", "launch" if spec.launch else "sweep", spec.sweep, "--out", out]),
        shlex.join(["byzemu", "publish", "collect", out, str(results)]),
        "byzemu publish render",
    ]


# ---------------------------------------------------------------------------------------
# drift: rerun a documented cell and compare it with its committed row

#: the drift cells and the cross-platform tolerance (configs/drift.toml)
DRIFT_FILE = PROJECT_ROOT / "configs" / "drift.toml"


@dataclass(frozen=True)
class DriftCell:
    """A documented run that the test suite reruns: ``cell``/``rep`` of ``results``."""

    results: str
    cell: str
    rep: int = 0

    @property
    def id(self) -> str:
        return f"{Path(self.results).name}/{self.cell}/rep{self.rep}"


def drift_cells(path: Path = DRIFT_FILE) -> tuple[list[DriftCell], float]:
    """The cells of ``path`` and its ``tolerance`` (absolute, on honest accuracy)."""
    data = tomllib.loads(path.read_text())
    cells = [DriftCell(str(c["results"]), str(c["cell"]), int(c.get("rep", 0))) for c in data.get("cell", [])]
    return cells, float(data["tolerance"])


@dataclass(frozen=True)
class Drift:
    """A rerun of a documented cell beside its committed row."""

    cell: DriftCell
    recorded: dict[str, str]
    now: dict[str, Any]

    @property
    def same_platform(self) -> bool:
        return self.recorded.get("platform") == self.now["platform"]

    def differences(self, tolerance: float) -> list[str]:
        """What differs beyond what the platforms allow: on the recording platform every
        field bit for bit (model digests, accuracy, ASR); elsewhere honest accuracy and ASR
        within ``tolerance``."""
        out = []
        fields = ("acc_mean", "acc_worst", "asr_mean")
        if self.same_platform:
            for key in ("digest", *fields):
                rec, now = self.recorded.get(key, ""), _fmt_csv(self.now.get(key))
                if str(rec) != str(now):
                    out.append(f"{key}: recorded {rec}, now {now}")
        else:
            for key in fields:
                was, value = _number(self.recorded.get(key, "")), self.now.get(key)
                if (was is None) != (value is None) or (
                    was is not None and value is not None and abs(was - value) > tolerance
                ):
                    out.append(f"{key}: recorded {was}, now {value} (tolerance {tolerance} across platforms)")
        return out


def rerun_cell(cell: DriftCell, out_dir: Path, *, root: Path = PROJECT_ROOT) -> Drift:
    """Run ``cell`` again, in process (the reference driver, bit-identical to a cluster
    run), from the sweep file its results record; ``out_dir`` receives the run folder."""

    from launch.run.reference import run_reference
    from launch.sweeps.sweepfile import load_sweep

    results = root / cell.results
    prov = json.loads((results / rundir.PROVENANCE).read_text())
    recorded = [r for r in read_csv(results / "runs.csv") if r["cell"] == cell.cell and int(r["rep"]) == cell.rep]
    if not recorded:
        raise PublishError(f"{results / 'runs.csv'}: no run {cell.cell}/rep{cell.rep}")
    cwd = Path.cwd()
    os.chdir(root)  # sweep files name data folders relative to the project, as documented
    try:
        source = root / prov["sweep"]
        text = tomllib.loads(source.read_text())
        if "base" in text or "extends" in text:  # a sweep file
            sweep = load_sweep(source)
            run = next((r for r in sweep.runs if r.cell == cell.cell and r.rep == cell.rep), None)
            if run is None:
                raise PublishError(f"{prov['sweep']}: no cell {cell.cell} rep {cell.rep} (the sweep file changed?)")
            cfg = run.cfg
        else:  # one run's config (byzemu launch)
            from protocol import config as config_mod

            cfg = config_mod.load(source, [])
        run_reference(cfg, out_dir)
    finally:
        os.chdir(cwd)
    now, _, _ = _run_row(out_dir, cell.cell, {}, cell.rep)
    return Drift(cell=cell, recorded=recorded[0], now=now)
