"""The cost curve: what one more peer costs, from 16 to 2,048 peers, beside the floor.

For each model and number of peers N, one ``byzemu launch`` of the quickstart (3-regular
graph, MNIST, ``--local-steps`` SGD steps per round, evaluation only in the last round on
100 test samples) for ``--rounds`` rounds, and at the same N the bare-pyzmq floor
(``bench/floor.py``: the same processes and message pattern, each message half of the
same model, nothing else). Steady rounds are 2 .. R-1. Per size it records:

* round time (median) and the floor's; exchange + barrier = round − the peers' training
  and aggregation CPU / cores;
* CPU per peer-round: training, aggregation, messaging (the peer's round CPU minus
  training, aggregation and evaluation: encoding, sending, receiving, checking, the
  round's control messages), and the barrier (the launcher's CPU per round: the
  coordinator receiving one ``round_done`` per peer, writing the record, starting the
  next round, divided by N); the coordinator's CPU per round on its own;
* memory: each peer's USS (private) and PSS (mean), and what the machine's used memory
  (MemTotal − MemAvailable) rose by from before the launch to round 2, per peer and in
  all, beside the capacity estimate of ``launch/run/capacity.py`` for that run;
* start-up: command to the start of round 1.

A size whose capacity estimate does not fit the machine's available memory is skipped
(recorded as such). Writes ``bench/results/NAME.json`` and a plot ``bench/results/NAME.png``.

    .venv/bin/python bench/cost_curve.py --peers 16,64                 # ~3 min
    .venv/bin/python bench/cost_curve.py                               # 16 ... 2,048: the lead's run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import floor
import procstat
from common import (
    QUICKSTART,
    RESULTS,
    launch_cmd,
    machine,
    mean,
    median,
    peer_pids,
    peer_values,
    run_watched,
    save,
    table,
    warn_if_busy,
)
from common import sets as as_set_args

from launch.run import capacity
from protocol import config as config_mod

#: parameters of the models the curve covers (MNIST shapes; docs/DATA_AND_MODELS.md)
PARAMS = {"logreg": 7_850, "lenet": 61_706}


def overrides(model: str, nodes: int, rounds: int, local_steps: int) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "rounds": rounds,
        "model.name": model,
        "train.local_steps": local_steps,
        "eval.every": rounds,
        "data.test_samples": 100,
    }


def measure(model: str, nodes: int, rounds: int, local_steps: int, cores: int) -> dict[str, Any]:
    """One launch of ``nodes`` peers of ``model``: the figures of the module docstring."""
    sets = overrides(model, nodes, rounds, local_steps)
    cfg = config_mod.load(QUICKSTART, as_set_args(sets)[1::2])
    est = capacity.estimate(cfg)
    host = capacity.Host.here()
    if est.memory_mib > host.mem_available_mib:
        return {"model": model, "nodes": nodes, "skipped": capacity.shortfalls(est, host)[0]}
    tmp = Path(tempfile.mkdtemp(prefix="bench-curve-"))
    out = tmp / "run"
    used_before = procstat.machine_used_mib()
    marks: dict[str, Any] = {}

    def on_lines(count: int, now: float, launcher: int) -> None:
        if count >= 1 and "cpu_1" not in marks:
            marks["cpu_1"] = procstat.cpu_seconds(launcher)
        if count >= 2 and "mem" not in marks:
            marks["mem"] = procstat.peers(peer_pids(out))
            marks["machine_used_mib"] = procstat.machine_used_mib()
            marks["launcher"] = procstat.process(launcher)
        if count >= rounds - 1 and "cpu_2" not in marks:
            marks["cpu_2"] = procstat.cpu_seconds(launcher)

    try:
        run = run_watched(launch_cmd(out, sets), out, on_lines, timeout=4 * 3600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steady = run["rounds"][1 : rounds - 1]
    per_peer = {
        key: median(mean(peer_values(r, "timing", key)) * 1e3 for r in steady)
        for key in ("train_cpu_s", "aggregate_cpu_s", "round_cpu_s")
    }
    messaging = per_peer["round_cpu_s"] - per_peer["train_cpu_s"] - per_peer["aggregate_cpu_s"]
    coordinator_ms = (marks["cpu_2"] - marks["cpu_1"]) / (rounds - 2) * 1e3
    round_ms = median(r["round_s"] * 1e3 for r in steady)
    compute_ms = (per_peer["train_cpu_s"] + per_peer["aggregate_cpu_s"]) * nodes / min(cores, nodes)
    grown = marks["machine_used_mib"] - used_before
    return {
        "model": model,
        "nodes": nodes,
        "overrides": sets,
        "round_ms": round_ms,
        "exchange_barrier_ms": round_ms - compute_ms,
        "train_cpu_ms": per_peer["train_cpu_s"],
        "aggregate_cpu_ms": per_peer["aggregate_cpu_s"],
        "messaging_cpu_ms": messaging,
        "barrier_cpu_ms_per_peer": coordinator_ms / nodes,
        "coordinator_cpu_ms_per_round": coordinator_ms,
        "peer_uss_mib": marks["mem"].get("uss_mib"),
        "peer_pss_mib": marks["mem"].get("pss_mib"),
        "peers_sampled": marks["mem"].get("sampled"),
        "launcher_uss_mib": (marks["launcher"] or {}).get("uss", 0) / 1024,
        "machine_grew_mib": grown,
        "machine_grew_mib_per_peer": grown / nodes,
        "estimate_mib": est.memory_mib,
        "setup_s": run["line_at"][0] - run["rounds"][0]["round_s"] - run["start"],
        "command_s": run["command_s"],
        "failed_peers": run["summary"].get("failed_peers"),
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for model, colour in (("logreg", "tab:blue"), ("lenet", "tab:orange")):
        done = [r for r in rows if r["model"] == model and "round_ms" in r]
        n = [r["nodes"] for r in done]
        axes[0].plot(n, [r["round_ms"] for r in done], "o-", color=colour, label=f"byzemu {model}")
        axes[0].plot(n, [r["floor_ms"] for r in done], "o--", color=colour, alpha=0.6, label=f"floor ({model} payload)")
        for key, style in (("messaging_cpu_ms", "o-"), ("barrier_cpu_ms_per_peer", "s:"), ("train_cpu_ms", "^--")):
            axes[1].plot(n, [r[key] for r in done], style, color=colour, label=f"{model}: {key.split('_cpu')[0]}")
        axes[2].plot(n, [r["peer_uss_mib"] for r in done], "o-", color=colour, label=f"{model}: USS per peer")
        axes[2].plot(
            n, [r["machine_grew_mib_per_peer"] for r in done], "s--", color=colour, label=f"{model}: machine / N"
        )
    titles = ("round time (ms)", "CPU per peer and round (ms)", "memory per peer (MiB)")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("peers")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def ab(args: argparse.Namespace) -> None:
    """``--before DIR``: the A/B series (ABBA per size, so that a load trend cancels)."""
    import os

    rows = []
    for label in ("after", "before", "before", "after"):
        for n in (int(x) for x in args.peers.split(",")):
            for model in args.models.split(","):
                if label == "before":
                    os.environ["PYTHONPATH"] = args.before
                else:
                    os.environ.pop("PYTHONPATH", None)
                row = {"label": label, **measure(model, n, args.rounds, args.local_steps, os.cpu_count() or 1)}
                print(label, {k: row.get(k) for k in ("model", "nodes", "round_ms", "coordinator_cpu_ms_per_round")})
                rows.append(row)
    save(args.name, {"machine": machine(), "before": args.before, "runs": rows})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="16,64,256,1024,2048")
    ap.add_argument("--models", default="logreg,lenet")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--local-steps", type=int, default=1)
    ap.add_argument("--floor-rounds", type=int, default=50)
    ap.add_argument("--name", default="cost_curve")
    ap.add_argument(
        "--before",
        default="",
        metavar="DIR",
        help="A/B instead: each size with this tree and with the code in DIR (PYTHONPATH=DIR for the launch), "
        "in the order after, before, before, after; no floor, no plot",
    )
    args = ap.parse_args()
    if args.before:
        ab(args)
        return
    busy = warn_if_busy()
    info = machine()
    cores = int(info.get("cores", 2))
    rows = []
    for n in (int(x) for x in args.peers.split(",")):
        for model in args.models.split(","):
            t0 = time.time()
            row = measure(model, n, args.rounds, args.local_steps, cores)
            if "skipped" not in row:
                fl = floor.run(n, args.floor_rounds, "tcp", params=PARAMS[model])
                row["floor_ms"] = fl["round_ms_median"]
                row["floor_cpu_ms_per_peer"] = fl["peer_cpu_ms_per_round"]
                row["round_over_floor"] = row["round_ms"] / row["floor_ms"]
            print(f"{model} {n} peers ({time.time() - t0:.0f} s): {row}", flush=True)
            rows.append(row)
    keys = [
        "model",
        "nodes",
        "round_ms",
        "floor_ms",
        "exchange_barrier_ms",
        "train_cpu_ms",
        "aggregate_cpu_ms",
        "messaging_cpu_ms",
        "barrier_cpu_ms_per_peer",
        "coordinator_cpu_ms_per_round",
        "peer_uss_mib",
        "peer_pss_mib",
        "machine_grew_mib_per_peer",
        "estimate_mib",
        "machine_grew_mib",
        "setup_s",
    ]
    print()
    print(table(keys, [[r.get(k, r.get("skipped", "")) if k != "model" else r["model"] for k in keys] for r in rows]))
    save(args.name, {"machine": info, **busy, "rounds": args.rounds, "local_steps": args.local_steps, "runs": rows})
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / f"{args.name}.png")


if __name__ == "__main__":
    main()
