"""The in-process reference: every node core in one process, messages through memory.

Same plan, same assignments, same node cores and the same round schedule
(``peer/rounds.py``) as the multi-process run; only delivery differs: each message a
node sends is encoded to its wire frames, decoded and filed into the receiver's
:class:`~peer.inbox.Inbox` at once, and the nodes' round generators run in turn until
each waits for messages not yet sent. For one config and seed it produces bit-identical
models and metrics (``tests/test_reference_equivalence.py``) and the same traffic
counters; its wall time is the baseline against which the emulator's overhead is
measured. Rounds are recorded by the coordinator's :class:`~coordinator.recorder.RoundRecorder`.

The reference is an ideal network with deadlines: every message sent arrives at once,
and a node that waits for a message nobody will send (a withholding attacker's) goes on
as its deadline would let it, once no node can move. Stragglers and held chunks cost it
no time.

Replay (``byzemu reference --replay RUN_DIR``): given a run's delivery log
(``deliveries.jsonl``), each node's round schedule waits for and reads exactly the
senders the logged run's node found, so a run whose deadlines dropped chunks is
reproduced bit for bit (:func:`replay_run`).

A returning peer (``churn.leave``) is restored, in its return round, to the state it had
after its checkpoint round (:meth:`coordinator.churn.Presence.checkpoint_round`), kept in
memory when that round ended: what its new process loads from the checkpoint file in the
multi-process run.
"""

from __future__ import annotations

import copy
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
from peer.rounds import Await, Hold, Send, Step, enter_round, round_steps
from peer.traffic import Traffic
from protocol import config as config_mod
from protocol.codec import ProtocolError, encode
from protocol.config import RunConfig
from protocol.errors import UserError
from protocol.rundir import Deliveries, RunDir, read_deliveries


class MemoryNetwork:
    """Node cores joined through memory: :meth:`run_round` drives every core's round
    schedule and delivers its messages."""

    def __init__(self, cores: list[NodeCore], schedule: GraphSchedule | None = None) -> None:
        #: the graph of every round when it changes (the coordinator sends it in round_start)
        self.schedule = schedule if schedule is not None and schedule.dynamic else None
        self.traffic = {c.node: Traffic(node=c.node) for c in cores}
        self.cores = {c.node: c for c in cores}
        self.inboxes = {c.node: Inbox(c, traffic=self.traffic[c.node]) for c in cores}
        self._expired: set[int] = set()  # nodes whose deadline passed this round
        self._checkpoints: dict[int, dict[str, Any]] = {}  # churn.leave: node -> its checkpoint state

    def run_round(self, round_: int, replay: dict[int, dict[str, list[int]]] | None = None) -> dict[int, RoundResult]:
        """Run round ``round_`` on every core; return each node's result. ``replay``: the
        round's entry of a delivery log (every node's reads)."""
        gens: dict[int, Generator[Step, None, RoundResult]] = {}
        away = self.schedule.presence.absent(round_) if self.schedule is not None else frozenset()
        if self.schedule is not None:  # churn.leave: a returning peer goes on from its checkpoint
            for node in self.schedule.presence.returning(round_):
                self.cores[node].load_state_dict(self._checkpoints.pop(node))
        for node, core in self.cores.items():
            if node in away:  # churn: an away (or crashed) node skips the round, its state untouched
                continue
            graph = self.schedule.view(node, round_) if self.schedule is not None else None
            enter_round(core, self.inboxes[node], round_, graph)
            gens[node] = round_steps(core, self.inboxes[node], round_, replay=replay[node] if replay else None)
        waiting: dict[int, Await | None] = dict.fromkeys(gens)
        results: dict[int, RoundResult] = {}
        self._expired = set()
        while len(results) < len(gens):
            moved = False
            for node in sorted(gens):
                step = waiting[node]
                if node in results or (step is not None and self._missing(node, round_, step)):
                    continue
                moved = True
                waiting[node] = self._advance(node, round_, gens[node], results)
            if not moved:  # what they wait for is never sent: their deadlines pass
                self._expired |= {n for n, w in waiting.items() if w is not None and n not in results}
        for node in gens:
            self.inboxes[node].close(round_)
        if self.schedule is not None:
            presence = self.schedule.presence
            for node in presence.leaves:
                if presence.checkpoint_round(node) == round_:
                    self._checkpoints[node] = copy.deepcopy(self.cores[node].state_dict(round_))
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
            elif isinstance(step, Hold):
                continue  # an ideal network: held chunks arrive in time all the same
            elif self._missing(node, round_, step):
                return step

    def _missing(self, node: int, round_: int, step: Await) -> bool:
        if node in self._expired:
            return False
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
    replay: Deliveries | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` in this process and write the same results folder as a launch;
    ``replay``: a delivery log to follow (:func:`replay_run`)."""
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
    try:
        for round_ in range(1, cfg.rounds + 1):
            t0 = time.monotonic()
            outcome = network.run_round(round_, replay[round_] if replay is not None else None)
            reports = {
                node: {
                    "metrics": r.metrics,
                    "traffic": network.traffic[node].take(),
                    "timing": r.timing,
                    "delivery": r.delivery,
                }
                for node, r in sorted(outcome.items())
            }
            # churn.crash: a crashed peer is failed from its crash round on, as the coordinator marks it
            failed = set(plan.rounds.presence.gone(round_))
            recorder.record(
                round_=round_, reports=reports, failed=failed, t0=t0, t1=time.monotonic(), coordinator_drops={}
            )
    finally:
        recorder.close()
    return results.finish(wall_s=time.monotonic() - wall0)


def replay_config(run_dir: str | Path) -> RunConfig:
    """The config of the finished run in ``run_dir``, for ``byzemu reference --replay``;
    UserError (one line) if the folder has no config, the run did not finish, or its
    delivery log lacks a peer's round (a run of an older byzemu, or one whose peers failed:
    nobody knows what a dead peer read)."""
    run = RunDir(run_dir)
    if not run.config_toml.is_file():
        raise UserError(f"--replay {run.path}: no {run.config_toml.name}; give the results folder of a run")
    cfg = config_mod.load(run.config_toml)
    rounds = len(run.records())
    if rounds < cfg.rounds:
        raise UserError(f"--replay {run.path}: {rounds} of {cfg.rounds} rounds recorded; only a finished run replays")
    log = read_deliveries(run.deliveries)
    for round_ in range(1, cfg.rounds + 1):
        missing = sorted(set(range(cfg.nodes)) - set(log.get(round_, {})))
        if missing:
            raise UserError(
                f"--replay {run.path}: {run.deliveries.name} has no round-{round_} record of peers {missing} "
                "(a run of an older byzemu, or peers that failed): it cannot be replayed"
            )
    return cfg
