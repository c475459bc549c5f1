"""Running a sweep: every run of the grid a real local cluster, several at once.

A finished run (:meth:`protocol.rundir.RunDir.unfinished_reason`) is skipped on a rerun,
after checking it was made with the config the sweep asks for now (:func:`check_kept`);
an unfinished one (interrupted, killed) goes on from its last complete checkpoint if it
has one, else is deleted and run again, and the sweep says which. ``OUT/sweep.json``
describes the grid.

With ``jobs > 1`` runs go to a pool of worker processes (``spawn``); each worker reports
its pid when it starts, so that a Ctrl-C can be passed on to the workers still running.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.results import ResumePoint, resume_point
from launch.run.procs import interrupt_once
from launch.sweeps.naming import summary_text
from launch.sweeps.progress import SweepProgress
from launch.sweeps.sweepfile import Run, Sweep
from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig
from protocol.rundir import INTERRUPTED, SUMMARY, SWEEP, RunDir, write_json


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


def _init_worker(stop: Any, pids: Any) -> None:
    """Pool workers: Ctrl-C interrupts the run in progress (launch_local), not the wait
    for the next one (which would print a traceback per worker); ``stop`` keeps a worker
    from starting a queued run once the sweep is interrupted. The worker's pid goes to
    ``pids`` before it takes any run, so the sweep knows every worker that may be running."""
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pids.put(os.getpid())


def _drain(pids: Any) -> list[int]:
    """The pids the workers have reported so far."""
    out = []
    while not pids.empty():
        out.append(int(pids.get()))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def resumable(run: Run, run_dir: Path) -> ResumePoint | None:
    """The checkpoint an unfinished run can go on from, or None (then it starts over)."""
    from peer import checkpoint

    try:
        point = resume_point(run_dir, run.cfg)
    except ConfigError:
        return None
    ckpt = RunDir(run_dir).checkpoints
    if all(checkpoint.path_of(ckpt, point.round, i).is_file() for i in range(run.cfg.nodes)):
        return point
    return None


def check_kept(run: Run, run_dir: Path) -> None:
    """A finished run is kept only if it was made with the config the sweep asks for now."""
    try:
        # Through from_dict, so that fields added to the schema since (at their
        # defaults) do not count as a difference.
        raw = (RunDir(run_dir).read_config() or {})["config"]
        kept = json.loads(json.dumps(config_mod.from_dict(raw).to_dict()))
    except (ValueError, KeyError, TypeError):
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
    progress_every: float | None = None,
) -> dict[str, Any]:
    """Run every missing run of ``sweep`` under ``out``; return counts (ran, skipped).
    With ``progress_every`` (seconds) a live line shows the runs in progress on stderr
    (:mod:`launch.sweeps.progress`); without it only the runs' end lines are printed."""
    out = Path(out)
    for run in sweep.runs:  # before anything is written or deleted
        if RunDir(out / run.rel_dir).is_finished():
            check_kept(run, out / run.rel_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SWEEP, sweep.to_json())

    total = len(sweep.runs)
    todo: list[tuple[Run, ResumePoint | None]] = []
    done = 0
    for run in sweep.runs:
        run_dir = out / run.rel_dir
        why = RunDir(run_dir).unfinished_reason() if run_dir.exists() else None
        if run_dir.exists() and why is None:
            done += 1
            continue
        point = None
        if why is not None:  # interrupted or killed: go on from its checkpoint, or redo it
            point = resumable(run, run_dir)
            if point is not None:
                echo(f"{run.rel_dir}: unfinished, {why}; going on from its round-{point.round} checkpoint")
            else:
                echo(f"{run.rel_dir}: unfinished, {why}; no usable checkpoint, running it again")
                shutil.rmtree(run_dir)
        todo.append((run, point))
    if done:
        echo(f"{done}/{total} runs already done ({SUMMARY} present); skipping them")

    def report(run: Run, summary: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        failed = f", failed peers {summary['failed_peers']}" if summary.get("failed_peers") else ""
        text = f"[{done}/{total}] {run.rel_dir}: {summary_text(summary)} ({summary.get('wall_s', 0.0):.1f} s{failed})"
        if live is not None:
            live.ended(run, text)
        else:
            echo(text)

    def interrupted(running: list[Run]) -> SweepInterrupted:
        where = ", ".join(r.rel_dir for r in running) or "none"
        return SweepInterrupted(
            f"sweep stopped; {done}/{total} runs finished and kept; interrupted: {where} (kept as "
            f"unfinished, with {INTERRUPTED}); rerun the same command to go on"
        )

    live = None
    if progress_every is not None and todo:
        live = SweepProgress(out, [r for r, _ in todo], total=total, done=done, every=progress_every, echo=echo)
        live.start()
    try:
        _run_all(todo, out, jobs, report, interrupted)
    finally:
        if live is not None:
            live.stop()
    return {"total": total, "ran": len(todo), "skipped": total - len(todo)}


def _run_all(
    todo: list[tuple[Run, ResumePoint | None]],
    out: Path,
    jobs: int,
    report: Callable[[Run, dict[str, Any]], None],
    interrupted: Callable[[list[Run]], SweepInterrupted],
) -> None:
    """Run ``todo`` one by one, or ``jobs`` at once in a pool of worker processes."""
    if jobs <= 1 or len(todo) <= 1:
        for run, point in todo:
            try:
                summary = _execute(run.cfg, str(out / run.rel_dir), point)
            except KeyboardInterrupt:
                raise interrupted([run]) from None
            if summary is not None:
                report(run, summary)
    else:
        ctx = multiprocessing.get_context("spawn")
        stop, pids = ctx.Event(), ctx.SimpleQueue()
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(stop, pids))
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
            workers = _drain(pids)  # a worker not in it yet sees ``stop`` before its first run
            pool.shutdown(wait=False, cancel_futures=True)
            while alive := [pid for pid in workers if _pid_alive(pid)]:
                for pid in alive:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGINT)
                time.sleep(0.5)
            pool.shutdown(wait=True)
            raise interrupted([r for r in running if (out / r.rel_dir).exists()]) from None
        pool.shutdown(wait=True)
