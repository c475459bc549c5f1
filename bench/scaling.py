"""Round time as the number of peers grows (fixed work per peer) and as the model grows.

Both sweeps run ``byzemu launch`` on ``configs/quickstart.toml`` (3-regular graph, MNIST,
8 chunks, 4 per neighbor) and report steady-state rounds (2 .. R-1; round 1 opens the
connections, round R evaluates on 1,000 test samples); figures as in
``bench/exchange.py``, plus:

* ``ideal ms``: the peers' CPU seconds of training and aggregation summed over peers and
  divided by the cores: the round time of a perfect emulator on this machine;
* ``efficiency``: ideal / measured round time.

Peers axis: LeNet, ``train.local_steps=10`` (batch 32) per peer per round whatever the
peer count, so the total work grows linearly with the peers and on 2 cores so must the
round time. Model axis: 16 peers, ``train.local_steps=2`` (ResNet-18 does about one
second of CPU per step). Last, one complete quickstart run with ``--full`` peers (128:
10 rounds, 10 local steps, evaluated on the full test set in round 10).

    .venv/bin/python bench/scaling.py [--peers 8,16,32,64,128] [--models logreg,mlp,lenet,cnn_guo,cnn_masuda,resnet18]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import measure_launch, save, table, warn_if_busy

PARAMS = {  # on MNIST (1x28x28, 10 classes), from peer/models.py's docstrings / param_count
    "logreg": 7_850,
    "mlp": 50_890,
    "lenet": 61_706,
    "cnn_guo": 1_384_586,
    "cnn_masuda": 1_663_370,
    "resnet18": 11_172_810,
}


def _row(r: dict[str, Any], cores: int) -> dict[str, Any]:
    ideal = r["compute_ms"]  # already (train + aggregate CPU) / cores
    return {
        **r,
        "ideal_ms": ideal,
        "efficiency": ideal / r["round_ms_median"] if r["round_ms_median"] else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="8,16,32,64,128")
    ap.add_argument("--models", default="logreg,mlp,lenet,cnn_guo,cnn_masuda,resnet18")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--model-rounds", type=int, default=5)
    ap.add_argument(
        "--full",
        type=int,
        default=128,
        help="peers of one complete quickstart run (10 rounds, full test set) at the end; 0: none",
    )
    ap.add_argument("--name", default="scaling", help="results file bench/results/NAME.json")
    args = ap.parse_args()
    info = warn_if_busy()
    cores = info["cores"] or 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    peers_runs, model_runs = [], []
    full: dict[str, Any] = {}
    try:
        for n in (int(x) for x in args.peers.split(",") if x):
            o = {
                "nodes": n,
                "rounds": args.rounds,
                "train.local_steps": 10,
                "eval.every": args.rounds,
                "data.test_samples": 1000,
            }
            r = _row(measure_launch(o, tmp / f"peers-{n}", cores), cores)
            peers_runs.append(r)
            print(f"{n} peers: round {r['round_ms_median']:.0f} ms (ideal {r['ideal_ms']:.0f} ms)", flush=True)
        for model in (x for x in args.models.split(",") if x):
            rounds = 4 if model == "resnet18" else args.model_rounds
            o = {
                "nodes": 16,
                "rounds": rounds,
                "model.name": model,
                "train.local_steps": 2,
                "eval.every": rounds,
                "data.test_samples": 1000,
            }
            r = {
                "model": model,
                "params": PARAMS.get(model),
                **_row(measure_launch(o, tmp / f"model-{model}", cores), cores),
            }
            model_runs.append(r)
            print(f"{model}: round {r['round_ms_median']:.0f} ms (ideal {r['ideal_ms']:.0f} ms)", flush=True)
        if args.full:
            o = {"nodes": args.full, "rounds": 10, "eval.every": 10}
            r = measure_launch(o, tmp / "full", cores)
            acc = r["summary"].get("final_accuracy") or {}
            full = {
                "nodes": args.full,
                "rounds": 10,
                "command_s": r["command_s"],
                "wall_s": r["summary"]["wall_s"],
                "setup_s": r["setup_s"],
                "round_ms_median": r["round_ms_median"],
                "accuracy_mean": acc.get("mean"),
                "accuracy_worst": acc.get("worst"),
                "honest_n": acc.get("n"),
                "failed_peers": r["summary"].get("failed_peers"),
                "peers_pss_total_mib": r.get("peers_pss_total_mib"),
                "peer_pss_mib": r.get("peer_pss_mib"),
                "log_lines": r.get("log_lines"),
                "log_tail": r.get("log_tail"),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if peers_runs:
        print("\nPeers (LeNet, 10 local steps per peer per round):\n")
        print(
            table(
                [
                    "peers",
                    "round ms",
                    "ideal ms",
                    "efficiency",
                    "rounds/s",
                    "train CPU ms/peer",
                    "aggregate CPU ms/peer",
                    "exch+barrier ms",
                    "msg CPU ms/peer",
                    "start-up s",
                    "PSS MiB/peer",
                ],
                [
                    [
                        r["nodes"],
                        r["round_ms_median"],
                        r["ideal_ms"],
                        r["efficiency"],
                        r["rounds_per_s"],
                        r["peer_train_cpu_ms"],
                        r["peer_aggregate_cpu_ms"],
                        r["exchange_barrier_ms"],
                        r["msg_cpu_ms_per_peer"],
                        r["setup_s"],
                        r.get("peer_pss_mib", float("nan")),
                    ]
                    for r in peers_runs
                ],
            )
        )
    if model_runs:
        print("\nModels (16 peers, 2 local steps per round):\n")
        print(
            table(
                [
                    "model",
                    "params",
                    "round ms",
                    "ideal ms",
                    "efficiency",
                    "train CPU ms/peer",
                    "aggregate CPU ms/peer",
                    "exch+barrier ms",
                    "msg CPU ms/peer",
                    "payload MB/round",
                    "PSS MiB/peer",
                ],
                [
                    [
                        r["model"],
                        r["params"],
                        r["round_ms_median"],
                        r["ideal_ms"],
                        r["efficiency"],
                        r["peer_train_cpu_ms"],
                        r["peer_aggregate_cpu_ms"],
                        r["exchange_barrier_ms"],
                        r["msg_cpu_ms_per_peer"],
                        r["payload_bytes_per_round"] / 1e6,
                        r.get("peer_pss_mib", float("nan")),
                    ]
                    for r in model_runs
                ],
            )
        )
    if full:
        print(
            f"\nComplete run, {full['nodes']} peers, 10 rounds, full test set: command {full['command_s']:.1f} s, "
            f"round 1 at {full['setup_s']:.1f} s, median round {full['round_ms_median'] / 1e3:.2f} s, honest accuracy "
            f"{full['accuracy_mean']:.4f} (worst {full['accuracy_worst']:.4f}, {full['honest_n']} peers), "
            f"failed {full['failed_peers']}, peers' PSS {full['peers_pss_total_mib'] / 1024:.1f} GiB in all"
        )
    for r in peers_runs + model_runs:
        r.pop("summary", None)
    save(
        args.name,
        {"machine": info, "config": "configs/quickstart.toml", "peers": peers_runs, "models": model_runs, "full": full},
    )


if __name__ == "__main__":
    main()
