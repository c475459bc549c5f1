"""``byzemu sweep FILE --plan``: the runs of a sweep and how long they will take here.

Nothing of the sweep runs and nothing is written. The time comes from this machine's own
measured cost of each distinct configuration: a *probe* runs it for two rounds in this
process (the in-process reference driver, with the same training, crafting, aggregation
and evaluation code as a cluster run) into a temporary folder, round 1 without and round 2
with evaluation, so that

    cpu(run) = rounds * t1 + evaluations * max(0, t2 - t1)

where t1 and t2 are the probe's two round times (every peer of the run, one after another,
on one core), scaled by the share of a core the probe got (its CPU time over its wall
time), so that a loaded machine does not inflate the estimate. A run of N peers on a
machine with C cores, J runs at once, then takes about

    wall(run) = cpu(run) / min(N, max(1, C // J)) + setup

with ``setup`` the probe's own set-up time (plan, data, models), and the sweep about
``sum(wall(run)) / J``. Configurations that differ only in their seed (the repeats) share
one probe. What the estimate leaves out: the cluster's messaging and barrier (small next
to training: BENCHMARKS.md, *Exchange overhead*), a loaded machine, and rounds whose cost
changes over a run (a defense whose work depends on what it has seen). BENCHMARKS.md,
*Sweep plans*, compares estimates with measured runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from launch.sweeps.sweepfile import Run, Sweep
from protocol.config import RunConfig
from protocol.rundir import RunDir


@dataclass(frozen=True)
class Probe:
    """Measured cost of one configuration: set-up, a round without and with evaluation."""

    setup_s: float
    train_round_s: float
    eval_round_s: float

    def cpu_s(self, cfg: RunConfig) -> float:
        evaluations = sum(1 for r in range(1, cfg.rounds + 1) if cfg.eval_round(r))
        return cfg.rounds * self.train_round_s + evaluations * max(0.0, self.eval_round_s - self.train_round_s)


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    cpu_s: float
    wall_s: float


def probe_key(cfg: RunConfig) -> str:
    """Configurations with the same key cost the same: all fields but seed, name, runtime."""
    data = cfg.to_dict()
    for key in ("seed", "name", "runtime"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


def probe(cfg: RunConfig) -> Probe:
    """Run ``cfg`` for two rounds in this process (evaluating in round 2) and time it."""
    from launch.run.reference import run_reference

    short = dataclasses.replace(
        cfg,
        rounds=2,
        eval=dataclasses.replace(cfg.eval, every=2),
        runtime=dataclasses.replace(cfg.runtime, checkpoint_every=0),
    )
    with tempfile.TemporaryDirectory(prefix="byzemu-plan-") as tmp:
        start, cpu_start = time.monotonic(), time.process_time()
        run_reference(short, Path(tmp) / "probe")
        total, cpu = time.monotonic() - start, time.process_time() - cpu_start
        records = RunDir(Path(tmp) / "probe").records()
    t1, t2 = (float(r["round_s"]) for r in records[:2])
    # the probe runs on one thread: its CPU time is the work, whatever else shares the
    # machine; the rounds' wall times only split that work between set-up and rounds
    share = min(1.0, cpu / total) if total > 0 else 1.0
    return Probe(setup_s=max(0.0, total - t1 - t2) * share, train_round_s=t1 * share, eval_round_s=t2 * share)


def plan(
    sweep: Sweep,
    *,
    jobs: int,
    cores: int | None = None,
    measure: Callable[[RunConfig], Probe] = probe,
    echo: Callable[[str], None] | None = None,
) -> list[PlannedRun]:
    """Every run of ``sweep`` with its estimated CPU and wall time (module docstring)."""
    cores = cores or os.cpu_count() or 1
    per_run_cores = max(1, cores // max(1, jobs))
    probes: dict[str, Probe] = {}
    planned = []
    for run in sweep.runs:
        key = probe_key(run.cfg)
        if key not in probes:
            if echo:
                echo(f"  measuring {run.cell} ({run.cfg.nodes} peers, 2 rounds in process) ...")
            probes[key] = measure(run.cfg)
        p = probes[key]
        cpu = p.cpu_s(run.cfg)
        planned.append(PlannedRun(run=run, cpu_s=cpu, wall_s=cpu / min(run.cfg.nodes, per_run_cores) + p.setup_s))
    return planned


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_lines(planned: list[PlannedRun], *, jobs: int, cores: int | None = None) -> list[str]:
    """The plan as text: one line per cell (its runs, peers, rounds, data and model, time
    per run), then the total."""
    cores = cores or os.cpu_count() or 1
    lines = ["cell | runs | peers | rounds | dataset + model | estimated wall per run"]
    cells: dict[str, list[PlannedRun]] = {}
    for p in planned:
        cells.setdefault(p.run.cell, []).append(p)
    for cell, runs in cells.items():
        cfg = runs[0].run.cfg
        each = sum(r.wall_s for r in runs) / len(runs)
        lines.append(
            f"{cell} | {len(runs)} | {cfg.nodes} | {cfg.rounds} | "
            f"{cfg.data.dataset} + {cfg.model.name} | {_duration(each)}"
        )
    total = sum(p.wall_s for p in planned) / max(1, jobs)
    lines.append(
        f"total: {len(planned)} runs, {jobs} at once on {cores} cores: about {_duration(total)} "
        f"({_duration(sum(p.cpu_s for p in planned))} of CPU); an estimate from 2-round probes on this machine"
    )
    return lines
