"""The compute floor: a node's train step, evaluation and aggregation against bare torch.

In one process and on one thread (as in a peer), alternating block by block so that both
sides see the same machine load: the node side goes through the real code paths of
node 0 of ``configs/quickstart.toml`` (MNIST, LeNet, batch 32, 10 local steps, 8 chunks,
CDL, 3 neighbors sending 4 chunks each), the bare side does the same work with nothing
but torch:

* **train step**: ``NodeCore.train`` (10 SGD steps on the node's shard, flattening the
  model after them), CPU per step; bare: the same model and shard, batches from a seeded
  permutation, ``F.cross_entropy`` + ``backward`` + ``torch.optim.SGD.step``.
* **evaluation**: the ``eval_cpu_s`` that ``NodeCore.end_round`` reports on an evaluation
  round (the full 10,000-image test set, pre-normalised once and shared, eval.batch_size
  1000); bare: ``model.eval()``, ``torch.inference_mode()``, forward passes over the same
  tensors with the loss summed and the argmax counted, at batch sizes 128, 1,000 and
  10,000; the floor is the fastest of the three in each block.
* **aggregation**: the ``aggregate_cpu_s`` of ``NodeCore.end_round`` with 3 neighbors'
  real payloads (their ``NodeCore.outgoing`` for node 0); bare: per chunk index
  ``torch.stack([own, *received]).mean(0)`` into a copy of the vector, then
  ``vector_to_parameters``.

Ratios are node / bare per block, median over ``--repeats`` blocks. Last, the same
``NodeCore.train`` in ``--concurrent`` forked processes at once (as the peers of one
machine train) against one process alone: the CPU a step costs when processes share
the cores.

    .venv/bin/python bench/compute_floor.py [--repeats 7] [--steps 50] [--concurrent 16]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from common import QUICKSTART, median, save, table, warn_if_busy


def _cpu() -> float:
    return time.process_time()


class Bench:
    """Node 0 of the quickstart (and its neighbors' cores, for real payloads), and a bare
    torch twin of its model on the same data."""

    def __init__(self) -> None:
        import torch

        from coordinator.plan import build_plan
        from peer import data as datasets
        from peer.core import NodeCore
        from peer.models import build_model
        from protocol.config import load

        cfg = load(QUICKSTART, ["eval.every=2", "rounds=100000"])
        self.cfg = cfg
        plan = build_plan(cfg)
        d = cfg.data
        from pathlib import Path

        root = Path(d.root)
        train = datasets.load(d.dataset, root, train=True)
        test = datasets.load(d.dataset, root, train=False)
        self.test_set = datasets.test_subset(test, d.test_samples)
        self.core = NodeCore(plan.assignment(0), train_data=train, test_set=self.test_set)
        neighbors = [
            NodeCore(plan.assignment(j), train_data=train, test_set=self.test_set) for j in self.core.neighbors
        ]
        self.neighbor_cores = neighbors
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model.name, in_channels=1, image_size=28, num_classes=10)
        t = cfg.train
        self.opt = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        self.images, self.labels = self.core.trainer.images, self.core.trainer.labels
        self.gen = torch.Generator().manual_seed(5)
        self.round = 0

    # ------------------------------------------------------------------ train

    def node_train(self, steps: int) -> float:
        """CPU seconds per step of NodeCore.train (local_steps per call)."""
        per_call = self.cfg.train.local_steps
        calls = max(1, steps // per_call)
        cpu = 0.0
        for _ in range(calls):
            self.round += 1
            t0 = _cpu()
            self.core.train(2 * self.round + 1)  # odd rounds: no evaluation
            cpu += _cpu() - t0
        return cpu / (calls * per_call)

    def bare_train(self, steps: int) -> float:
        import torch
        import torch.nn.functional as F

        model, opt, bs = self.model, self.opt, self.cfg.train.batch_size
        model.train()
        order = torch.randperm(len(self.labels), generator=self.gen)
        t0 = _cpu()
        for i in range(steps):
            lo = (i * bs) % (len(order) - bs)
            idx = order[lo : lo + bs]
            x, y = self.images[idx], self.labels[idx]
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return (_cpu() - t0) / steps

    # ------------------------------------------------------------------ evaluation

    def node_eval(self) -> float:
        self.round += 1
        result = self.core.end_round(2 * self.round, {})  # even rounds evaluate
        return float(result.timing["eval_cpu_s"])

    def bare_eval(self, batch: int) -> float:
        import torch
        import torch.nn.functional as F

        model = self.model
        model.eval()
        x_all, y_all = self.test_set
        t0 = _cpu()
        correct, loss = 0, 0.0
        with torch.inference_mode():
            for lo in range(0, len(y_all), batch):
                out = model(x_all[lo : lo + batch])
                y = y_all[lo : lo + batch]
                loss += float(F.cross_entropy(out, y, reduction="sum"))
                correct += int((out.argmax(1) == y).sum())
        return _cpu() - t0

    # ------------------------------------------------------------------ aggregation

    def received(self) -> dict[int, dict[int, Any]]:
        r = 2 * self.round + 1
        return {nb.node: nb.outgoing(r).get(0, {}) for nb in self.neighbor_cores}

    def node_aggregate(self, received: dict[int, dict[int, Any]]) -> float:
        self.round += 1
        result = self.core.end_round(2 * self.round + 1, received)
        return float(result.timing["aggregate_cpu_s"])

    def bare_aggregate(self, received: dict[int, dict[int, Any]]) -> float:
        import torch

        vector = self.core.vector
        params = list(self.model.parameters())
        t0 = _cpu()
        new = torch.from_numpy(vector.copy())
        own = torch.from_numpy(vector)
        for c, (lo, hi) in enumerate(self.core.bounds):
            got = [torch.from_numpy(p[c]) for p in received.values() if c in p]
            if got:
                new[lo:hi] = torch.stack([own[lo:hi], *got]).mean(0)
        torch.nn.utils.vector_to_parameters(new, params)
        return _cpu() - t0


def concurrent_train(b: Bench, processes: int, steps: int) -> dict[str, float]:
    """CPU per step of ``NodeCore.train`` in ``processes`` forked copies of node 0 training
    at once (as the peers of one machine do), against one process alone, back to back."""
    import os

    def in_children(n: int) -> list[float]:
        r, w = os.pipe()
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                os.close(r)
                os.write(w, f"{b.node_train(steps)}\n".encode())
                os._exit(0)
            pids.append(pid)
        os.close(w)
        with os.fdopen(r) as f:
            values = [float(x) for x in f.read().split()]
        for pid in pids:
            os.waitpid(pid, 0)
        return values

    alone = median(in_children(1)[0] for _ in range(3))
    together = in_children(processes)
    return {
        "processes": processes,
        "alone_ms": alone * 1e3,
        "together_ms": median(together) * 1e3,
        "inflation": median(together) / alone,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="alternating node/bare blocks")
    ap.add_argument("--steps", type=int, default=50, help="train steps per block and side")
    ap.add_argument("--aggregations", type=int, default=50, help="aggregations per block and side")
    ap.add_argument(
        "--concurrent", type=int, default=16, help="then: this many processes training at once vs one alone (0: skip)"
    )
    args = ap.parse_args()
    info = warn_if_busy()
    import torch

    torch.set_num_threads(1)
    b = Bench()
    # warm-up: first calls allocate and pick kernels
    b.node_train(20), b.bare_train(20), b.node_eval(), b.bare_eval(128)
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        row: dict[str, Any] = {"block": rep}
        row["node_train_ms"] = b.node_train(args.steps) * 1e3
        row["bare_train_ms"] = b.bare_train(args.steps) * 1e3
        row["node_eval_s"] = b.node_eval()
        bare = {bs: b.bare_eval(bs) for bs in (128, 1000, 10_000)}
        row.update({f"bare_eval_{bs}_s": v for bs, v in bare.items()})
        row["bare_eval_s"] = min(bare.values())
        received = b.received()
        node_agg = [b.node_aggregate(received) for _ in range(args.aggregations)]
        bare_agg = [b.bare_aggregate(received) for _ in range(args.aggregations)]
        row["node_aggregate_ms"] = median(node_agg) * 1e3
        row["bare_aggregate_ms"] = median(bare_agg) * 1e3
        row["train_ratio"] = row["node_train_ms"] / row["bare_train_ms"]
        row["eval_ratio"] = row["node_eval_s"] / row["bare_eval_s"]
        row["aggregate_ratio"] = row["node_aggregate_ms"] / row["bare_aggregate_ms"]
        rows.append(row)
        print(
            f"block {rep}: train {row['node_train_ms']:.2f} / {row['bare_train_ms']:.2f} ms per step, "
            f"eval {row['node_eval_s']:.3f} / {row['bare_eval_s']:.3f} s, "
            f"aggregate {row['node_aggregate_ms']:.3f} / {row['bare_aggregate_ms']:.3f} ms",
            flush=True,
        )
    med = {k: median(r[k] for r in rows) for k in rows[0] if k != "block"}
    print("\nNode vs bare torch, one thread, medians over blocks (node / bare = ratio):\n")
    print(
        table(
            ["work", "node", "bare torch", "ratio (median of blocks)"],
            [
                ["train step, batch 32 (ms CPU)", med["node_train_ms"], med["bare_train_ms"], med["train_ratio"]],
                ["evaluation, 10,000 images (s CPU)", med["node_eval_s"], med["bare_eval_s"], med["eval_ratio"]],
                [
                    "aggregation, CDL, 3 x 4 chunks (ms CPU)",
                    med["node_aggregate_ms"],
                    med["bare_aggregate_ms"],
                    med["aggregate_ratio"],
                ],
            ],
        )
    )
    print(
        f"\nbare evaluation by batch size (s): 128 {med['bare_eval_128_s']:.3f}, "
        f"1,000 {med['bare_eval_1000_s']:.3f}, 10,000 {med['bare_eval_10000_s']:.3f}"
    )
    contention = concurrent_train(b, args.concurrent, args.steps) if args.concurrent else {}
    if contention:
        print(
            f"\nNodeCore.train CPU per step: one process alone {contention['alone_ms']:.2f} ms, "
            f"{args.concurrent} processes at once {contention['together_ms']:.2f} ms "
            f"({contention['inflation']:.2f}x)"
        )
    save(
        "compute_floor", {"machine": info, "args": vars(args), "blocks": rows, "medians": med, "contention": contention}
    )


if __name__ == "__main__":
    main()
