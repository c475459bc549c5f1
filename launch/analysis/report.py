"""Report over a folder of runs: one row per configuration, plots with matplotlib.

Reads only the results folders under DIR (every folder holding ``config.json``): finished
runs (``summary.json`` of every round) make the table; unfinished ones (interrupted,
killed) are listed under the table and left out of it. Runs whose resolved configs are
equal except for ``seed`` and ``runtime.*``, made in the same mode (``reference`` or
multi-process), are repeats of one configuration (a *cell*); the fields that differ
between cells (the mode included) are the report's axis columns. Column definitions are in
``docs/EXPERIMENTS.md``.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.results import is_finished, run_dirs, unfinished_reason
from launch.sweeps.sweep import _flatten, cell_name
from protocol.config import ConfigError

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
    """Every finished run under ``root`` (:func:`coordinator.results.is_finished`); a
    ConfigError if there is none. :func:`unfinished_runs` lists the others."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    runs = []
    for d in run_dirs(root):
        if not is_finished(d):
            continue
        try:
            summary = json.loads((d / "summary.json").read_text())
            meta = json.loads((d / "config.json").read_text())
            config = meta["config"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{d}: unreadable results folder ({exc})") from None
        rounds = []
        if (d / "rounds.jsonl").is_file():
            for line in (d / "rounds.jsonl").read_text().splitlines():
                if line.strip():
                    rounds.append(json.loads(line))
        topo = json.loads((d / "topology.json").read_text()) if (d / "topology.json").is_file() else None
        flat = {"mode": meta.get("mode", summary.get("mode"))}
        flat.update((k, v) for k, v in _flatten(config).items() if not _ignored(k))
        runs.append(RunResult(d, flat, summary, rounds, topo))
    if not runs:
        left = "; ".join(f"{d.relative_to(root)}: {why}" for d, why in unfinished_runs(root))
        raise ConfigError(
            f"{root}: no finished runs (no summary.json of every round) under it"
            + (f"; unfinished: {left}" if left else "")
        )
    return runs


def unfinished_runs(root: str | Path) -> list[tuple[Path, str]]:
    """(folder, why) for every results folder under ``root`` whose run did not finish."""
    out = []
    for d in run_dirs(Path(root)):
        why = unfinished_reason(d)
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

    Axis columns come in ``axis_order`` first (a sweep's axes), then in config order.
    """
    groups: dict[str, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run.flat, sort_keys=True, default=str), []).append(run)
    firsts = [g[0].flat for g in groups.values()]
    keys = list(dict.fromkeys([*axis_order, *(k for f in firsts for k in f)]))
    axes = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in firsts}) > 1]
    cells = []
    for members in groups.values():
        values = {k: members[0].flat.get(k) for k in axes}
        cells.append(CellResult(cell_name(values) if values else "all", values, members))
    return axes, cells


def _sweep_order(root: Path, runs: list[RunResult]) -> list[str]:
    """With a ``sweep.json`` in ``root``: put runs in grid order (in place), return its axes.

    Only the order of rows and columns comes from it; the values come from the runs.
    """
    try:
        grid = json.loads((root / "sweep.json").read_text())
        order = {str((root / r["dir"]).resolve()): i for i, c in enumerate(grid["cells"]) for r in c["runs"]}
        axes = list(grid.get("axes", {}))
    except (OSError, ValueError, KeyError, TypeError):
        return []
    runs.sort(key=lambda r: order.get(str(r.dir.resolve()), len(order)))
    return axes


def _ms(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and population std (0 for one value) of the values; (None, None) if none."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def cell_row(cell: CellResult) -> dict[str, Any]:
    accs = [r.summary["final_accuracy"]["mean"] for r in cell.runs if r.summary.get("final_accuracy")]
    worst = [r.summary["final_accuracy"]["worst"] for r in cell.runs if r.summary.get("final_accuracy")]
    asrs = [
        r.summary["final_attack_success_rate"]["mean"]
        for r in cell.runs
        if r.summary.get("final_attack_success_rate")
    ]
    conv = [r.summary["convergence_round"] for r in cell.runs if r.summary.get("convergence_round") is not None]
    acc_mean, acc_std = _ms(accs)
    asr_mean, asr_std = _ms(asrs)
    return {
        "cell": cell.name,
        **cell.values,
        "runs": len(cell.runs),
        "accuracy_mean": acc_mean,
        "accuracy_std": acc_std,
        "accuracy_worst": min(worst) if worst else None,
        "asr_mean": asr_mean,
        "asr_std": asr_std,
        "convergence_round_mean": statistics.fmean(conv) if conv else None,
        "failed_peers": sum(len(r.summary.get("failed_peers") or []) for r in cell.runs),
        "wall_s_mean": statistics.fmean(r.summary["wall_s"] for r in cell.runs),
    }


def _f(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _pm(mean: float | None, std: float | None) -> str:
    return "" if mean is None else f"{mean:.4f} ± {std:.4f}"


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_report(root: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write report.md, report.csv and PNG plots to ``out`` (default ``root``)."""
    runs = read_runs(root)
    axes, cells = group_cells(runs, _sweep_order(Path(root), runs))
    out = Path(out) if out is not None else Path(root)
    out.mkdir(parents=True, exist_ok=True)
    rows = [cell_row(c) for c in cells]

    csv_cols = ["cell", *axes, "runs", "accuracy_mean", "accuracy_std", "accuracy_worst",
                "asr_mean", "asr_std", "convergence_round_mean", "failed_peers", "wall_s_mean"]
    with open(out / "report.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=csv_cols)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else _show(row[k]) if k in axes else row[k]) for k in csv_cols})

    from launch.analysis.plots import all_figures

    plots = all_figures(cells, axes, out)

    head = [*(axes or ["config"]), "runs", "honest accuracy (mean ± std)", "worst honest accuracy",
            "ASR (mean ± std)", "convergence round (mean)", "failed peers", "wall s (mean)"]
    lines = [
        f"# byzemu report: {Path(root)}",
        "",
        f"{len(runs)} runs in {len(cells)} configurations. Column definitions: docs/EXPERIMENTS.md.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        label = [_show(row[a]) for a in axes] if axes else [row["cell"]]
        lines.append("| " + " | ".join([
            *label, str(row["runs"]), _pm(row["accuracy_mean"], row["accuracy_std"]),
            _f(row["accuracy_worst"]), _pm(row["asr_mean"], row["asr_std"]),
            _f(row["convergence_round_mean"], 1), str(row["failed_peers"]), _f(row["wall_s_mean"], 1),
        ]) + " |")
    unfinished = unfinished_runs(root)
    if unfinished:
        lines += ["", f"**{len(unfinished)} unfinished run(s), left out of the table** (rerun the sweep, or "
                  "`byzemu launch --resume DIR`, to finish them):", ""]
        lines += [f"- `{d.relative_to(Path(root))}`: {why}" for d, why in unfinished]
    lines += ["", "## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "rows": rows, "axes": axes, "plots": [str(p) for p in plots], "out": str(out),
        "unfinished": [(str(d.relative_to(Path(root))), why) for d, why in unfinished],
    }
