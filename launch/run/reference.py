"""The in-process reference: every node core in one process, messages through memory.

Same plan, same assignments, same node cores and the same round schedule
(``peer/rounds.py``) as the multi-process run; only delivery differs: each message a
node sends is encoded to its wire frames, decoded and filed into the receiver's
:class:`~peer.inbox.Inbox` at once, and the nodes' round generators run in turn until
each waits for messages not yet sent. For one config and seed it produces bit-identical
models and metrics (``tests/test_reference_equivalence.py``) and the same traffic
counters; its wall time is the baseline against which the emulator's overhead is
measured. Rounds are recorded by the coordinator's :class:`~coordinator.recorder.RoundRecorder`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import torch

from coordinator.dynamics import GraphSchedule
from coordinator.plan import build_plan
from coordinator.recorder import RoundRecorder
from coordinator.results import ResultsWriter
from peer import data
from peer.core import NodeCore, RoundResult
from peer.data import test_subset
from peer.inbox import Inbox
from peer.rounds import Await, Send, Step, enter_round, round_steps
from peer.traffic import Traffic
from protocol.codec import ProtocolError, encode
from protocol.config import RunConfig


class MemoryNetwork:
    """Node cores joined through memory: :meth:`run_round` drives every core's round
    schedule and delivers its messages."""

    def __init__(self, cores: list[NodeCore], schedule: GraphSchedule | None = None) -> None:
        self.cores = {c.node: c for c in cores}
        #: the graph of every round when it changes (the coordinator sends it in round_start)
        self.schedule = schedule if schedule is not None and schedule.dynamic else None
        self.inboxes = {c.node: Inbox(c) for c in cores}
        self.traffic = {c.node: Traffic(node=c.node) for c in cores}

    def run_round(self, round_: int) -> dict[int, RoundResult]:
        """Run round ``round_`` on every core; return each node's result."""
        gens: dict[int, Generator[Step, None, RoundResult]] = {}
        away = self.schedule.presence.away(round_) if self.schedule is not None else frozenset()
        for node, core in self.cores.items():
            if node in away:  # churn: an away node skips the round, its state untouched
                continue
            graph = self.schedule.view(node, round_) if self.schedule is not None else None
            enter_round(core, self.inboxes[node], round_, graph)
            gens[node] = round_steps(core, self.inboxes[node], round_)
        waiting: dict[int, Await | None] = dict.fromkeys(gens)
        results: dict[int, RoundResult] = {}
        while len(results) < len(gens):
            moved = False
            for node in sorted(gens):
                step = waiting[node]
                if node in results or (step is not None and self._missing(node, round_, step)):
                    continue
                moved = True
                waiting[node] = self._advance(node, round_, gens[node], results)
            if not moved:
                stuck = {
                    n: (w.kind, sorted(w.senders)) for n, w in waiting.items() if w is not None and n not in results
                }
                raise RuntimeError(f"round {round_}: the round schedule waits for messages never sent: {stuck}")
        for node in gens:
            self.inboxes[node].close(round_)
        return results

    def _advance(
        self, node: int, round_: int, gen: Generator[Step, None, RoundResult], results: dict[int, RoundResult]
    ) -> Await | None:
        """Run ``node``'s schedule until it waits for a message not yet delivered (return
        that step) or ends (its result goes into ``results``)."""
        while True:
            try:
                step = next(gen)
            except StopIteration as end:
                results[node] = end.value
                return None
            if isinstance(step, Send):
                self._deliver(node, step)
            elif self._missing(node, round_, step):
                return step

    def _missing(self, node: int, round_: int, step: Await) -> bool:
        return bool(self.inboxes[node].missing(step.kind, round_, step.senders))

    def _deliver(self, src: int, step: Send) -> None:
        """Encode, count, decode and file one message, as the sockets would carry it."""
        frames = encode(step.message)
        self.traffic[src].count_sent(frames)
        receiver = self.traffic[step.to]
        try:
            msg = self.cores[step.to].chunk_check.decode_data(frames)
            self.inboxes[step.to].accept(msg)
        except ProtocolError as exc:
            receiver.drop(exc.reason, f"data from {src}: {exc.detail}")
            return
        receiver.count_received(frames)


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
    network = MemoryNetwork(
        [NodeCore(plan.assignment(i), train_data=train, test_set=test_set) for i in range(cfg.nodes)], plan.rounds
    )
    recorder = RoundRecorder(plan=plan, results=results, started=time.monotonic(), progress=progress)
    for round_ in range(1, cfg.rounds + 1):
        t0 = time.monotonic()
        outcome = network.run_round(round_)
        reports = {
            node: {"metrics": r.metrics, "traffic": network.traffic[node].take(), "timing": r.timing}
            for node, r in sorted(outcome.items())
        }
        recorder.record(round_=round_, reports=reports, failed=set(), t0=t0, t1=time.monotonic(), coordinator_drops={})
    return results.finish(wall_s=time.monotonic() - wall0)
