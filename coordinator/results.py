"""Writing one run's results folder: per-round records, the summary, and resuming.

The folder's layout, file names, state (finished or not) and readers belong to
:mod:`protocol.rundir`; this module writes it as a run goes: the resolved config, the
topology, one line of ``rounds.jsonl`` per round, and ``summary.json`` (or
``interrupted.json`` when the run stops early), and finds where a killed run goes on.

Each line is flushed as its round ends, so a crash of the coordinator loses at most the
round in progress; lines reach the disk (fsync) at most ``FSYNC_EVERY_S`` apart, so a
crash of the whole machine loses at most the last second of rounds.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import provenance
from protocol.config import ConfigError, RunConfig, config_fingerprint, to_toml
from protocol.rundir import RunDir, read_rounds, round_line, write_all, write_json

#: at most one fsync of rounds.jsonl per this many seconds (an fsync per round costs too
#: much when a round takes tens of milliseconds; measured in BENCHMARKS.md)
FSYNC_EVERY_S = 1.0

SUMMARY_METRICS = ("test_accuracy", "test_loss", "train_loss", "attack_success_rate")
#: metrics where larger is worse (their "worst" over honest peers is the maximum)
WORST_IS_MAX = ("test_loss", "train_loss", "attack_success_rate")


def stats(values: list[float], *, worst: str = "min") -> dict[str, float] | None:
    """mean, population std and worst (min or max) of finite values; None if there are none."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return None
    return {
        "mean": statistics.fmean(finite),
        "std": statistics.pstdev(finite) if len(finite) > 1 else 0.0,
        "worst": min(finite) if worst == "min" else max(finite),
        "n": len(finite),
    }


def round_record(
    *,
    round_: int,
    roles: dict[int, str],
    reports: dict[int, dict[str, Any]],
    failed: set[int],
    elapsed_s: float,
    round_s: float,
) -> dict[str, Any]:
    """One line of rounds.jsonl from the peers' round-done reports.

    ``reports[i]`` holds ``metrics``, ``traffic`` and ``timing`` of peer i. Peers that did
    not report appear with ``status`` "failed" (known dead) or "missing".
    """
    peers: dict[str, Any] = {}
    for node in sorted(roles):
        entry: dict[str, Any] = {"role": roles[node]}
        if node in reports:
            entry["status"] = "ok"
            entry.update(reports[node])
        else:
            entry["status"] = "failed" if node in failed else "missing"
        peers[str(node)] = entry
    honest_ok = [reports[n] for n in sorted(reports) if roles[n] == "honest"]
    honest = {
        name: stats(
            [r["metrics"][name] for r in honest_ok if name in r["metrics"]],
            worst="max" if name in WORST_IS_MAX else "min",
        )
        for name in SUMMARY_METRICS
    }
    aggregate_s = stats([r["timing"].get("aggregate_s", math.nan) for r in reports.values()])
    return {
        "round": round_,
        "elapsed_s": elapsed_s,
        "round_s": round_s,
        "failed": sorted(failed),
        "honest": {k: v for k, v in honest.items() if v is not None},
        "aggregate_s": aggregate_s,
        "peers": peers,
    }


def slim(record: dict[str, Any]) -> dict[str, Any]:
    """What :func:`summarize`, the resume hint and a resumed run's clock read of ``record``:
    its round, failed peers, elapsed time, checkpoint and, on an evaluation round, the
    honest statistics. The coordinator keeps these, not the whole records: a whole record
    holds every peer's metrics, traffic and timing (~1.6 kB each as Python objects), so
    1,024 peers over 2,000 rounds would keep ~3 GB (``bench/soak.py``)."""
    out: dict[str, Any] = {k: record[k] for k in ("round", "failed", "elapsed_s", "checkpoint") if k in record}
    honest = record.get("honest", {})
    out["honest"] = honest if "test_accuracy" in honest else {}
    return out


