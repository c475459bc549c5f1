"""The run folder: one owner for its file names, paths, state, readers and writer.

Every results folder that byzemu writes (one run) looks like this (docs/RESULTS.md
has every field)::

    RUN_DIR/config.toml          resolved config (reload it to repeat the run)
    RUN_DIR/config.json          same, as JSON, with the mode the run ran in
    RUN_DIR/topology.json        graph, roles, shard sizes, each peer's pid/host/address
    RUN_DIR/rounds.jsonl         one JSON line per round, appended and flushed as it ends
    RUN_DIR/deliveries.jsonl     the delivery log: per round, the senders each peer's inbox
                                 reads found (byzemu reference --replay reproduces the run)
    RUN_DIR/summary.json         final/best honest accuracy, convergence, time; written only
                                 when every round ran (the run is *finished*)
    RUN_DIR/interrupted.json     instead of summary.json when the run stopped early
    RUN_DIR/provenance.json      commit, software, machine and times (protocol/provenance.py)
    RUN_DIR/checkpoints/         the peers' checkpoints (``peer/checkpoint.py`` owns inside)
    RUN_DIR/coordinator.address  where the coordinator listens (Slurm jobs)
    RUN_DIR/coordinator.key      the coordinator's CURVE public key, when CURVE is on
    RUN_DIR/slurm.json           the Slurm job a submitted run went to
    RUN_DIR/job.sbatch           the batch script of a run submitted to Slurm

A sweep folder holds ``sweep.json`` (the grid) and one run folder per run; ``byzemu
report`` writes ``report.md`` and ``report.csv`` beside them.

No other module spells these names (``tests/test_layers.py`` greps for them): it asks
:class:`RunDir` for the path, and reads and writes through :func:`read_json`,
:func:`write_json` and :func:`read_rounds`. :meth:`RunDir.unfinished_reason` is the one
test of "is this run finished" (sweep resume, report, export, status and the Slurm
launcher all ask it). Two discoveries, with different questions:
:func:`started_runs` (every folder where a run began writing results: ``config.json``)
and :func:`prepared_runs` (every folder prepared for a run, ``config.toml``, which a
Slurm-submitted run has before its job starts).

:func:`flatten_config` is the one rule that turns a nested config into columns
(``report.csv``'s axes, the ``runs`` DataFrame): nested tables become dotted keys all the
way down, ``params`` tables included (``defense.params.tau``), and leaf values (lists
too) are kept as they are.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_TOML = "config.toml"
CONFIG_JSON = "config.json"
TOPOLOGY = "topology.json"
ROUNDS = "rounds.jsonl"
DELIVERIES = "deliveries.jsonl"
SUMMARY = "summary.json"
INTERRUPTED = "interrupted.json"
PROVENANCE = "provenance.json"
CHECKPOINTS = "checkpoints"
COORDINATOR_ADDRESS = "coordinator.address"
COORDINATOR_KEY = "coordinator.key"
SLURM_JOB = "slurm.json"
JOB_SCRIPT = "job.sbatch"
SWEEP = "sweep.json"
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"

#: every file name above (the test that no other module spells them reads this)
FILE_NAMES = (
    CONFIG_TOML,
    CONFIG_JSON,
    TOPOLOGY,
    ROUNDS,
    DELIVERIES,
    SUMMARY,
    INTERRUPTED,
    CHECKPOINTS,
    COORDINATOR_ADDRESS,
    COORDINATOR_KEY,
    SLURM_JOB,
    JOB_SCRIPT,
    SWEEP,
    REPORT_MD,
    REPORT_CSV,
)


def clean(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None, so files stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` as indented strict JSON, atomically (temporary file, rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def round_line(record: Mapping[str, Any]) -> bytes:
    """One line of ``rounds.jsonl``: ``record`` as strict JSON (non-finite floats as null)
    and a newline (the writer appends it in one write, so a killed writer leaves whole
    lines; :func:`read_rounds` reads them back)."""
    return (json.dumps(clean(record), allow_nan=False) + "\n").encode()


def write_all(file: io.RawIOBase, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered binary ``file`` (``write`` may take less than
    it was given): an appended line reaches the OS whole, so a crash leaves whole lines."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written or 0 :]


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_rounds(path: Path) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The lines of rounds.jsonl for rounds 1, 2, ... as long as each is a whole JSON
    record of the next round (a line torn by a crash, and anything after it, is left out)."""
    lines: list[bytes] = []
    records: list[dict[str, Any]] = []
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return lines, records
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            break
        if not isinstance(record, dict) or record.get("round") != len(records) + 1:
            break
        lines.append(line)
        records.append(record)
    return lines, records


#: a delivery log read back: {round: {node: {read label: [senders]}}}
Deliveries = dict[int, dict[int, dict[str, list[int]]]]


