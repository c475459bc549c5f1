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
import re
import shlex
import statistics
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.results import read_json, read_rounds
from protocol import provenance as prov_mod

#: the folder that holds pyproject.toml: table specs and results paths are relative to it
PROJECT_ROOT = Path(__file__).resolve().parents[2]

RUN_FIELDS = (
    "cell", "rep", "seed", "rounds", "rounds_completed", "acc_mean", "acc_std", "acc_worst",
    "asr_mean", "asr_worst", "loss_mean", "best_acc_mean", "best_round", "convergence_round",
    "failed_peers", "wall_s", "digest",
)
CURVE_FIELDS = ("cell", "rep", "round", "acc_mean", "acc_worst", "asr_mean", "asr_worst", "loss_mean")

BEGIN = re.compile(r"<!-- byzemu:table (?P<spec>\S+) -->")
END = "<!-- byzemu:end -->"


class PublishError(ValueError):
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
    joined = ";".join(f"{n}:{p.get('metrics', {}).get('digest', '')}" for n, p in sorted(peers.items(), key=lambda x: int(x[0])))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def _run_row(run_dir: Path, cell: str, values: dict[str, Any], rep: int) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    summary = read_json(run_dir / "summary.json")
    if summary is None or summary.get("rounds_completed") != summary.get("rounds"):
        raise PublishError(f"{run_dir}: not a finished run (no summary.json recording every round); finish the sweep first")
    prov = read_json(run_dir / "provenance.json")
    if prov is None:
        raise PublishError(f"{run_dir}: no provenance.json (made by an older byzemu); rerun it")
    config = (read_json(run_dir / "config.json") or {}).get("config", {})
    _, records = read_rounds(run_dir / "rounds.jsonl")
    final = records[-1]["honest"] if records else {}
    # the final evaluation round, which summary.json's final_* fields describe
    evals = [r for r in records if "test_accuracy" in r.get("honest", {})]
    last_eval = evals[-1]["honest"] if evals else {}
    row: dict[str, Any] = {
        "cell": cell, "rep": rep, "seed": config.get("seed"), "rounds": summary["rounds"],
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
        **values,
    }
    curves = [
        {
            "cell": cell, "rep": rep, "round": r["round"],
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
    sweep = read_json(root / "sweep.json")
    if sweep is None:
        if not (root / "config.json").is_file():
            raise PublishError(f"{root}: neither a sweep folder (sweep.json) nor a run folder (config.json)")
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


def collect(root: str | Path, dest: str | Path, *, sweep_file: str | None = None) -> dict[str, Any]:
    """Write ``dest``/runs.csv, curves.csv and provenance.json from the finished runs under
    ``root`` (a sweep folder or one run folder); returns the combined provenance."""
    root, dest = Path(root), Path(dest)
    runs = _runs_of(root)
    rows, curves, provs = [], [], []
    axes: list[str] = []
    for run_dir, cell, values, rep in runs:
        row, curve, prov = _run_row(run_dir, cell, {k: _cell_value(v) for k, v in values.items()}, rep)
        axes.extend(k for k in values if k not in axes)
        rows.append(row)
        curves.extend(curve)
        provs.append(prov)
    dest.mkdir(parents=True, exist_ok=True)
    _write_csv(dest / "runs.csv", [*RUN_FIELDS, *axes], rows)
    _write_csv(dest / "curves.csv", list(CURVE_FIELDS), curves)
    combined = combine_provenance(provs)
    sweep = read_json(root / "sweep.json") or {}
    combined["sweep"] = sweep_file or _project_relative(sweep.get("sweep_file"))
    combined["axes"] = axes
    (dest / "provenance.json").write_text(json.dumps(combined, indent=2, sort_keys=True) + "\n")
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
    std: bool = False  # mean ± sample std over repeats (when there are 2 or more)


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
        name=data["name"], label=str(data.get("label", data["name"])), digits=int(data.get("digits", 4)),
        scale=float(data.get("scale", 1.0)), reduce=str(data.get("reduce", "mean")), std=bool(data.get("std", False)),
    )


def load_spec(path: str | Path) -> TableSpec:
    """Read and check a table spec file (format: module docstring and docs/EXPERIMENTS.md)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PublishError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PublishError(f"{path}: not valid TOML ({exc})") from None
    allowed = {"results", "sweep", "layout", "rows", "columns", "metric", "metrics", "labels", "published", "note", "filter"}
    unknown = set(data) - allowed
    if unknown:
        raise PublishError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in ("results", "sweep", "layout", "rows"):
        if key not in data:
            raise PublishError(f"{path}: missing {key!r}")
    layout = data["layout"]
    rows = (data["rows"],) if isinstance(data["rows"], str) else tuple(data["rows"])
    if layout == "grid":
        if not isinstance(data.get("columns"), str) or "metric" not in data or len(rows) != 1:
            raise PublishError(f"{path}: a grid has one 'rows' axis, one 'columns' axis and one [metric]")
        metrics: tuple[Metric, ...] = (_metric(data["metric"], f"{path} [metric]"),)
    elif layout == "list":
        if not data.get("metrics"):
            raise PublishError(f"{path}: a list table needs [[metrics]]")
        metrics = tuple(_metric(m, f"{path} [[metrics]] {i + 1}") for i, m in enumerate(data["metrics"]))
    else:
        raise PublishError(f"{path}: layout must be 'grid' or 'list', not {layout!r}")
    published = data.get("published") or {}
    return TableSpec(
        path=path, results=PROJECT_ROOT / data["results"], sweep=str(data["sweep"]), layout=layout, rows=rows,
        columns=data.get("columns"), metrics=metrics, labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        published={str(k): dict(v) for k, v in (published.get("values") or {}).items()},
        published_label=str(published.get("label", "paper")), note=str(data.get("note", "")),
        filters={str(k): [str(x) for x in v] for k, v in (data.get("filter") or {}).items()},
    )


# ---------------------------------------------------------------------------------------
# render


def _number(text: str) -> float | None:
    if text in ("", None):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _reduce(values: list[float], metric: Metric) -> str:
    if not values:
        return ""
    if metric.reduce == "min":
        v = min(values)
    elif metric.reduce == "max":
        v = max(values)
    else:
        v = statistics.fmean(values)
    text = f"{v * metric.scale:.{metric.digits}f}"
    if metric.std and metric.reduce == "mean" and len(values) > 1:
        text += f" ± {statistics.stdev(values) * metric.scale:.{metric.digits}f}"
    return text


def _order(rows: list[dict[str, str]], axis: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.get(axis, "") not in seen:
            seen.append(r.get(axis, ""))
    return seen


def _label(spec: TableSpec, value: str) -> str:
    return spec.labels.get(value, value)


def render_table(spec: TableSpec) -> str:
    """The Markdown table of ``spec`` from its committed results, with a provenance line."""
    rows = read_csv(spec.results / "runs.csv")
    for axis, keep in spec.filters.items():
        rows = [r for r in rows if r.get(axis) in keep]
    for axis in (*spec.rows, *([spec.columns] if spec.columns else [])):
        if rows and axis not in rows[0]:
            raise PublishError(f"{spec.path}: {axis!r} is not an axis of {spec.results / 'runs.csv'}")
    lines: list[str] = []
    if spec.layout == "grid":
        metric = spec.metrics[0]
        row_axis, col_axis = spec.rows[0], spec.columns or ""
        cols = _order(rows, col_axis)
        header = [row_axis]
        for c in cols:
            header.append(_label(spec, c))
            if any(c in v for v in spec.published.values()):
                header.append(f"{_label(spec, c)} ({spec.published_label})")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for rv in _order(rows, row_axis):
            cells = [_label(spec, rv)]
            for c in cols:
                vals = [_number(r[metric.name]) for r in rows if r.get(row_axis) == rv and r.get(col_axis) == c]
                cells.append(_reduce([v for v in vals if v is not None], metric))
                if any(c in v for v in spec.published.values()):
                    paper = spec.published.get(rv, {}).get(c)
                    cells.append("" if paper is None else str(paper))
            lines.append("| " + " | ".join(cells) + " |")
    else:
        keys: list[tuple[str, ...]] = []
        for r in rows:
            key = tuple(r.get(a, "") for a in spec.rows)
            if key not in keys:
                keys.append(key)
        header = [*spec.rows, "runs", *(m.label for m in spec.metrics)]
        paper_cols = sorted({k for v in spec.published.values() for k in v})
        header += [f"{c} ({spec.published_label})" for c in paper_cols]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for key in keys:
            group = [r for r in rows if tuple(r.get(a, "") for a in spec.rows) == key]
            cells = [_label(spec, k) for k in key] + [str(len(group))]
            for m in spec.metrics:
                vals = [_number(r[m.name]) for r in group]
                cells.append(_reduce([v for v in vals if v is not None], m))
            pub = spec.published.get("/".join(key), {})
            cells += ["" if pub.get(c) is None else str(pub.get(c)) for c in paper_cols]
            lines.append("| " + " | ".join(cells) + " |")
    prov = json.loads((spec.results / "provenance.json").read_text())
    lines.append("")
    lines.append(provenance_line(spec, prov))
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
    results = spec.results.relative_to(PROJECT_ROOT)
    out = f"runs/{results.name}"
    command = (
        f"`byzemu sweep {spec.sweep} --out {out}`, `byzemu publish collect {out} {results}`, "
        f"`byzemu publish render`"
    )
    wall = f"{prov.get('runs')} runs, {prov.get('wall_s', 0.0) / 60:.1f} min of run wall time"
    return f"<sub>Measured: {where}; {wall}. Regenerate: {command}.</sub>"


def render_page(text: str, *, page: Path | None = None) -> str:
    """``text`` with every ``byzemu:table`` block replaced by its rendering."""
    out: list[str] = []
    pos = 0
    for match in BEGIN.finditer(text):
        if match.start() < pos:
            continue
        end = text.find(END, match.end())
        if end < 0:
            raise PublishError(f"{page or 'page'}: {match.group(0)} has no {END}")
        spec = load_spec(PROJECT_ROOT / match.group("spec"))
        out.append(text[pos : match.end()])
        out.append("\n" + render_table(spec) + "\n")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def doc_pages(root: Path = PROJECT_ROOT) -> list[Path]:
    """The Markdown pages that may hold rendered tables: README.md, BENCHMARKS.md, docs/."""
    pages = [root / "README.md", root / "BENCHMARKS.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in pages if p.is_file()]


def render_docs(pages: Iterable[Path] | None = None, *, write: bool = True) -> list[Path]:
    """Re-render every table block in ``pages``; returns the pages whose text changed
    (written back when ``write``)."""
    changed = []
    for page in pages if pages is not None else doc_pages():
        text = page.read_text()
        new = render_page(text, page=page)
        if new != text:
            changed.append(page)
            if write:
                page.write_text(new)
    return changed


def specs_in_docs(pages: Iterable[Path] | None = None) -> list[str]:
    """The spec paths named by table blocks in ``pages`` (in order, with repeats)."""
    return [m.group("spec") for page in (pages if pages is not None else doc_pages()) for m in BEGIN.finditer(page.read_text())]


def regenerate_commands(spec: TableSpec) -> list[str]:
    """The shell commands that rerun, collect and render ``spec``'s table."""
    results = spec.results.relative_to(PROJECT_ROOT)
    out = f"runs/{results.name}"
    return [
        shlex.join(["byzemu", "sweep", spec.sweep, "--out", out]),
        shlex.join(["byzemu", "publish", "collect", out, str(results)]),
        "byzemu publish render",
    ]