def summarize(records: list[dict[str, Any]], cfg: RunConfig, *, wall_s: float, mode: str) -> dict[str, Any]:
    """summary.json: final and best honest accuracy, convergence round, wall time.

    Convergence round: the first evaluation round whose honest mean test accuracy reaches
    ``eval.convergence_fraction`` times the best honest mean test accuracy of the run.
    """
    evals = [r for r in records if "test_accuracy" in r["honest"]]
    final = evals[-1] if evals else None
    best = max(evals, key=lambda r: r["honest"]["test_accuracy"]["mean"]) if evals else None
    convergence = None
    if best is not None:
        target = cfg.eval.convergence_fraction * best["honest"]["test_accuracy"]["mean"]
        convergence = next(r["round"] for r in evals if r["honest"]["test_accuracy"]["mean"] >= target)
    failed = sorted({n for r in records for n in r["failed"]})
    return {
        "name": cfg.name,
        "mode": mode,
        "rounds_completed": len(records),
        "rounds": cfg.rounds,
        "final_round": final["round"] if final else None,
        "final_accuracy": final["honest"]["test_accuracy"] if final else None,
        "final_loss": final["honest"].get("test_loss") if final else None,
        "best_accuracy": best["honest"]["test_accuracy"] if best else None,
        "best_round": best["round"] if best else None,
        "convergence_round": convergence,
        "convergence_fraction": cfg.eval.convergence_fraction,
        "final_attack_success_rate": final["honest"].get("attack_success_rate") if final else None,
        "attack": cfg.byzantine.attack if cfg.byzantine.present else None,
        "knowledge": cfg.byzantine.knowledge if cfg.byzantine.present else None,
        "failed_peers": failed,
        "wall_s": wall_s,
    }


