"""Report over a folder of runs: one row per configuration, plots with matplotlib.

The runs come from :mod:`launch.analysis.runs` (finished runs make the table; unfinished
ones, interrupted or killed, are listed under it and left out). Repeats of one
configuration make a *cell*, one row; the fields that differ between cells (the mode
included) are the report's axis columns, named as :func:`protocol.rundir.flatten_config`
names them (``defense.params.tau``). Column definitions are in ``docs/EXPERIMENTS.md``.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

from launch.analysis.plots import all_figures
from launch.analysis.runs import CellResult, group_cells, read_runs, sweep_order, unfinished_runs
from protocol.rundir import REPORT_CSV, REPORT_MD


def _ms(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and population std (0 for one value) of the values; (None, None) if none."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def cell_row(cell: CellResult) -> dict[str, Any]:
    accs = [r.summary["final_accuracy"]["mean"] for r in cell.runs if r.summary.get("final_accuracy")]
    worst = [r.summary["final_accuracy"]["worst"] for r in cell.runs if r.summary.get("final_accuracy")]
    asrs = [
        r.summary["final_attack_success_rate"]["mean"] for r in cell.runs if r.summary.get("final_attack_success_rate")
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


def write_report(root: str | Path, out: str | Path | None = None, fmt: str = "png") -> dict[str, Any]:
    """Write report.md, report.csv and the plots (as ``fmt``: png, pdf or svg) to ``out``
    (default ``root``)."""
    runs = read_runs(root)
    axes, cells = group_cells(runs, sweep_order(Path(root), runs))
    out = Path(out) if out is not None else Path(root)
    out.mkdir(parents=True, exist_ok=True)
    rows = [cell_row(c) for c in cells]

    csv_cols = [
        "cell",
        *axes,
        "runs",
        "accuracy_mean",
        "accuracy_std",
        "accuracy_worst",
        "asr_mean",
        "asr_std",
        "convergence_round_mean",
        "failed_peers",
        "wall_s_mean",
    ]
    with open(out / REPORT_CSV, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=csv_cols)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if row.get(k) is None else _show(row[k]) if k in axes else row[k]) for k in csv_cols}
            )

    plots = all_figures(cells, axes, out, fmt)

    head = [
        *(axes or ["config"]),
        "runs",
        "honest accuracy (mean ± std)",
        "worst honest accuracy",
        "ASR (mean ± std)",
        "convergence round (mean)",
        "failed peers",
        "wall s (mean)",
    ]
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
        lines.append(
            "| "
            + " | ".join(
                [
                    *label,
                    str(row["runs"]),
                    _pm(row["accuracy_mean"], row["accuracy_std"]),
                    _f(row["accuracy_worst"]),
                    _pm(row["asr_mean"], row["asr_std"]),
                    _f(row["convergence_round_mean"], 1),
                    str(row["failed_peers"]),
                    _f(row["wall_s_mean"], 1),
                ]
            )
            + " |"
        )
    unfinished = unfinished_runs(root)
    if unfinished:
        lines += [
            "",
            f"**{len(unfinished)} unfinished run(s), left out of the table** (rerun the sweep, or "
            "`byzemu launch --resume DIR`, to finish them):",
            "",
        ]
        lines += [f"- `{d.relative_to(Path(root))}`: {why}" for d, why in unfinished]
    lines += ["", "## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    (out / REPORT_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "rows": rows,
        "axes": axes,
        "plots": [str(p) for p in plots],
        "out": str(out),
        "unfinished": [(str(d.relative_to(Path(root))), why) for d, why in unfinished],
    }
