"""Experiment sweeps: a grid of configs × repeats, each run a real local cluster.

A sweep file (TOML)::

    base = "../quickstart.toml"        # relative to the sweep file
    repeats = 3                        # repeat r runs with seed = base seed + r
    [set]                              # fixed overrides for every run (dotted keys)
    rounds = 10
    [axes]                             # dotted config field -> list of values
    "byzantine.attack" = ["none", "backdoor"]
    "defense.name" = ["cdl", "norm_clip"]

The grid is the cartesian product of the axes (in file order) × repeats. Run r of cell
``c`` is written to ``OUT/<c>/rep<r>``; ``OUT/sweep.json`` describes the grid. A finished run (its folder
holds a ``summary.json`` of every round, :func:`coordinator.results.unfinished_reason`)
is skipped on a rerun; an unfinished one (interrupted, killed) goes on from its last
complete checkpoint if it has one, else is deleted and run again, and the sweep says which.

Every cell's config is loaded and planned (``Planner.check``) before the first run starts,
so a bad sweep file fails with one ``ConfigError`` line and nothing runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import signal
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.results import ResumePoint, is_finished, resume_point, unfinished_reason
from launch.run.procs import interrupt_once
from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig

SWEEP_KEYS = ("extends", "base", "repeats", "set", "axes")


@dataclass
class Run:
    cell: str
    rep: int
    seed: int
    overrides: list[str]
    cfg: RunConfig
    rel_dir: str


@dataclass
class Cell:
    name: str
    values: dict[str, Any]
    runs: list[Run] = field(default_factory=list)


@dataclass
class Sweep:
    path: Path
    base: Path
    repeats: int
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]
    cells: list[Cell]

    @property
    def runs(self) -> list[Run]:
        return [r for c in self.cells for r in c.runs]

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_file": str(self.path.resolve()),
            "base": str(self.base),
            "repeats": self.repeats,
            "set": self.fixed,
            "axes": self.axes,
            "total_runs": len(self.runs),
            "cells": [
                {
                    "name": c.name,
                    "values": c.values,
                    "runs": [{"rep": r.rep, "seed": r.seed, "dir": r.rel_dir} for r in c.runs],
                }
                for c in self.cells
            ],
        }


def toml_value(value: Any) -> str:
    """A Python value as the right-hand side of a ``--set`` override (TOML syntax)."""
    # to_toml renders a top-level "params" key inline whatever its type
    return config_mod.to_toml({"params": value}).split("=", 1)[1].strip()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "_"


def cell_name(values: dict[str, Any]) -> str:
    """Readable, filesystem-safe folder name: ``axis=value__axis=value``."""
    if not values:
        return "base"
    parts = []
    for key, value in values.items():
        shown = value if isinstance(value, str) else toml_value(value)
        parts.append(f"{_safe(key)}={_safe(str(shown))}")
    return "__".join(parts)


def _read_sweep_file(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The sweep file's table, with ``extends`` resolved (``base`` made absolute).

    ``extends = "other.toml"`` (relative to this file) starts from that sweep file:
    this file's ``base`` and ``repeats`` replace its, ``[set]`` is merged over its
    ``[set]`` (dotted keys), and each axis given here replaces that axis.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read sweep file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; a sweep file has {', '.join(SWEEP_KEYS)}"
        )
    for key in ("set", "axes"):
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key}: expected a table of dotted field = value")
    if isinstance(data.get("base"), str) and data["base"]:
        data["base"] = str((path.resolve().parent / data["base"]).resolve())
    if "extends" not in data:
        return data
    parent_ref = data.pop("extends")
    if not isinstance(parent_ref, str) or not parent_ref:
        raise ConfigError(f"{path}: extends: expected the path of another sweep file")
    parent_path = (path.resolve().parent / parent_ref).resolve()
    if parent_path in chain or parent_path == path.resolve():
        raise ConfigError(f"{path}: extends={parent_ref!r} makes a loop; remove one extends")
    if not parent_path.is_file():
        raise ConfigError(f"{path}: extends={parent_ref!r}: no such file ({parent_path})")
    merged = _read_sweep_file(parent_path, chain + (path.resolve(),))
    for key in ("base", "repeats"):
        if key in data:
            merged[key] = data[key]
    merged["set"] = {**_flatten(merged.get("set", {})), **_flatten(data.get("set", {}))}
    merged["axes"] = {**merged.get("axes", {}), **data.get("axes", {})}
    return merged


def load_sweep(path: str | Path, extra: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Parse and check a sweep file; load and plan every cell's config. Raises ConfigError.

    ``extra`` are ``--set KEY=VALUE`` overrides applied to every run after the file's
    ``[set]`` and axis values (so they win over both).
    """
    path = Path(path)
    data = _read_sweep_file(path)
    if not isinstance(data.get("base"), str) or not data["base"]:
        raise ConfigError(f"{path}: missing base = \"path/to/config.toml\" (relative to the sweep file)")
    base = Path(data["base"])
    if not base.is_file():
        raise ConfigError(f"{path}: base={str(base)!r}: no such file")
    repeats = data.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"{path}: repeats={repeats!r}: must be an integer >= 1")
    fixed = data.get("set", {})
    axes = data.get("axes", {})
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ConfigError(f"{path}: axes.{key!r}: expected a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"{path}: axes.{key!r}: empty list; give at least one value")
        if key == "seed":
            raise ConfigError(f"{path}: axes.'seed': use repeats (seed = base seed + repeat)")
    fixed_over = [f"{k}={toml_value(v)}" for k, v in _flatten(fixed).items()]

    from coordinator.plan import Planner

    planner = Planner()  # each distinct config planned once, the model built once per shape
    cells: list[Cell] = []
    used: set[str] = set()
    for combo in itertools.product(*axes.values()) if axes else [()]:
        values = dict(zip(axes.keys(), combo))
        name = cell_name(values)
        if name in used:  # two values that read the same once made filesystem-safe
            name = f"{name}__{len(cells)}"
        used.add(name)
        overrides = fixed_over + [f"{k}={toml_value(v)}" for k, v in values.items()] + list(extra)
        cfg0 = _load(base, overrides, values)
        cell = Cell(name, values)
        for rep in range(repeats):
            seed = cfg0.seed + rep
            run_over = overrides + [f"seed={seed}"]
            cfg = config_mod.load(base, run_over)
            planner.check(cfg)  # graph, roles, data, model, defense, attack: fail before any run
            cell.runs.append(Run(name, rep, seed, run_over, cfg, f"{name}/rep{rep}"))
        cells.append(cell)
    return Sweep(path, base, repeats, fixed, axes, cells)


def _load(base: Path, overrides: list[str], values: dict[str, Any]) -> RunConfig:
    try:
        return config_mod.load(base, overrides)
    except ConfigError as exc:
        where = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ConfigError(f"{exc} (sweep cell {where})" if where else str(exc)) from None


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``; ``params`` tables stay whole."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and key != "params":
            out.update(_flatten(value, dotted))
        else:
            out[dotted] = value
    return out


def default_jobs(sweep: Sweep) -> int:
    """Runs at once: cores // largest node count, at least 1 (each run is N processes)."""
    nodes = max((r.cfg.nodes for r in sweep.runs), default=1)
    return max(1, (os.cpu_count() or 1) // nodes)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; its text says what was kept and how to go on."""


#: in a pool worker: set by the sweep once it is interrupted (see _init_worker)
_STOP: Any = None


def _execute(cfg: RunConfig, out_dir: str, resume: ResumePoint | None = None) -> dict[str, Any] | None:
    """Run one config; None (and nothing started) if the sweep was interrupted before
    this worker got to it (a run the pool had already queued for the worker)."""
    from launch.run.local import launch_local

    if _STOP is not None and _STOP.is_set():
        return None
    return launch_local(cfg, out_dir, show_progress=False, resume=resume)


def _init_worker(stop: Any) -> None:
    """Pool workers: Ctrl-C interrupts the run in progress (launch_local), not the wait
    for the next one (which would print a traceback per worker); ``stop`` keeps a worker
    from starting a queued run once the sweep is interrupted."""
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _resumable(run: Run, run_dir: Path) -> ResumePoint | None:
    """The checkpoint an unfinished run can go on from, or None (then it starts over)."""
    from peer import checkpoint

    try:
        point = resume_point(run_dir, run.cfg)
    except ConfigError:
        return None
    ckpt = run_dir / "checkpoints"
    if all(checkpoint.path_of(ckpt, point.round, i).is_file() for i in range(run.cfg.nodes)):
        return point
    return None


def _check_kept(run: Run, run_dir: Path) -> None:
    """A finished run is kept only if it was made with the config the sweep asks for now."""
    try:
        # Through from_dict, so that fields added to the schema since (at their
        # defaults) do not count as a difference.
        raw = json.loads((run_dir / "config.json").read_text())["config"]
        kept = json.loads(json.dumps(config_mod.from_dict(raw).to_dict()))
    except (OSError, ValueError, KeyError):
        kept = None
    if kept != json.loads(json.dumps(run.cfg.to_dict())):
        raise ConfigError(
            f"{run_dir}: finished run made with a different config than the sweep file now "
            "asks for; use another --out (or delete that folder to redo it)"
        )


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every missing run of ``sweep`` under ``out``; return counts (ran, skipped)."""
    out = Path(out)
    for run in sweep.runs:  # before anything is written or deleted
        if is_finished(out / run.rel_dir):
            _check_kept(run, out / run.rel_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "sweep.json.tmp"
    tmp.write_text(json.dumps(sweep.to_json(), indent=2) + "\n")
    os.replace(tmp, out / "sweep.json")

    total = len(sweep.runs)
    todo: list[tuple[Run, ResumePoint | None]] = []
    done = 0
    for run in sweep.runs:
        run_dir = out / run.rel_dir
        why = unfinished_reason(run_dir) if run_dir.exists() else None
        if run_dir.exists() and why is None:
            done += 1
            continue
        point = None
        if why is not None:  # interrupted or killed: go on from its checkpoint, or redo it
            point = _resumable(run, run_dir)
            if point is not None:
                echo(f"{run.rel_dir}: unfinished, {why}; going on from its round-{point.round} checkpoint")
            else:
                echo(f"{run.rel_dir}: unfinished, {why}; no usable checkpoint, running it again")
                shutil.rmtree(run_dir)
        todo.append((run, point))
    if done:
        echo(f"{done}/{total} runs already done (summary.json present); skipping them")

    def report(run: Run, summary: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        failed = f", failed peers {summary['failed_peers']}" if summary.get("failed_peers") else ""
        echo(
            f"[{done}/{total}] {run.rel_dir}: {summary_text(summary)} "
            f"({summary.get('wall_s', 0.0):.1f} s{failed})"
        )

    def interrupted(running: list[Run]) -> SweepInterrupted:
        where = ", ".join(r.rel_dir for r in running) or "none"
        return SweepInterrupted(
            f"sweep stopped; {done}/{total} runs finished and kept; interrupted: {where} (kept as "
            f"unfinished, with interrupted.json); rerun the same command to go on"
        )

    if jobs <= 1 or len(todo) <= 1:
        for run, point in todo:
            try:
                summary = _execute(run.cfg, str(out / run.rel_dir), point)
            except KeyboardInterrupt:
                raise interrupted([run]) from None
            report(run, summary)
    else:
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(stop,))
        futures = {pool.submit(_execute, r.cfg, str(out / r.rel_dir), p): r for r, p in todo}
        try:
            with interrupt_once():
                for fut in cf.as_completed(futures):
                    summary = fut.result()
                    if summary is not None:
                        report(futures[fut], summary)
        except KeyboardInterrupt:
            # No queued run may start now (stop), and a worker must not go on with a run
            # it started after the SIGINT reached it (between runs it ignores SIGINT): so
            # the SIGINT is repeated to the live workers until they have all exited (a
            # worker stopping its run ignores the repeats: launch.run.procs.interrupt_once).
            stop.set()
            running = [r for f, r in futures.items() if f.running()]  # or queued for a worker
            workers = [proc.pid for proc in list(getattr(pool, "_processes", {}).values())]
            pool.shutdown(wait=False, cancel_futures=True)
            while alive := [pid for pid in workers if _pid_alive(pid)]:
                for pid in alive:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGINT)
                time.sleep(0.5)
            pool.shutdown(wait=True)
            raise interrupted([r for r in running if (out / r.rel_dir).exists()]) from None
        pool.shutdown(wait=True)
    return {"total": total, "ran": len(todo), "skipped": total - len(todo)}


def summary_text(summary: dict[str, Any]) -> str:
    """``honest accuracy 0.9712 (worst 0.9632)`` and, when a backdoor-type attack ran,
    ``ASR 0.0312 (worst 0.0625)``: the numbers a sweep line and a run's final lines show."""
    acc = summary.get("final_accuracy") or {}
    text = f"honest accuracy {acc['mean']:.4f} (worst {acc['worst']:.4f})" if "mean" in acc else "honest accuracy n/a"
    asr = summary.get("final_attack_success_rate") or {}
    if "mean" in asr:
        text += f", ASR {asr['mean']:.4f} (worst {asr['worst']:.4f})"
    return text
