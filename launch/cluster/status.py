"""``byzemu status DIR``: how far a run (or every run under a sweep folder) has got.

Read from the results folders only (``rounds.jsonl``, ``config.toml``, ``summary.json``),
so it works wherever the run runs (this machine, a Slurm allocation, another host with a
shared filesystem), while it runs and after. A run submitted to Slurm also shows its job
id and, while the job is queued or running, its Slurm state (``squeue``).

A run's state:

* ``finished``: ``summary.json`` is there (:meth:`protocol.rundir.RunDir.is_finished`, the one test of a
  finished run that sweeps use to skip runs on a rerun), ``incomplete`` if it holds fewer
  rounds than the config asks for (the coordinator gave up);
* ``interrupted``: ``interrupted.json`` is there (a run stopped before its last round);
* ``queued`` / ``running``: Slurm says so for its job, or (without Slurm) rounds are
  still coming (``running``) or none has been written yet (``queued``); a run that a local
  sweep (its ``sweep.json``) lists and has not started, so has no folder yet, is ``queued``
  too;
* ``stopped``: its Slurm job is gone and it did not finish (its log says why);
  ``submitted`` where ``squeue`` cannot be asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import config as config_mod
from protocol.config import ConfigError
from protocol.rundir import CONFIG_TOML, SWEEP, RunDir, prepared_runs, read_json


@dataclass
class RunStatus:
    dir: Path
    name: str
    rounds: int  #: rounds the config asks for
    last: dict[str, Any] | None  #: the last complete line of rounds.jsonl
    evaluated: dict[str, Any] | None  #: the last line with honest test accuracy
    state: str
    job: str | None  #: Slurm job id, if submitted to Slurm
    age_s: float | None  #: seconds since rounds.jsonl last grew

    def line(self) -> str:
        if self.last is None and not self.rounds:  # a sweep's run with no folder or config yet
            return f"{self.state:<11} | not started"
        done = self.last["round"] if self.last else 0
        parts = [f"{self.state:<11}", f"round {done:>4}/{self.rounds}"]
        if self.last:
            if self.evaluated is not None:
                acc = self.evaluated["honest"]["test_accuracy"]
                at = "" if self.evaluated is self.last else f" at round {self.evaluated['round']}"
                parts.append(f"honest acc {acc['mean']:.4f} (worst {acc['worst']:.4f}){at}")
            parts.append(f"elapsed {self.last['elapsed_s']:.1f} s")
            if self.last.get("failed"):
                parts.append(f"failed peers {self.last['failed']}")
        if self.job:
            parts.append(f"Slurm job {self.job}")
        if self.state == "running" and self.last and self.age_s is not None:
            parts.append(f"last round {self.age_s:.0f} s ago")
        return " | ".join(parts)


def run_status(run_dir: Path, slurm_states: dict[str, str] | None) -> RunStatus:
    """The status of one results folder; ``slurm_states`` from ``launch.cluster.slurm.active_jobs``
    (None: Slurm cannot be asked from here)."""
    from launch.cluster.slurm import recorded_job

    run = RunDir(run_dir)
    try:
        cfg = config_mod.load(run.config_toml)
        name, rounds = cfg.name, cfg.rounds
    except (ConfigError, OSError):
        name, rounds = run_dir.name, 0
    records = run.records()
    job = recorded_job(run_dir)
    try:
        age: float | None = time.time() - run.rounds.stat().st_mtime
    except OSError:
        age = None
    if run.is_finished():
        state = "finished" if len(records) >= rounds else "incomplete"
    elif run.interrupted.is_file():
        state = "interrupted"
    elif job is not None and slurm_states is None:
        state = "submitted"  # no squeue here: the job's state is unknown
    elif job is not None and slurm_states is not None:
        state = slurm_states.get(job, "STOPPED").lower()
        state = {"pending": "queued", "configuring": "queued", "completing": "running"}.get(state, state)
    else:  # a local or manual run: no process to ask
        state = "running" if records or age is not None else "queued"
    evaluated = next((r for r in reversed(records) if "test_accuracy" in r.get("honest", {})), None)
    return RunStatus(run_dir, name, rounds, records[-1] if records else None, evaluated, state, job, age)


def not_started(root: Path, dirs: list[Path]) -> list[Path]:
    """The run folders a sweep under ``root`` (its ``sweep.json``) lists that hold no
    config yet: runs a local sweep has queued (it creates their folders as it starts them)."""
    grid = read_json(root / SWEEP)
    if not grid or root in dirs:
        return []
    listed = [root / run["dir"] for cell in grid.get("cells", []) for run in cell.get("runs", [])]
    have = set(dirs)
    return [d for d in listed if d not in have]


def status_lines(root: str | Path) -> list[str]:
    """What ``byzemu status`` prints: one line per run, and a count over a sweep folder."""
    from launch.cluster.slurm import active_jobs

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    dirs = prepared_runs(root)
    waiting = not_started(root, dirs)
    if not dirs and not waiting:
        raise ConfigError(f"{root}: no results folders (no {CONFIG_TOML}) under it")
    states = active_jobs() if any(RunDir(d).slurm_job.is_file() for d in dirs) else None
    runs = [run_status(d, states) for d in dirs]
    runs += [RunStatus(d, d.name, 0, None, None, "queued", None, None) for d in waiting]
    runs.sort(key=lambda r: str(r.dir))
    if len(runs) == 1 and runs[0].dir == root:
        r = runs[0]
        lines = [f"{r.name}: {r.line()}"]
        logs = sorted(root.glob("slurm-*.out"))
        if logs:
            lines.append(f"log: {logs[-1]}")
        return lines
    width = max(len(str(r.dir.relative_to(root))) for r in runs)
    lines = [f"{str(r.dir.relative_to(root)):<{width}}  {r.line()}" for r in runs]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    lines.append(f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return lines
