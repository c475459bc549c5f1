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
  (``train.lr``, ``byzantine.attack``, ``defense.name``, ``defense.params.tau``, ...) by
  :func:`protocol.rundir.flatten_config`, the rule ``report.csv``'s axis columns follow.

Every table has a ``run`` column: the run's folder relative to the directory given
(``cell/rep0`` in a sweep). Only finished runs are included unless ``unfinished=True``.
Field meanings: ``docs/EXPERIMENTS.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocol.config import ConfigError
from protocol.rundir import SUMMARY, RunDir, flatten_config, started_runs

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


def _runs(root: str | Path, unfinished: bool) -> Iterator[tuple[str, RunDir]]:
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    for d in started_runs(root):
        run = RunDir(d)
        if unfinished or run.is_finished():
            yield (str(d.relative_to(root)) if d != root else "."), run


def peer_rounds(root: str | Path, *, unfinished: bool = False) -> pd.DataFrame:
    """One row per (run, round, peer); see the module docstring."""
    rows = []
    for run, d in _runs(root, unfinished):
        for rec in d.records():
            for node, entry in rec["peers"].items():
                row: dict[str, Any] = {
                    "run": run,
                    "round": rec["round"],
                    "peer": int(node),
                    "role": entry.get("role"),
                    "status": entry.get("status"),
                    "elapsed_s": rec.get("elapsed_s"),
                    "round_s": rec.get("round_s"),
                }
                row.update(entry.get("metrics") or {})
                row.update(flatten_config(entry.get("traffic") or {}, "traffic"))
                row.update(flatten_config(entry.get("timing") or {}, "timing"))
                rows.append(row)
    return _pandas().DataFrame(rows, columns=_columns(rows, ["run", "round", "peer", "role", "status"]))


def rounds(root: str | Path, *, unfinished: bool = False) -> pd.DataFrame:
    """One row per (run, round): honest mean/std/worst/n of every metric; failed peers."""
    rows = []
    for run, d in _runs(root, unfinished):
        for rec in d.records():
            row: dict[str, Any] = {
                "run": run,
                "round": rec["round"],
                "elapsed_s": rec.get("elapsed_s"),
                "round_s": rec.get("round_s"),
                "failed_peers": len(rec.get("failed") or []),
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
        finished = d.is_finished()
        summary = (d.read_summary() if finished else d.read_interrupted()) or {}
        meta = d.read_config() or {}
        row: dict[str, Any] = {"run": run, "finished": finished, "mode": meta.get("mode")}
        for key, value in summary.items():
            if isinstance(value, dict) and key.startswith(("final_", "best_")):
                row.update({f"{key}_{k}": v for k, v in value.items()})
            elif key == "failed_peers":
                row["failed_peers"] = len(value or [])
            elif not isinstance(value, (dict, list)):
                row[key] = value
        row.update(flatten_config(meta.get("config") or {}))
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
        raise ConfigError(f"{root}: no finished runs (no {SUMMARY} of every round) under it")
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


def _columns(rows: list[dict[str, Any]], first: list[str]) -> list[str]:
    """``first``, then every other key in order of first appearance."""
    return list(dict.fromkeys([*first, *(k for r in rows for k in r)]))