def read_deliveries(path: Path) -> Deliveries:
    """The delivery log at ``path`` (one JSON line per round: ``{"round": t, "peers":
    {"i": {label: [senders]}}}``); a later line of a round replaces an earlier one (a
    resumed run writes its rounds again), a torn last line is left out."""
    out: Deliveries = {}
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return out
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("round"), int):
            peers = record.get("peers") or {}
            out[record["round"]] = {int(node): dict(reads) for node, reads in peers.items()}
    return out


def flatten_config(data: Mapping[str, Any], prefix: str = "", *, whole: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"train": {"lr": 0.1}, "defense": {"params": {"tau": 1}}}`` ->
    ``{"train.lr": 0.1, "defense.params.tau": 1}``: nested tables become dotted keys, leaf
    values (lists included) stay as they are. A table whose own key is in ``whole`` is
    kept as one value (a sweep's ``[set]`` keeps ``params`` whole, so that it replaces
    the table rather than merging into it, as ``--set defense.params={...}`` does)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and key not in whole:
            out.update(flatten_config(value, dotted, whole=whole))
        else:
            out[dotted] = value
    return out


class RunDir:
    """One run's results folder: its paths, its state, and its files read back."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def config_toml(self) -> Path:
        return self.path / CONFIG_TOML

    @property
    def config_json(self) -> Path:
        return self.path / CONFIG_JSON

    @property
    def topology(self) -> Path:
        return self.path / TOPOLOGY

    @property
    def rounds(self) -> Path:
        return self.path / ROUNDS

    @property
    def deliveries(self) -> Path:
        return self.path / DELIVERIES

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def interrupted(self) -> Path:
        return self.path / INTERRUPTED

    @property
    def provenance(self) -> Path:
        return self.path / PROVENANCE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def coordinator_address(self) -> Path:
        return self.path / COORDINATOR_ADDRESS

    @property
    def coordinator_key(self) -> Path:
        return self.path / COORDINATOR_KEY

    @property
    def slurm_job(self) -> Path:
        return self.path / SLURM_JOB

    @property
    def job_script(self) -> Path:
        return self.path / JOB_SCRIPT

    # ------------------------------------------------------------------ readers
    def read_config(self) -> dict[str, Any] | None:
        """``config.json``: ``{"mode": ..., "config": {...}}``; None if unreadable."""
        return read_json(self.config_json)

    def read_summary(self) -> dict[str, Any] | None:
        return read_json(self.summary)

    def read_interrupted(self) -> dict[str, Any] | None:
        return read_json(self.interrupted)

    def read_topology(self) -> dict[str, Any] | None:
        return read_json(self.topology)

    def read_provenance(self) -> dict[str, Any] | None:
        """``provenance.json`` (:mod:`protocol.provenance`); None if absent or unreadable."""
        return read_json(self.provenance)

    def records(self) -> list[dict[str, Any]]:
        """The whole records of ``rounds.jsonl``, round 1 on (:func:`read_rounds`)."""
        return read_rounds(self.rounds)[1]

    # ------------------------------------------------------------------ state
    def unfinished_reason(self) -> str | None:
        """None if the run is finished (its ``summary.json`` records every round);
        otherwise why not, in a few words. The one place that decides it."""
        summary = self.read_summary()
        if summary is not None:
            done, total = summary.get("rounds_completed"), summary.get("rounds")
            if isinstance(done, int) and isinstance(total, int) and done >= total:
                return None
            return f"its {SUMMARY} records {done} of {total} rounds (left by an interrupted run of an older byzemu)"
        state = self.read_interrupted()
        if state is not None:
            done, total, why = state.get("rounds_completed"), state.get("rounds"), state.get("reason")
            return f"interrupted at round {done} of {total} ({why})"
        if self.rounds.is_file():
            return f"stopped after round {len(self.records())} without a summary (killed, or still running)"
        return "no results in it"

    def is_finished(self) -> bool:
        """Whether the run ran all its rounds (see :meth:`unfinished_reason`)."""
        return self.unfinished_reason() is None


def unfinished_reason(run_dir: str | Path) -> str | None:
    """:meth:`RunDir.unfinished_reason` of the folder ``run_dir``."""
    return RunDir(run_dir).unfinished_reason()


def is_finished(run_dir: str | Path) -> bool:
    """:meth:`RunDir.is_finished` of the folder ``run_dir``."""
    return RunDir(run_dir).is_finished()


def started_runs(root: str | Path) -> list[Path]:
    """The folders under ``root`` (``root`` itself included) where a run began writing its
    results, finished or not: every folder holding the ``config.json`` a run writes first."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG_JSON))


def prepared_runs(root: str | Path) -> list[Path]:
    """``root`` if it is a run folder, else every run folder under it, in order: folders
    holding a ``config.toml``, which a run submitted to Slurm has before it starts."""
    root = Path(root)
    if (root / CONFIG_TOML).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(CONFIG_TOML) if p.parent != root)
