"""Aggregation time per round of every registered defense as the received chunks grow.

In-process microbenchmark of the node core's aggregation step, exactly as a peer runs
it: a :class:`~peer.core.NodeCore` for node 0 of a complete graph of m + 1 peers
(synthetic 28x28 data, the model of ``--model``, 8 chunks), and ``NodeCore.end_round``
called with m neighbors each sending every chunk index, so every index has m received
payloads (plus the own chunk). The payloads are the own model plus seeded Gaussian noise
(sigma 0.01, a fresh draw per neighbor and round). The figure is ``aggregate_cpu_s``, the
CPU time ``end_round`` reports for the aggregation (every defense call for the 8
indices, ``begin_round`` and the loss probes of loss-based rules included), median over
``--repeats`` rounds. One thread, as in a peer.

    .venv/bin/python bench/defense_cost.py [--m 2,4,8,16,32] [--model lenet] [--repeats 5] [--name NAME]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from common import median, save, table, warn_if_busy


def cost(defense: str, m: int, model: str, repeats: int) -> dict[str, Any]:
    import torch

    from coordinator.plan import build_plan
    from peer import data
    from peer.core import NodeCore
    from peer.data import test_subset
    from protocol.config import from_dict

    cfg = from_dict(
        {
            "name": "defense-cost",
            "seed": 3,
            "nodes": m + 1,
            "rounds": 10_000,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "root": "", "synthetic_size": 64 * (m + 1), "test_samples": 10},
            "model": {"name": model},
            "chunks": {"count": 8, "per_neighbor": 4},
            "defense": {"name": defense},
            "eval": {"every": 10_000},
        }
    )
    plan = build_plan(cfg)
    train = data.load("synthetic", None, train=True, synthetic_size=cfg.data.synthetic_size, seed=cfg.seed)
    test = data.load("synthetic", None, train=False, synthetic_size=cfg.data.synthetic_size, seed=cfg.seed)
    torch.manual_seed(0)
    core = NodeCore(plan.assignment(0), train_data=train, test_set=test_subset(test, 10))
    rng = np.random.default_rng(7)
    cpu, wall = [], []
    for round_ in range(1, repeats + 1):
        received = {}
        for j in core.neighbors:
            noisy = (core.vector + rng.normal(0, 0.01, core.vector.size)).astype(np.float32)
            received[j] = {c: noisy[lo:hi].copy() for c, (lo, hi) in enumerate(core.bounds)}
        t0 = time.perf_counter()
        result = core.end_round(round_, received)
        wall.append(time.perf_counter() - t0)
        cpu.append(result.timing["aggregate_cpu_s"])
        assert result.metrics["chunks_received"] == m * len(core.bounds)
    return {"defense": defense, "m": m, "aggregate_cpu_ms": median(cpu) * 1e3, "end_round_ms": median(wall) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", default="2,4,8,16,32", help="received payloads per chunk index")
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--defenses", default="", help="comma-separated subset (default: every registered defense)")
    ap.add_argument("--name", default="", help="results file name (default defense_cost_MODEL)")
    args = ap.parse_args()
    info = warn_if_busy()
    import torch

    torch.set_num_threads(1)
    from peer.defenses import DEFENSES

    names = [d for d in args.defenses.split(",") if d] or sorted(DEFENSES.names())
    ms = [int(x) for x in args.m.split(",")]
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for name in names:
        for m in ms:
            try:
                r = cost(name, m, args.model, args.repeats)
            except Exception as exc:  # a rule that cannot run with these inputs: say so
                errors[f"{name}/m={m}"] = f"{type(exc).__name__}: {exc}"
                continue
            results.append(r)
        done = [r for r in results if r["defense"] == name]
        print(f"{name:20s} " + "  ".join(f"m={r['m']}: {r['aggregate_cpu_ms']:.2f} ms" for r in done), flush=True)
    by = {(r["defense"], r["m"]): r["aggregate_cpu_ms"] for r in results}
    print(f"\nAggregation CPU ms per round ({args.model}, 8 chunks, m payloads per chunk index):\n")
    print(
        table(["defense", *(f"m={m}" for m in ms)], [[n, *(by.get((n, m), float("nan")) for m in ms)] for n in names])
    )
    for k, v in errors.items():
        print(f"error {k}: {v}")
    save(
        args.name or f"defense_cost_{args.model}",
        {"machine": info, "model": args.model, "repeats": args.repeats, "results": results, "errors": errors},
    )


if __name__ == "__main__":
    main()
