"""``byzemu publish collect``: a sweep's finished runs -> ``results/NAME/runs.csv``,
``curves.csv`` and ``provenance.json``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from launch.analysis.published.common import (
    CONFIG_FIELDS,
    CURVE_FIELDS,
    PROJECT_ROOT,
    RUN_FIELDS,
    PublishError,
    read_csv,
)
from protocol import provenance as prov_mod
from protocol import rundir
from protocol.rundir import RunDir, read_json


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


def _peers_of(records: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """Every peer-round entry whose role is ``role`` or starts with ``role:``."""
    return [p for r in records for p in r.get("peers", {}).values() if str(p.get("role", "")).split(":")[0] == role]


def cpu_per_round(records: list[dict[str, Any]], role: str) -> float | None:
    """Mean CPU seconds of one peer-round (the peers' own ``timing.round_cpu_s``: training,
    crafting, aggregation, evaluation) over every peer whose record's role is ``role`` or
    starts with ``role:`` ("honest"; "byzantine" covers "byzantine:ATTACK") and every round;
    None when no such peer reported."""
    values = [
        float(p["timing"]["round_cpu_s"])
        for p in _peers_of(records, role)
        if isinstance(p.get("timing", {}).get("round_cpu_s"), (int, float))
    ]
    return sum(values) / len(values) if values else None


def _round_times(records: list[dict[str, Any]]) -> list[float]:
    """Each round's wall time (the coordinator's ``round_s``: ``round_start`` to the last
    ``round_done``)."""
    return [float(r["round_s"]) for r in records if isinstance(r.get("round_s"), (int, float))]


def round_s_median(records: list[dict[str, Any]]) -> float | None:
    """Median round wall time over the run's rounds; None without rounds."""
    values = _round_times(records)
    return statistics.median(values) if values else None


def round_s_min(records: list[dict[str, Any]]) -> float | None:
    """The fastest round's wall time: on a loaded machine the round least disturbed by
    other work, so the closest to what the run itself costs; None without rounds."""
    values = _round_times(records)
    return min(values) if values else None


def candidates_mean(records: list[dict[str, Any]]) -> float | None:
    """Mean number of received payloads per chunk index that an honest peer aggregated
    (its ``metrics.candidates``), over honest peers, rounds and chunk indices; None when no
    honest peer reported candidates."""
    values = [
        int(c)
        for p in _peers_of(records, "honest")
        for c in (p.get("metrics", {}).get("candidates") or [])
        if isinstance(c, int)
    ]
    return sum(values) / len(values) if values else None


def late_per_round(records: list[dict[str, Any]]) -> float | None:
    """Chunk messages that honest peers dropped as late (``traffic.late_from``, summed over
    senders and honest peers), per round; None without rounds."""
    if not records:
        return None
    late = sum(
        int(v) for p in _peers_of(records, "honest") for v in (p.get("traffic", {}).get("late_from") or {}).values()
    )
    return late / len(records)


