"""Does one large run fit this machine? A ``byzemu launch`` of the quickstart, watched.

Runs ``byzemu launch configs/quickstart.toml --set nodes=N --set model.name=MODEL --set
rounds=R --set train.local_steps=1 --set eval.every=R --set data.test_samples=S
--ignore-capacity`` (the scale issue's command: every peer evaluates in the last round)
and reads ``/proc/meminfo`` every ``--every`` seconds: memory in use (MemTotal -
MemAvailable) against before the launch, ``PageTables``, the kernel's own (``KernelStack``
+ ``SUnreclaim``), the rounds recorded so far and
the processes in the launch's session (launcher, forkserver, peers: how far a start-up got).
If available memory falls under ``--floor`` GiB the run is interrupted (SIGINT to its
process group, SIGKILL 30 s later if it has not ended) before the kernel's OOM killer has
to act, and the result says so. Writes ``bench/results/NAME.json``: the outcome
(completed / interrupted at the floor / failed), the launch's exit status and last lines,
the seconds until round 1 is recorded and to the end, the peak memory in use and page
tables, the honest peers' final accuracy and the peers marked failed (from the run's
``summary.json``).

    .venv/bin/python bench/big_run.py --nodes 1024 --model lenet [--rounds 3] [--samples 500] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import launch_cmd, machine, save, start_in_session, warn_if_busy
from procstat import meminfo, stat_fields


def _session_processes(sid: int) -> int:
    """Processes in session ``sid`` (the launch's: launcher, forkserver, peers)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                session = int(stat_fields(entry.name)[3])
            except OSError:  # ended meanwhile
                continue
            count += session == sid
    return count


def _used_gib(m: dict[str, int]) -> float:
    return (m["MemTotal"] - m["MemAvailable"]) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1024)
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=500, help="data.test_samples")
    ap.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--floor", type=float, default=0.5, help="interrupt when available memory (GiB) falls under it")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more config override")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    busy = warn_if_busy()
    overrides = {
        "nodes": args.nodes,
        "model.name": args.model,
        "rounds": args.rounds,
        "train.local_steps": 1,
        "eval.every": args.rounds,
        "data.test_samples": args.samples,
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-big-run-"))
    out = tmp / "run"
    extra = [a for kv in args.set for a in ("--set", kv)]
    cmd = [*launch_cmd(out, overrides), *extra, "--ignore-capacity"]
    before = meminfo()
    t0 = time.time()
    proc, log = start_in_session(cmd)
    rounds_file = out / "rounds.jsonl"
    samples: list[dict[str, float]] = []
    first_round = None
    outcome = "completed"
    try:
        while proc.poll() is None:
            m = meminfo()
            count = rounds_file.read_bytes().count(b"\n") if rounds_file.exists() else 0
            now = time.time() - t0
            if count and first_round is None:
                first_round = now
            samples.append(
                {
                    "t": round(now, 1),
                    "rounds": count,
                    "used_gib": round(_used_gib(m) - _used_gib(before), 3),
                    "page_tables_gib": round(m["PageTables"] / 2**20, 3),
                    "kernel_gib": round((m["KernelStack"] + m["SUnreclaim"]) / 2**20, 3),
                    "available_gib": round(m["MemAvailable"] / 2**20, 3),
                    "processes": _session_processes(proc.pid),
                }
            )
            print(json.dumps(samples[-1]), flush=True)
            if m["MemAvailable"] / 2**20 < args.floor:
                outcome = f"interrupted: available memory under {args.floor} GiB"
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:  # a machine out of memory stops slowly
                    outcome += " (killed after 30 s)"
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
            time.sleep(args.every)
        code = proc.wait()
        log.seek(0)
        tail = log.read()[-3000:]
        summary_file = out / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
    if code != 0 and outcome == "completed":
        outcome = f"failed (exit status {code})"
    failed = summary.get("failed_peers", [])
    result: dict[str, Any] = {
        "outcome": outcome,
        "exit_status": code,
        "seconds_to_round_1_recorded": first_round,
        "seconds": round(time.time() - t0, 1),
        "peak_used_gib": max((s["used_gib"] for s in samples), default=0.0),
        "peak_page_tables_gib": max((s["page_tables_gib"] for s in samples), default=0.0),
        "peak_processes": max((s["processes"] for s in samples), default=0),
        "min_available_gib": min((s["available_gib"] for s in samples), default=0.0),
        "available_before_gib": round(before["MemAvailable"] / 2**20, 3),
        "failed_peers": len(failed) if isinstance(failed, list) else failed,
        "final_accuracy": summary.get("final_accuracy"),
        "log_tail": tail,
    }
    print({k: v for k, v in result.items() if k != "log_tail"})
    name = args.name or f"big_run_{args.model}_{args.nodes}"
    save(name, {"machine": machine(), **busy, "overrides": overrides, "set": args.set, **result, "samples": samples})


if __name__ == "__main__":
    main()
