"""The runs under a folder, read back for analysis and grouped into configurations.

Reads only the results folders under DIR (:func:`protocol.rundir.started_runs`): finished
runs (:meth:`protocol.rundir.RunDir.is_finished`) are read in full; unfinished ones
(interrupted, killed) are listed with why. Runs whose resolved configs are equal except
for ``seed`` and ``runtime.*``, made in the same mode (``reference`` or multi-process), are
repeats of one configuration (a *cell*); the fields that differ between cells (the mode
included) are its axes, named as :func:`protocol.rundir.flatten_config` names them
(``defense.params.tau``). The report (:mod:`launch.analysis.report`) and its figures
(:mod:`launch.analysis.plots`) sit on this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.sweeps.naming import cell_name
from protocol.config import ConfigError
from protocol.rundir import SUMMARY, SWEEP, RunDir, flatten_config, read_json, started_runs

#: fields that do not define a configuration (repeats differ in them)
IGNORED = ("seed",)


@dataclass
class RunResult:
    dir: Path
    flat: dict[str, Any]
    summary: dict[str, Any]
    rounds: list[dict[str, Any]]
    topology: dict[str, Any] | None


@dataclass
class CellResult:
    name: str
    values: dict[str, Any]
    runs: list[RunResult] = field(default_factory=list)


def read_runs(root: str | Path) -> list[RunResult]:
    """Every finished run under ``root`` (:meth:`protocol.rundir.RunDir.is_finished`); a
    ConfigError if there is none. :func:`unfinished_runs` lists the others."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    runs = []
    for d in started_runs(root):
        run = RunDir(d)
        if not run.is_finished():
            continue
        summary, meta = run.read_summary(), run.read_config()
        if summary is None or meta is None or not isinstance(meta.get("config"), dict):
            raise ConfigError(f"{d}: unreadable results folder ({run.config_json} or {run.summary})")
        flat = {"mode": meta.get("mode", summary.get("mode"))}
        flat.update((k, v) for k, v in flatten_config(meta["config"]).items() if not _ignored(k))
        runs.append(RunResult(d, flat, summary, run.records(), run.read_topology()))
    if not runs:
        left = "; ".join(f"{d.relative_to(root)}: {why}" for d, why in unfinished_runs(root))
        raise ConfigError(
            f"{root}: no finished runs (no {SUMMARY} of every round) under it"
            + (f"; unfinished: {left}" if left else "")
        )
    return runs


def unfinished_runs(root: str | Path) -> list[tuple[Path, str]]:
    """(folder, why) for every results folder under ``root`` whose run did not finish."""
    out = []
    for d in started_runs(Path(root)):
        why = RunDir(d).unfinished_reason()
        if why is not None:
            out.append((d, why))
    return out


def _ignored(key: str) -> bool:
    """Fields that do not define a configuration: ``seed`` (repeats differ in it) and
    ``runtime.*`` (deadlines, ports, checkpoints: how a run ran, not what it computed)."""
    return key in IGNORED or key.startswith("runtime.")


def group_cells(
    runs: list[RunResult], axis_order: list[str] | tuple[str, ...] = ()
) -> tuple[list[str], list[CellResult]]:
    """Group runs into cells; return (axis fields, cells) in order of first appearance.

    Axis columns come in ``axis_order`` first (a sweep's axes; an axis over a whole table
    such as ``defense.params`` stands for its dotted fields), then in config order.
    """
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run.flat, sort_keys=True, default=str), []).append(run)
    firsts = [g[0].flat for g in groups.values()]
    config_keys = list(dict.fromkeys(k for f in firsts for k in f))
    ordered = [k for a in axis_order for k in [a, *(c for c in config_keys if c.startswith(f"{a}."))]]
    keys = list(dict.fromkeys([*ordered, *config_keys]))
    axes = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in firsts}) > 1]
    cells = []
    for members in groups.values():
        values = {k: members[0].flat.get(k) for k in axes}
        cells.append(CellResult(cell_name(values) if values else "all", values, members))
    return axes, cells


def sweep_order(root: Path, runs: list[RunResult]) -> list[str]:
    """With a ``sweep.json`` in ``root``: put runs in grid order (in place), return its axes.

    Only the order of rows and columns comes from it; the values come from the runs.
    """
    grid = read_json(root / SWEEP)
    if grid is None:
        return []
    try:
        order = {str((root / r["dir"]).resolve()): i for i, c in enumerate(grid["cells"]) for r in c["runs"]}
        axes = list(grid.get("axes", {}))
    except (KeyError, TypeError):
        return []
    runs.sort(key=lambda r: order.get(str(r.dir.resolve()), len(order)))
    return axes