class ResultsWriter:
    """Writes one run's folder; ``append_round`` writes and flushes one line per round."""

    def __init__(self, out_dir: str | Path, cfg: RunConfig, *, mode: str, resume: ResumePoint | None = None) -> None:
        self.dir = Path(out_dir)
        self.run = RunDir(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.mode = mode
        self.curve = False  #: whether the run's sockets used CURVE (set by the coordinator)
        #: every round's record so far without its per-peer part (:func:`slim`): what the
        #: summary needs; the whole records are in rounds.jsonl
        self.records: list[dict[str, Any]] = []
        #: elapsed_s of the last kept round of a resumed run (later rounds count on from it)
        self.elapsed_offset = 0.0
        data = cfg.to_dict()
        self.run.config_toml.write_text(to_toml(data))
        write_json(self.run.config_json, {"mode": mode, "config": data})
        path = self.run.rounds
        if resume is None:
            path.write_bytes(b"")
        else:  # keep the lines up to the checkpoint; later rounds are recomputed
            self.records = [slim(r) for r in resume.records]
            self.elapsed_offset = float(self.records[-1].get("elapsed_s") or 0.0)
            tmp = path.with_suffix(".jsonl.tmp")
            with open(tmp, "wb") as fh:
                fh.write(b"".join(line + b"\n" for line in resume.lines))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        # unbuffered: each line reaches the OS in one write(2), so a killed coordinator
        # leaves whole lines only
        self._rounds = open(path, "ab", buffering=0)
        self._synced = 0.0  # time.monotonic() of the last fsync
        self.provenance = self._start_provenance(resume is not None)

    def _start_provenance(self, resumed: bool) -> dict[str, Any]:
        """provenance.json (protocol/provenance.py) as the run starts: code, software,
        machine, start time; a resumed run keeps the earlier parts under ``previous``."""
        prov = provenance.collect()
        prov["mode"] = self.mode
        prov["started"] = provenance.now_iso()
        earlier = self.run.read_provenance() if resumed else None
        if earlier is not None:
            prov["previous"] = [*earlier.pop("previous", []), earlier]
        write_json(self.run.provenance, prov)
        return prov

    def _end_provenance(self, wall_s: float) -> None:
        self.provenance["finished"] = provenance.now_iso()
        self.provenance["wall_s"] = wall_s
        write_json(self.run.provenance, self.provenance)

    def write_topology(self, topology: dict[str, Any]) -> None:
        write_json(self.run.topology, topology)
        # the in-process reference has no peer processes: its peers ran on this host
        hosts = sorted({str(n["host"]) for n in topology.get("nodes", []) if n.get("host")})
        self.provenance["peer_hosts"] = hosts or [self.provenance["machine"]["host"]]
        write_json(self.run.provenance, self.provenance)

    def append_round(self, record: dict[str, Any]) -> None:
        self.records.append(slim(record))
        write_all(self._rounds, round_line(record))  # in the OS now: survives a crash of this process
        now = time.monotonic()
        if now - self._synced >= FSYNC_EVERY_S:  # on disk: survives a crash of the machine
            os.fsync(self._rounds.fileno())
            self._synced = time.monotonic()

    def finish(self, *, wall_s: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        summary = summarize(self.records, self.cfg, wall_s=wall_s, mode=self.mode)
        summary["curve"] = self.curve
        if extra:
            summary.update(extra)
        self._rounds.flush()
        os.fsync(self._rounds.fileno())
        self._end_provenance(wall_s)
        write_json(self.run.summary, summary)
        self.run.interrupted.unlink(missing_ok=True)  # a resumed run that finished
        self._rounds.close()
        return summary

    def interrupt(self, *, wall_s: float, reason: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The run stopped before its last round: write ``interrupted.json`` (never
        ``summary.json``, which marks a finished run) with the summary so far, ``reason``,
        and ``message``, one line saying what was kept and how to go on."""
        state = summarize(self.records, self.cfg, wall_s=wall_s, mode=self.mode)
        if extra:
            state.update(extra)
        state["curve"] = self.curve
        state["reason"] = reason
        state["resume"] = self._resume_command()
        state["message"] = self._kept_message(state)
        if not self._rounds.closed:
            self._rounds.flush()
            os.fsync(self._rounds.fileno())
            self._rounds.close()
        self._end_provenance(wall_s)
        write_json(self.run.interrupted, state)
        return state

    def _resume_command(self) -> str | None:
        complete = [r for r in self.records if (r.get("checkpoint") or {}).get("complete")]
        if self.mode != "multiprocess" or not complete:
            return None
        return f"byzemu launch --resume {self.dir}"

    def _kept_message(self, state: dict[str, Any]) -> str:
        done, total = state["rounds_completed"], state["rounds"]
        span = "round 1" if done == 1 else f"rounds 1-{done}"
        kept = f"{span} kept in {self.run.rounds}" if done else f"no round completed; {self.dir} holds the config only"
        every = self.cfg.runtime.checkpoint_every
        if state["resume"]:
            last = max(r["round"] for r in self.records if (r.get("checkpoint") or {}).get("complete"))
            how = f"go on from the round-{last} checkpoint with: {state['resume']}"
        elif self.mode != "multiprocess":
            how = "rerun to start over"
        elif every == 0:
            how = "checkpoints are off (runtime.checkpoint_every = 0), so a rerun starts over"
        else:
            how = f"no complete checkpoint yet (runtime.checkpoint_every = {every}), so a rerun starts over"
        return f"stopped at round {done} of {total} ({state['reason']}): {kept}; {how}"


class ResumeError(ConfigError):
    """A results folder cannot be resumed (missing, no complete checkpoint, other config)."""


@dataclass
class ResumePoint:
    """Where a killed run goes on: after ``round``, its last round with a complete
    checkpoint; ``digests`` are the peers' model digests recorded for that round (each
    peer checks its checkpoint against its own), ``lines``/``records`` the rounds.jsonl
    lines 1..round that are kept."""

    round: int
    digests: dict[int, str]
    lines: list[bytes] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def resume_point(run_dir: Path, cfg: RunConfig) -> ResumePoint:
    """The last round of ``run_dir`` with a complete checkpoint; ResumeError if there is
    none or it was written under a config that gives other results than ``cfg``."""
    lines, records = read_rounds(RunDir(run_dir).rounds)
    complete = [r for r in records if isinstance(r.get("checkpoint"), dict) and r["checkpoint"].get("complete")]
    if not complete:
        every = cfg.runtime.checkpoint_every
        why = (
            "its config has runtime.checkpoint_every = 0 (checkpoints off)"
            if every == 0
            else f"{len(records)} round(s) recorded, none with a checkpoint of every peer (every {every} rounds)"
        )
        raise ResumeError(f"--resume {run_dir}: no round has a complete checkpoint; {why}")
    last = complete[-1]
    recorded, ours = last["checkpoint"].get("config"), config_fingerprint(cfg)
    if recorded != ours:
        raise ResumeError(
            f"--resume {run_dir}: config mismatch: its checkpoints were written under config {recorded}, "
            f"the config given is {ours}; only runtime.* fields may differ"
        )
    if len(records) >= cfg.rounds:
        raise ResumeError(f"--resume {run_dir}: all {cfg.rounds} rounds are already recorded; nothing to resume")
    digests = {int(n): p["metrics"]["digest"] for n, p in last["peers"].items()}
    n = last["round"]
    return ResumePoint(round=n, digests=digests, lines=lines[:n], records=records[:n])