def all_peers_accuracy(evals: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """(mean, worst) test accuracy over every peer that reported one in the last evaluation
    round: the honest peers and, with ``eval.byzantine = true``, the Byzantine ones (a
    paper that averages every node's accuracy reports this mean). (None, None) without."""
    if not evals:
        return None, None
    peers = evals[-1].get("peers") or {}
    values = [
        float(p["metrics"]["test_accuracy"])
        for p in peers.values()
        if isinstance(p, dict) and isinstance(p.get("metrics"), dict) and "test_accuracy" in p["metrics"]
    ]
    if not values:
        return None, None
    return sum(values) / len(values), min(values)


def _field(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def run_row(
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
    all_mean, all_worst = all_peers_accuracy(evals)
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
        "byz_cpu_round_s": cpu_per_round(records, "byzantine"),
        "honest_cpu_round_s": cpu_per_round(records, "honest"),
        "round_s_median": round_s_median(records),
        "round_s_min": round_s_min(records),
        "candidates_mean": candidates_mean(records),
        "late_per_round": late_per_round(records),
        "acc_all_mean": all_mean,
        "acc_all_worst": all_worst,
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


def _one_run(prov: dict[str, Any]) -> dict[str, Any]:
    """One run's provenance as a combined record (:func:`combine_provenance`) of one run."""
    code = prov.get("byzemu") or {}
    commit = (code.get("commit") or "unknown") + ("+dirty" if code.get("dirty") else "")
    return {
        "runs": 1,
        "platforms": {prov_mod.platform_key(prov): 1},
        "commits": {commit: 1},
        "started": prov.get("started") or None,
        "finished": prov.get("finished") or None,
        "wall_s": float(prov.get("wall_s") or 0.0),
        "example": prov,
    }


def combine_provenance(provs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The provenance of a set of runs: every platform and commit that made them, their
    span in time and added wall time, and the first run's full record."""
    combined: dict[str, Any] = {
        "runs": 0,
        "platforms": {},
        "commits": {},
        "started": None,
        "finished": None,
        "wall_s": 0,
        "example": {},
    }
    for prov in provs:
        combined = merge_provenance(combined, _one_run(prov))
    return combined


def is_results_folder(root: Path) -> bool:
    """A folder an earlier ``collect`` wrote (runs.csv beside provenance.json), not a sweep
    or run folder."""
    return (root / "runs.csv").is_file() and (root / rundir.PROVENANCE).is_file() and not (root / rundir.SWEEP).exists()


def _run_id(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """What names one run across folders: cell, repeat, seed and the final models' digest."""
    return (str(row.get("cell")), str(row.get("rep")), str(row.get("seed")), str(row.get("digest")))


def merge_provenance(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two combined provenance records (:func:`combine_provenance`) as one: counts added,
    the time span joined, the first record's example kept."""
    if not first.get("runs"):
        return second
    if not second.get("runs"):
        return first

    def added(key: str) -> dict[str, int]:
        out = dict(first.get(key) or {})
        for k, n in (second.get(key) or {}).items():
            out[k] = out.get(k, 0) + int(n)
        return out

    starts = [t for t in (first.get("started"), second.get("started")) if t]
    ends = [t for t in (first.get("finished"), second.get("finished")) if t]
    return {
        "runs": int(first["runs"]) + int(second["runs"]),
        "platforms": added("platforms"),
        "commits": added("commits"),
        "started": min(starts) if starts else None,
        "finished": max(ends) if ends else None,
        "wall_s": float(first.get("wall_s") or 0.0) + float(second.get("wall_s") or 0.0),
        "example": first.get("example") or second.get("example") or {},
    }


def collect(
    root: str | Path | Sequence[str | Path], dest: str | Path, *, sweep_file: str | None = None
) -> dict[str, Any]:
    """Write ``dest``/runs.csv, curves.csv and provenance.json from the finished runs under
    ``root`` (a sweep folder or one run folder, or several of them: their runs one after
    another, e.g. the same sweep on two platforms); returns the combined provenance.

    A results folder among the inputs (one an earlier ``collect`` wrote, such as ``dest``
    itself) is carried forward: its rows, curves and provenance come first, unchanged, so
    runs made elsewhere or earlier join a table without their run folders. A run that is in
    two inputs (same cell, repeat, seed and digest) is refused rather than counted twice."""
    roots = [Path(r) for r in ([root] if isinstance(root, (str, Path)) else root)]
    dest = Path(dest)
    carried = [r for r in roots if is_results_folder(r)]
    runs = [r for one in roots if one not in carried for r in _runs_of(one)]
    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    provs: list[dict[str, Any]] = []
    axes: list[str] = []
    previous: dict[str, Any] = {}
    recorded: list[str | None] = []  # the sweep each carried folder records
    for folder in carried:
        prov = read_json(folder / rundir.PROVENANCE) or {}
        previous = merge_provenance(previous, prov)
        recorded.append(prov.get("sweep"))
        axes.extend(k for k in prov.get("axes") or [] if k not in axes)
        rows.extend(read_csv(folder / "runs.csv"))
        curves.extend(read_csv(folder / "curves.csv"))
    for run_dir, cell, values, rep in runs:
        row, curve, prov = run_row(run_dir, cell, {k: _cell_value(v) for k, v in values.items()}, rep)
        axes.extend(k for k in values if k not in axes and k not in CONFIG_FIELDS)
        rows.append(row)
        curves.extend(curve)
        provs.append(prov)
    twice = [k for k, n in Counter(_run_id(row) for row in rows).items() if n > 1]
    if twice:
        twice_cell, twice_rep, _, _ = twice[0]
        raise PublishError(
            f"run {twice_cell}/rep{twice_rep} is in two of the folders given ({len(twice)} such run(s)); "
            "give each run once (a results folder already holds the runs collected into it)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    _write_csv(dest / "runs.csv", [*RUN_FIELDS, *CONFIG_FIELDS, *axes], rows)
    _write_csv(dest / "curves.csv", list(CURVE_FIELDS), curves)
    combined = merge_provenance(previous, combine_provenance(provs))
    first = roots[0]
    sweep = read_json(first / rundir.SWEEP) or {}
    from_first = recorded[0] if carried and first == carried[0] else None
    combined["sweep"] = sweep_file or from_first or _project_relative(sweep.get("sweep_file"))
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


def csv_text(value: Any) -> Any:
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
        writer.writerow({k: csv_text(row.get(k)) for k in fields})
    path.write_text(buf.getvalue())
