"""Rendering: tables from committed results, the paper index, and the docs' table blocks."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from launch.analysis.published.common import PROJECT_ROOT, PublishError, number, read_csv
from launch.analysis.published.figures import render_curves
from launch.analysis.published.lines import minutes, provenance_line, regenerate_commands
from launch.analysis.published.specs import Metric, TableSpec, first_seen, label, load_spec, ordered_keys, row_key
from protocol import rundir
from protocol.rundir import read_json

#: a block's markers stand alone on their lines, at the start (an indented or inline
#: mention, e.g. in a code example, is text)
BEGIN = re.compile(r"^<!-- byzemu:table (?P<spec>\S+) -->$", re.MULTILINE)
END = "<!-- byzemu:end -->"
END_LINE = re.compile(r"^<!-- byzemu:end -->$", re.MULTILINE)


def reduced_value(values: list[float], metric: Metric) -> float:
    if metric.reduce == "min":
        return min(values)
    if metric.reduce == "max":
        return max(values)
    return statistics.fmean(values)


def reduce_text(values: list[float], metric: Metric) -> str:
    if not values:
        return ""
    v = reduced_value(values, metric)
    text = f"{v * metric.scale:.{metric.digits}f}"
    if metric.std and metric.reduce == "mean" and len(values) > 1:
        text += f" ± {statistics.pstdev(values) * metric.scale:.{metric.digits}f}"
    return text


def paper_text(spec: TableSpec, value: Any) -> str:
    """A published number as the paper prints it (``published.digits`` places if given)."""
    if value is None:
        return ""
    if spec.published_digits is not None and isinstance(value, (int, float)):
        return f"{value:.{spec.published_digits}f}"
    return str(value)


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
    for m in spec.metrics:
        if rows and m.name not in rows[0]:
            raise PublishError(
                f"{spec.path}: {spec.results / 'runs.csv'} has no column {m.name!r} (collected by an older "
                "byzemu); run `byzemu publish collect` again"
            )
    lines: list[str] = []
    if spec.layout == "grid":
        metric = spec.metrics[0]
        col_axis = spec.columns or ""
        cols = first_seen(rows, col_axis)
        header = list(spec.rows)
        for c in cols:
            header.append(label(spec, c))
            if any(c in v for v in spec.published.values()):
                header.append(f"{label(spec, c)} ({spec.published_label})")
        if spec.spread:
            header.append("largest difference")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for key in ordered_keys(spec, rows):
            pub = published_row(spec, key)
            cells = [label(spec, k) for k in key]
            found = []
            for c in cols:
                raw = [number(r[metric.name]) for r in rows if row_key(r, spec.rows) == key and r.get(col_axis) == c]
                vals = [v for v in raw if v is not None]
                cells.append(reduce_text(vals, metric))
                if vals:
                    found.append(reduced_value(vals, metric))
                if any(c in v for v in spec.published.values()):
                    cells.append(paper_text(spec, pub.get(c)))
            if spec.spread:
                cells.append(f"{(max(found) - min(found)) * metric.scale:.{metric.digits}f}" if len(found) > 1 else "")
            lines.append("| " + " | ".join(cells) + " |")
    else:
        keys = ordered_keys(spec, rows)
        header = [*spec.rows, "runs", *(m.label for m in spec.metrics)]
        paper_cols = list(dict.fromkeys(k for v in spec.published.values() for k in v))
        header += [f"{c} ({spec.published_label})" for c in paper_cols]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for key in keys:
            group = [r for r in rows if row_key(r, spec.rows) == key]
            cells = [label(spec, k) for k in key] + [str(len(group))]
            for m in spec.metrics:
                raw = [number(r[m.name]) for r in group]
                cells.append(reduce_text([v for v in raw if v is not None], m))
            pub = published_row(spec, key)
            cells += [paper_text(spec, pub.get(c)) for c in paper_cols]
            lines.append("| " + " | ".join(cells) + " |")
    prov = json.loads((spec.results / rundir.PROVENANCE).read_text())
    lines.append("")
    lines.append(provenance_line(spec, prov))
    return "\n".join(lines)


def published_key(spec: TableSpec, key: tuple[str, ...]) -> str | None:
    """Which ``[published.values]`` key stands beside a table row (None: none does): the
    row's axis values joined with ``/``, or its first axes alone, so that one published
    row stands beside every row that splits it further (by platform, say). A ``*`` in place
    of an axis value stands for any value of that axis (one paper number beside both
    datasets, say). The most specific key wins: the longest, then the one with the fewest
    ``*``, then the one whose ``*`` stand furthest right."""
    for n in range(len(key), 0, -1):
        prefix = key[:n]
        # bit i of a mask puts a * at axis i: fewest first, then the leftmost * furthest right
        masks = sorted(range(1 << n), key=lambda m: (m.bit_count(), [-i for i in range(n) if m >> i & 1]))
        for mask in masks:
            candidate = "/".join("*" if mask >> i & 1 else part for i, part in enumerate(prefix))
            if candidate in spec.published:
                return candidate
    return None


def published_row(spec: TableSpec, key: tuple[str, ...]) -> dict[str, Any]:
    """The paper's numbers for a table row (``published_key``), or none."""
    found = published_key(spec, key)
    return spec.published[found] if found is not None else {}


def sweep_runs(path: Path) -> int:
    """Runs of a sweep file: the product of its axes' lengths times its repeats (read from
    the file, ``extends`` resolved; no config is loaded)."""
    from launch.sweeps.sweepfile import read_sweep_file

    data = read_sweep_file(path)
    return math.prod(len(v) for v in (data.get("axes") or {}).values()) * int(data.get("repeats", 1))


def table_sweeps(spec: TableSpec) -> list[str]:
    """The sweep files whose runs a table renders: its ``sweep``, and, when its results
    are collected from several sweeps (``commands``), every ``byzemu sweep FILE`` among
    them, in order (a command may chain several with ``;``)."""
    found = [spec.sweep]
    for command in spec.commands:
        for part in command.split(";"):
            words = part.split()
            if words[:2] == ["byzemu", "sweep"] and len(words) > 2 and words[2] not in found:
                found.append(words[2])
    return found


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
            runs = sweep_runs(spec.root / sweep)
            tables = [
                t for t in entry.get("tables", []) if sweep in table_sweeps(load_spec(spec.root / t, root=spec.root))
            ]
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
                together = len(table_sweeps(table))
                measured = (
                    f"{prov.get('runs')} run(s)"
                    + (f" of {together} sweep files together" if together > 1 else "")
                    + f", {minutes(prov.get('wall_s', 0.0))} of run time on {cpu} "
                    f"({cores} cores); table `{Path(tables[0]).name}`"
                )
                command = "; ".join(f"`{c}`" for c in regenerate_commands(table))
            name = entry["name"] if first else ""
            lines.append(f"| {name} | `{sweep}` | {runs} | {measured} | {command} |")
            first = False
    lines.append("")
    lines.append("<sub>Runs counted from the shipped sweep files; times from each table's committed provenance.</sub>")
    return "\n".join(lines)


def render_page(text: str, *, page: Path | None = None, root: Path = PROJECT_ROOT, write: bool = False) -> str:
    """``text`` with every ``byzemu:table`` block replaced by its rendering (spec paths
    relative to ``root``)."""
    out: list[str] = []
    pos = 0
    for match in BEGIN.finditer(text):
        if match.start() < pos:
            continue
        found = END_LINE.search(text, match.end())
        end = found.start() if found else -1
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
