"""The in-process reference: every node core in one process, messages through memory.

Same plan, same assignments, same node cores and the same round order as the
multi-process run, with delivery replaced by dictionary look-ups. For one config and seed
it must produce bit-identical models and metrics (``tests/test_reference_equivalence.py``);
its wall time is the baseline against which the emulator's overhead is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from coordinator.plan import build_plan
from coordinator.results import ResultsWriter, round_record
from peer import data
from peer.attacks.base import Knowledge
from peer.core import NodeCore, Payloads
from peer.data import test_subset
from protocol.config import RunConfig


def payload_bytes(payload: dict[int, Any]) -> int:
    return sum(v.nbytes for v in payload.values())


def exchange(cores: list[NodeCore], round_: int) -> dict[int, Payloads]:
    """Train every core and compute what each sends, in the order the runtime guarantees:
    honest payloads first, then each rushing Byzantine peer crafts from its honest
    neighbors' round-t chunks, its colluders' views and (oracle mode) the honest models."""
    for core in cores:
        core.train(round_)
    outgoing: dict[int, Payloads] = {
        c.node: c.outgoing(round_) for c in cores if not c.needs_knowledge(round_)
    }
    rushing = [c for c in cores if c.needs_knowledge(round_)]
    observed = {
        c.node: {j: outgoing[j][c.node] for j in c.honest_neighbors() if c.node in outgoing[j]}
        for c in rushing
    }
    honest_models = {c.node: c.vector for c in cores if not c.assignment.role.byzantine}
    for c in rushing:
        knowledge = Knowledge(
            observed=observed[c.node],
            shared={b: observed[b] for b in c.colluders if b in observed},
            oracle=dict(honest_models) if c.oracle_mode else None,
        )
        outgoing[c.node] = c.outgoing(round_, knowledge)
    return outgoing


def run_reference(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` in this process and write the same results folder as a launch."""
    torch.set_num_threads(1)
    wall0 = time.monotonic()
    plan = build_plan(cfg)
    results = ResultsWriter(out_dir, cfg, mode="reference")
    results.write_topology(plan.topology_json())
    d = cfg.data
    root = Path(d.root) if d.root else None
    train = data.load(d.dataset, root, train=True, synthetic_size=d.synthetic_size, seed=cfg.seed)
    test = data.load(d.dataset, root, train=False, synthetic_size=d.synthetic_size, seed=cfg.seed)
    test_set = test_subset(test, d.test_samples)
    cores = [NodeCore(plan.assignment(i), train_data=train, test_set=test_set) for i in range(cfg.nodes)]
    roles = {i: plan.role(i).label for i in range(cfg.nodes)}
    started = time.monotonic()
    for round_ in range(1, cfg.rounds + 1):
        t0 = time.monotonic()
        outgoing = exchange(cores, round_)
        reports: dict[int, dict[str, Any]] = {}
        for core in cores:
            received = {j: outgoing[j][core.node] for j in core.neighbors if core.node in outgoing[j]}
            result = core.end_round(round_, received)
            sent = outgoing[core.node]
            traffic = {
                "sent_msgs": len(sent),
                "sent_payload_bytes": sum(payload_bytes(p) for p in sent.values()),
                "recv_msgs": len(received),
                "recv_payload_bytes": sum(payload_bytes(p) for p in received.values()),
            }
            reports[core.node] = {"metrics": result.metrics, "traffic": traffic, "timing": result.timing}
        now = time.monotonic()
        record = round_record(
            round_=round_, roles=roles, reports=reports, failed=set(),
            elapsed_s=now - started, round_s=now - t0,
        )
        results.append_round(record)
        if progress is not None:
            progress(record)
    return results.finish(wall_s=time.monotonic() - wall0)
