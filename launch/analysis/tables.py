"""Results as tidy pandas DataFrames (pandas is the optional ``analysis`` extra:
``pip install -e ".[analysis]"``; nothing else in byzemu imports it).

Three tables over every results folder under a directory (one run, a sweep, a tree of them):

* :func:`peer_rounds` -- one row per (run, round, peer): ``role``, ``status``, the peer's
  metrics (``test_accuracy``, ``test_loss``, ``train_loss``, ``attack_success_rate`` when a
  backdoor-type attack runs, ...), its traffic (``traffic.sent_bytes``, ...) and timing
  (``timing.train_s``, ...) counters, and the round's ``elapsed_s`` and ``round_s``.
* :func:`rounds` -- one row per (run, round): the honest peers' statistics
  (``test_accuracy_mean``, ``_std``, ``_worst``, ``_n``, the same for the other metrics),
  the failed peers and the round's timing.
* :func:`runs` -- one row per run: the summary (``final_accuracy_mean``, ...,
  ``convergence_round``, ``wall_s``), ``finished``, and every config field flattened
  (``train.lr``, ``byzantine.attack``, ``defense.name``, ...).

Every table has a ``run`` column: the run's folder relative to the directory given
(``cell/rep0`` in a sweep). Only finished runs are included unless ``unfinished=True``.
Field meanings: ``docs/EXPERIMENTS.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.results import INTERRUPTED, SUMMARY, is_finished, read_rounds, run_dirs
from protocol.config import ConfigError

if TYPE_CHECKING:
    import pandas as pd

#: table name -> loader (the files ``byzemu export`` writes are named after them)
TABLES = ("peer_rounds", "rounds", "runs")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ConfigError('pandas is not installed: pip install -e ".[analysis]"') from None
    return pandas


def _runs(root: str | Path, unfinished: bool) -> Iterator[tuple[str, Path]]:
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    for d in run_dirs(root):
        if unfinished or is_finished(d):
            yield (str(d.relative_to(root)) if d != root else "."), d


def _scalars(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys; keep scalars, drop lists."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_scalars(value, dotted + "."))
        elif not isinstance(value, list):
            out[dotted] = value
    return out


def peer_rounds(root: str | Path, *, unfinished: bool = False) -> pd.DataFrame:
    """One row per (run, round, peer); see the module docstring."""
    rows = []
    for run, d in _runs(root, unfinished):
        for rec in read_rounds(d / "rounds.jsonl")[1]:
            for node, entry in rec["peers"].items():
                row: dict[str, Any] = {
                    "run": run, "round": rec["round"], "peer": int(node),
                    "role": entry.get("role"), "status": entry.get("status"),
                    "elapsed_s": rec.get("elapsed_s"), "round_s": rec.get("round_s"),
                }
                row.update(entry.get("metrics") or {})
                row.update(_scalars(entry.get("traffic") or {}, "traffic."))
                row.update(_scalars(entry.get("timing") or {}, "timing."))
                rows.append(row)
    return _pandas().DataFrame(rows, columns=_columns(rows, ["run", "round", "peer", "role", "status"]))


def rounds(root: str | Path, *, unfinished: bool = False) -> pd.DataFrame:
    """One row per (run, round): honest mean/std/worst/n of every metric; failed peers."""
    rows = []
    for run, d in _runs(root, unfinished):
        for rec in read_rounds(d / "rounds.jsonl")[1]:
            row: dict[str, Any] = {
                "run": run, "round": rec["round"], "elapsed_s": rec.get("elapsed_s"),
                "round_s": rec.get("round_s"), "failed_peers": len(rec.get("failed") or []),
            }
            for metric, stat in (rec.get("honest") or {}).items():
                row.update({f"{metric}_{k}": v for k, v in (stat or {}).items()})
            rows.append(row)
    return _pandas().DataFrame(rows, columns=_columns(rows, ["run", "round"]))


def runs(root: str | Path, *, unfinished: bool = False) -> pd.DataFrame:
    """One row per run: summary fields (statistics as ``final_accuracy_mean`` etc.),
    ``finished``, and the config's fields flattened (``train.lr``, ...)."""
    rows = []
    for run, d in _runs(root, unfinished):
        finished = is_finished(d)
        summary = _read(d / (SUMMARY if finished else INTERRUPTED))
        meta = _read(d / "config.json")
        row: dict[str, Any] = {"run": run, "finished": finished, "mode": meta.get("mode")}
        for key, value in summary.items():
            if isinstance(value, dict) and key.startswith(("final_", "best_")):
                row.update({f"{key}_{k}": v for k, v in value.items()})
            elif key == "failed_peers":
                row["failed_peers"] = len(value or [])
            elif not isinstance(value, (dict, list)):
                row[key] = value
        row.update(_scalars(meta.get("config") or {}))
        rows.append(row)
    return _pandas().DataFrame(rows, columns=_columns(rows, ["run", "finished", "mode"]))


def tables(root: str | Path, *, unfinished: bool = False) -> dict[str, pd.DataFrame]:
    """All three tables by name (:data:`TABLES`)."""
    return {
        "peer_rounds": peer_rounds(root, unfinished=unfinished),
        "rounds": rounds(root, unfinished=unfinished),
        "runs": runs(root, unfinished=unfinished),
    }


def export(root: str | Path, out: str | Path, *, fmt: str = "csv", unfinished: bool = False) -> list[Path]:
    """Write the three tables to ``out/<table>.csv`` (or ``.parquet``, which needs pyarrow);
    return the paths."""
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"format {fmt!r}: expected csv or parquet")
    found = tables(root, unfinished=unfinished)
    if found["runs"].empty:
        raise ConfigError(f"{root}: no finished runs (no summary.json of every round) under it")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError('--parquet needs pyarrow: pip install -e ".[analysis]"') from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in found.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _columns(rows: list[dict[str, Any]], first: list[str]) -> list[str]:
    """``first``, then every other key in order of first appearance."""
    return list(dict.fromkeys([*first, *(k for r in rows for k in r)]))
