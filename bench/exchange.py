"""Chunk exchange + barrier: rounds per second and per-round latency with training off.

``configs/quickstart.toml`` (3-regular graph, 8 chunks, 4 per neighbor) with
``train.local_steps=0`` (no SGD; the peer still flattens its model), evaluation only in
the last round on 100 test samples, for several peer counts and two model sizes (LeNet,
61,706 parameters; ResNet-18, 11,172,810). Steady state = rounds 2 .. R-1 (round 1 opens
the TCP connections, round R evaluates).

Figures per configuration:

* ``rounds/s``: steady rounds divided by the time between the ends of round 1 and round
  R-1 as ``rounds.jsonl`` shows them (everything included: round start, exchange,
  aggregation, round done, the coordinator's record write and fsync);
* ``round ms``: median (and 90th percentile) of the coordinator's ``round_s``;
* ``compute ms``: the peers' CPU seconds of flattening and aggregation (``train_cpu_s`` +
  ``aggregate_cpu_s``) summed over peers, divided by the cores (2): the part of a round
  that is the node core's work, not the emulator's;
* ``exch+barrier ms``: ``round ms`` minus ``compute ms``;
* ``msg CPU ms/peer``: a peer's CPU time per round beyond that work (encode, send,
  receive, decode, check, round messages; zmq's I/O thread included);
* bytes per round: the peers' ``sent_payload_bytes`` (chunk values), ``sent_bytes``
  (+ msgpack headers) and the loopback interface's bytes (+ ZMTP framing, TCP/IP headers,
  control plane) between the ends of round 1 and round R-1.

ResNet-18 runs only at peer counts whose memory, extrapolated from the previous run's
per-peer PSS, fits in 80 % of the available memory; the skipped ones are reported with
that estimate.

    .venv/bin/python bench/exchange.py [--lenet 16,64,128] [--resnet 16,32]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import measure_launch, mem_available_mib, save, table, warn_if_busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lenet", default="16,64,128", help="peer counts for LeNet")
    ap.add_argument("--resnet", default="16,32", help="peer counts for ResNet-18")
    ap.add_argument("--lenet-rounds", type=int, default=40)
    ap.add_argument("--resnet-rounds", type=int, default=6)
    ap.add_argument(
        "--curve",
        default="off",
        help="runtime.curve values to measure each size with, e.g. off,on (CURVE cost); "
        "with more than off the results go to exchange_curve.json",
    )
    args = ap.parse_args()
    info = warn_if_busy()
    cores = info["cores"] or 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    curves = [c for c in args.curve.split(",") if c]
    plan = [("lenet", int(n), args.lenet_rounds, c) for n in args.lenet.split(",") if n for c in curves]
    plan += [("resnet18", int(n), args.resnet_rounds, c) for n in args.resnet.split(",") if n for c in curves]
    try:
        for i, (model, nodes, rounds, curve) in enumerate(plan):
            prev = [r for r in runs if r["model"] == model and "peer_pss_max_mib" in r]
            if prev:
                need = prev[-1]["peer_pss_max_mib"] * 1.3 * nodes
                avail = mem_available_mib()
                if need > 0.8 * avail:
                    skipped.append({"model": model, "nodes": nodes, "need_mib": need, "available_mib": avail})
                    print(
                        f"{model} {nodes} peers: skipped, needs ~{need / 1024:.1f} GiB "
                        f"(1.3 x {prev[-1]['peer_pss_max_mib']:.0f} MiB per peer), "
                        f"{avail / 1024:.1f} GiB available",
                        flush=True,
                    )
                    continue
            overrides = {
                "nodes": nodes,
                "rounds": rounds,
                "model.name": model,
                "train.local_steps": 0,
                "eval.every": rounds,
                "data.test_samples": 100,
                "runtime.curve": curve,
            }
            r = {
                "model": model,
                "curve": curve,
                **measure_launch(overrides, tmp / f"{i}-{model}-{nodes}-{curve}", cores),
            }  # numbered: repeats
            r.pop("summary", None)
            runs.append(r)
            print(
                f"{model} {nodes} peers, curve {curve}: {r['rounds_per_s']:.1f} rounds/s, "
                f"round {r['round_ms_median']:.1f} ms, "
                f"exchange+barrier {r['exchange_barrier_ms']:.1f} ms",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    heads = [
        "model",
        "curve",
        "peers",
        "rounds/s",
        "round ms",
        "p90 ms",
        "compute ms",
        "exch+barrier ms",
        "msg CPU ms/peer",
        "payload MB/round",
        "sent MB/round",
        "loopback MB/round",
        "PSS MiB/peer",
    ]
    rows = [
        [
            r["model"],
            r["curve"],
            r["nodes"],
            r["rounds_per_s"],
            r["round_ms_median"],
            r["round_ms_p90"],
            r["compute_ms"],
            r["exchange_barrier_ms"],
            r["msg_cpu_ms_per_peer"],
            r["payload_bytes_per_round"] / 1e6,
            r["sent_bytes_per_round"] / 1e6,
            r["lo_bytes_per_round"] / 1e6,
            r.get("peer_pss_mib", float("nan")),
        ]
        for r in runs
    ]
    print()
    print(table(heads, rows))
    save(
        "exchange" if curves == ["off"] else "exchange_curve",
        {"machine": info, "config": "configs/quickstart.toml", "runs": runs, "skipped": skipped},
    )


if __name__ == "__main__":
    main()
