"""Table specs (``configs/tables/*.toml``): what a rendered table shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.analysis.published.common import CURVE_FIELDS, PROJECT_ROOT, RUN_FIELDS, PublishError
from protocol.config_text import extends_parent, read_toml


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
    #: "runs": rows in the order the collected runs first show them; "labels": in the
    #: order of each axis's values in [labels] (the first axis first)
    order: str = "runs"

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


def read_spec_file(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The spec file's table, with ``extends`` resolved.

    ``extends = "other.toml"`` (relative to this file) starts from that spec: a key given
    here replaces its (``[[metrics]]``, ``rows``, ``commands`` and ``[metric]``/``[figure]``
    whole), ``[labels]`` and ``[filter]`` are merged key by key, and ``[published]``'s
    ``label``/``digits`` replace while each row of ``[published.values]`` given here
    replaces that row whole (a row not given is inherited), so a table of the same cells
    in another setting restates only what differs.
    """
    data = read_toml(path, error=PublishError)
    parent_path = extends_parent(path, data, chain, "table spec", error=PublishError)
    if parent_path is None:
        return data
    merged = read_spec_file(parent_path, chain + (path.resolve(),))
    for key, value in data.items():
        if key in ("labels", "filter") and isinstance(value, dict):
            merged[key] = {**(merged.get(key) or {}), **value}
        elif key == "published" and isinstance(value, dict):
            parent_pub = dict(merged.get("published") or {})
            values = {**(parent_pub.get("values") or {}), **(value.get("values") or {})}
            merged[key] = {**parent_pub, **value, "values": values}
        else:
            merged[key] = value
    return merged


def load_spec(path: str | Path, *, root: Path = PROJECT_ROOT) -> TableSpec:
    """Read and check a table spec file (format: module docstring and docs/EXPERIMENTS.md);
    its ``results`` path is relative to ``root`` (the project's folder)."""
    path = Path(path)
    data = read_spec_file(path)
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
        "order",
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
    order = data.get("order", "runs")
    if order not in ("runs", "labels"):
        raise PublishError(f"{path}: order must be 'runs' (as the runs first show them) or 'labels', not {order!r}")
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
        order=order,
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


def row_key(row: dict[str, str], axes: Sequence[str]) -> tuple[str, ...]:
    return tuple(row.get(a, "") for a in axes)


def row_keys(rows: list[dict[str, str]], axes: Sequence[str]) -> list[tuple[str, ...]]:
    """The distinct values of ``axes`` in ``rows``, in order of first appearance."""
    keys: list[tuple[str, ...]] = []
    for r in rows:
        if row_key(r, axes) not in keys:
            keys.append(row_key(r, axes))
    return keys


def ordered_keys(spec: TableSpec, rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """The table's row keys: as the runs first show them, or (``order = "labels"``) sorted
    by the position of each axis value among the [labels] keys, the first axis first; a
    value without a label comes after the labelled ones, in the order the runs show it."""
    keys = row_keys(rows, spec.rows)
    if spec.order != "labels":
        return keys
    rank = {k: i for i, k in enumerate(spec.labels)}
    seen = {k: i for i, k in enumerate(keys)}
    return sorted(keys, key=lambda k: (*(rank.get(v, len(rank)) for v in k), seen[k]))


def first_seen(rows: list[dict[str, str]], axis: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.get(axis, "") not in seen:
            seen.append(r.get(axis, ""))
    return seen


def label(spec: TableSpec, value: str) -> str:
    """Display text of an axis value (``[labels]``), safe inside a Markdown table cell."""
    return spec.labels.get(value, value).replace("|", "\\|")
