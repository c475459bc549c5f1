"""Overhead of the multi-process emulator against the in-process reference.

The same experiment (``configs/quickstart.toml``: 16 peers, 3-regular, MNIST + LeNet,
10 local steps; ``--rounds`` rounds, the last one evaluated on the full test set) runs as
``byzemu launch`` (one OS process per peer, ZeroMQ) and as ``byzemu reference`` (one
process, messages through memory), both as subprocesses from the command to its exit.
Two CPU settings:

* ``1 core``: both commands pinned to CPU 0 (``taskset -c 0``), the same single core,
  so any extra time is the emulator's own cost;
* ``2 cores``: unpinned; the reference is one process and uses one core, the emulator's
  peers spread over both.

Where the time goes, from the round records (``rounds.jsonl``) and ``summary.json``:
``start-up`` = command time minus the rounds' time (imports, forkserver, peer start,
data loading, registration); per round the peers' own ``train_cpu_s``, ``aggregate_cpu_s``
and ``eval_cpu_s`` (CPU seconds, not wall: with more peers than cores a peer's wall time
includes waiting for a core) summed over peers (the work both modes do); ``exchange + barrier`` = the
rounds' time minus that work divided by the cores used (the rest: serialising, sending,
receiving, waiting, round start/done messages).

    .venv/bin/python bench/overhead.py [--rounds 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import mean, median, peer_values, run_command, save, table, warn_if_busy


def breakdown(run: dict[str, Any], cores: int) -> dict[str, float]:
    rounds = run["rounds"]
    rounds_s = sum(r["round_s"] for r in rounds)
    train = sum(sum(peer_values(r, "timing", "train_cpu_s")) for r in rounds)
    agg = sum(sum(peer_values(r, "timing", "aggregate_cpu_s")) for r in rounds)
    ev = sum(sum(peer_values(r, "timing", "eval_cpu_s")) for r in rounds)
    peer_cpu = sum(sum(peer_values(r, "timing", "round_cpu_s")) for r in rounds)
    work = (train + agg + ev) / cores
    exch = [mean(peer_values(r, "timing", "exchange_s")) for r in rounds]
    return {
        "command_s": run["command_s"],
        "wall_s": run["summary"]["wall_s"],
        "rounds_s": rounds_s,
        "startup_s": run["command_s"] - rounds_s,
        "train_cpu_s": train,
        "aggregate_cpu_s": agg,
        "eval_cpu_s": ev,
        "work_per_core_s": work,
        # launch only: the peers' CPU seconds in their rounds beyond train/aggregate/eval
        # (encoding, sending, receiving, decoding, checking; zmq's I/O thread included)
        "peer_messaging_cpu_s": peer_cpu - (train + agg + ev) if peer_cpu else 0.0,
        "exchange_barrier_s": rounds_s - work,
        "round_s_median": median(r["round_s"] for r in rounds),
        "peer_exchange_s_mean": mean(x for x in exch if x == x),
        "accuracy": (run["summary"].get("final_accuracy") or {}).get("mean"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--settings", default="1,2", help="CPU settings to run: 1 (pinned to CPU 0), 2 (unpinned)")
    args = ap.parse_args()
    info = warn_if_busy()
    overrides = {"rounds": args.rounds, "nodes": args.nodes, "eval.every": args.rounds}
    tmp = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    results: dict[str, list[dict[str, float]]] = {}
    try:
        for setting in args.settings.split(","):
            pin = "0" if setting == "1" else None
            cores = 1 if pin else min(2, info["cores"] or 1)
            for rep in range(args.repeats):
                for kind in ("launch", "reference"):
                    out = tmp / f"{kind}-{setting}-{rep}"
                    run = run_command(kind, out, overrides, pin=pin)
                    b = breakdown(run, 1 if kind == "reference" else cores)
                    b["digest0"] = run["rounds"][-1]["peers"]["0"]["metrics"]["digest"]
                    results.setdefault(f"{kind}/{setting}", []).append(b)
                    print(
                        f"{kind:9s} {setting} core(s) rep {rep}: command {b['command_s']:.2f} s, "
                        f"rounds {b['rounds_s']:.2f} s",
                        flush=True,
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def best(key: str) -> dict[str, float]:  # the fastest repeat (least disturbed)
        return min(results[key], key=lambda b: b["command_s"])

    rows, ratios = [], {}
    fields = (
        "command_s",
        "startup_s",
        "rounds_s",
        "train_cpu_s",
        "aggregate_cpu_s",
        "eval_cpu_s",
        "exchange_barrier_s",
        "peer_messaging_cpu_s",
        "round_s_median",
    )
    for setting in args.settings.split(","):
        lb, rb = best(f"launch/{setting}"), best(f"reference/{setting}")
        for name, b in (("launch", lb), ("reference", rb)):
            rows.append([f"{setting} core(s)", name, *(b[f] for f in fields)])
        rows.append([f"{setting} core(s)", "launch − reference", *(lb[f] - rb[f] for f in fields)])
        ratios[setting] = {
            "command": lb["command_s"] / rb["command_s"],
            "rounds": lb["rounds_s"] / rb["rounds_s"],
            "same_models": lb["digest0"] == rb["digest0"],
        }
    print()
    print(table(["cpu", "mode", *fields], rows))
    print()
    for setting, r in ratios.items():
        print(
            f"{setting} core(s): launch / reference = {r['command']:.3f} (command to exit), "
            f"{r['rounds']:.3f} (rounds only); peer 0's final model identical: {r['same_models']}"
        )
    save(
        "overhead",
        {
            "machine": info,
            "config": "configs/quickstart.toml",
            "overrides": overrides,
            "runs": results,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
