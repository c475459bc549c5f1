"""The schedule of one round, written once: what a node sends and what it waits for.

:func:`round_steps` is a generator over one node's round t. It does the node's work
(train, craft, aggregate, evaluate: :class:`~peer.core.NodeCore`) and yields the
transport's part as steps:

* :class:`Send` ``(to, message)``: hand ``message`` to node ``to``;
* :class:`Await` ``(kind, senders)``: wait until the round-t ``kind`` messages of
  ``senders`` are in the node's :class:`~peer.inbox.Inbox` (or, for the ZeroMQ runtime,
  until the round's deadline or those senders fail); the driver then resumes the
  generator with nothing, and the schedule reads what arrived from the inbox.

It returns the round's :class:`~peer.core.RoundResult`. A driver only delivers: the ZeroMQ
runtime (``peer/runtime.py``) sends over sockets and polls, the in-process reference
(``launch/run/reference.py``) files each message into the receiver's inbox and runs the
nodes' generators in turn until each waits. Both therefore follow the same order, which
docs/PROTOCOL.md (*Round order with a rushing attacker*) specifies:

0. churn.join: a node sends its current model to the peers joining in round t (its
   ``welcome``), and a joining node waits for its sources' models and takes them;
1. train; in oracle mode an honest node sends its trained model to every Byzantine peer;
2. an honest node (or a Byzantine one whose attack does not need knowledge) sends its
   chunks at once;
3. a rushing Byzantine node (its attack crafts from current benign chunks) first waits
   for its honest neighbors' round-t chunks (and, in oracle mode, every honest model),
   sends what it observed to each colluder, waits for their views, and only then crafts
   and sends its chunks (honest nodes never wait before sending, so this cannot
   deadlock);
4. every node waits for its neighbors' chunks, then aggregates and evaluates.

Timing (``exchange_s``: from the end of training to the last chunk in; ``round_s`` and
``round_cpu_s``: the whole round) is measured here, the same for both drivers.

A Byzantine peer's timing behaviour (docs/ATTACKS.md, *Timing behaviours*) is part of the
schedule too: its attack may send to some neighbors only (:meth:`Attack.recipients`),
hold its chunks until a fraction of the deadline has passed (a :class:`Hold` step, which
the ZeroMQ runtime waits out and the in-process reference, an ideal network, skips) and
send every chunk message several times (``Attack.copies``).

What the node read (*delivery*). Each read of the inbox is labelled (``observed``:
the honest chunks a rushing peer crafts from; ``oracle``; ``collude``; ``chunk``: the
chunks it aggregates) and the senders it found go into ``RoundResult.delivery``, which
the run folder's delivery log keeps (docs/RESULTS.md). Given that log (``replay``), the
schedule waits for and reads exactly those senders, so the in-process reference
reproduces a run whose deadlines dropped chunks (``byzemu reference --replay``). The
round's metrics say what the deadline did: ``candidates`` (received payloads per chunk
index) and ``missed`` (neighbors whose chunks were not in when the node aggregated).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from peer.attacks.base import Knowledge
from peer.core import NodeCore, RoundResult
from peer.inbox import Inbox
from protocol import messages as m
from protocol.graph import RoundGraph


@dataclass(frozen=True)
class Send:
    """Hand ``message`` to node ``to`` (a driver skips nodes it knows failed)."""

    to: int
    message: m.Message


@dataclass(frozen=True)
class Await:
    """Wait for the round's ``kind`` messages of every node in ``senders``."""

    kind: str
    senders: frozenset[int]


@dataclass(frozen=True)
class Hold:
    """Send nothing until fraction ``at`` of ``runtime.chunk_timeout`` has passed since
    the end of local training (an attack's timing; the reference does not wait)."""

    at: float


Step = Send | Await | Hold

#: the labels of a node's inbox reads, in the order a round makes them
READS = ("join", "observed", "oracle", "collude", "chunk")

_WITHHOLD_SALT = 0x574844  # "WHD"


class _Reads:
    """The node's reads of its inbox in one round: what it found (``delivered``) and, when
    replaying a delivery log, only what the logged run found."""

    def __init__(self, inbox: Inbox, round_: int, replay: Mapping[str, Sequence[int]] | None) -> None:
        self.inbox, self.round, self.replay = inbox, round_, replay
        self.delivered: dict[str, list[int]] = {}

    def expect(self, label: str, senders: frozenset[int]) -> frozenset[int]:
        """The senders to wait for under ``label``: ``senders``, or those the log names."""
        return senders if self.replay is None else senders & frozenset(self.replay.get(label, ()))

    def read(self, label: str, kind: str, senders: frozenset[int]) -> dict[int, Any]:
        found = self.inbox.arrived(kind, self.round)
        allowed = self.expect(label, senders)
        got = {j: v for j, v in found.items() if j in allowed}
        self.delivered[label] = sorted(got)
        return got


def enter_round(core: NodeCore, inbox: Inbox, round_: int, graph: RoundGraph | None) -> None:
    """Round ``round_`` starts (both drivers call this before :func:`round_steps`): the
    inbox's round window moves on and, in a run whose graph changes, the node takes the
    round's graph (whom it sends to, whom it awaits) and the inbox learns whose chunks it
    accepts in this round and the next."""
    inbox.start(round_)
    if graph is not None:
        core.use_graph(graph)
        inbox.expect(round_, graph.receive_from)
        inbox.upcoming = graph.next_round  # churn: the node's next round may be later than round_ + 1
        inbox.expect(graph.next_round or round_ + 1, graph.next_receive_from)


def round_steps(
    core: NodeCore, inbox: Inbox, round_: int, *, replay: Mapping[str, Sequence[int]] | None = None
) -> Generator[Step, None, RoundResult]:
    """One node's round ``round_`` (see the module docstring); the driver calls
    :func:`enter_round` before and ``inbox.close(round_)`` after. ``replay``: this node's
    entry of a delivery log for the round (the senders each read found)."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    node = core.node
    reads = _Reads(inbox, round_, replay)
    # churn.join: the current (untrained) model goes to the peers joining now, and a
    # joining peer takes its sources' models before it trains
    for j in core.welcome:
        yield Send(j, m.model(src=node, round_=round_, vector=core.vector))
    if round_ == inbox.first and core.assignment.join_from:
        sources = frozenset(core.assignment.join_from)
        yield Await(m.MODEL, reads.expect("join", sources))
        core.take_model(reads.read("join", m.MODEL, sources))
    core.train(round_)
    t_send = time.perf_counter()
    for j in core.taking_part(core.assignment.oracle_targets):
        yield Send(j, m.oracle(src=node, round_=round_, vector=core.vector))
    knowledge = None
    if core.needs_knowledge(round_):
        honest = frozenset(core.honest_neighbors())
        yield Await(m.CHUNK, reads.expect("observed", honest))
        observed = reads.read("observed", m.CHUNK, honest)
        oracle: dict[int, np.ndarray] | None = None
        if core.oracle_mode:
            everyone = frozenset(core.taking_part(range(core.assignment.num_nodes))) - set(core.colluders) - {node}
            yield Await(m.ORACLE, reads.expect("oracle", everyone))
            oracle = reads.read("oracle", m.ORACLE, everyone)
        colluders = core.taking_part(core.colluders)  # churn: the colluders away this round send nothing
        for c in colluders:
            yield Send(c, m.collude(src=node, round_=round_, observed=observed))
        awaited = frozenset(colluders)
        yield Await(m.COLLUDE, reads.expect("collude", awaited))
        knowledge = Knowledge(observed=observed, shared=reads.read("collude", m.COLLUDE, awaited), oracle=oracle)
    outgoing = core.outgoing(round_, knowledge)
    yield from _send_chunks(core, round_, outgoing)
    neighbors = frozenset(core.receive_from)  # the senders of this round (static graph: the neighbors)
    yield Await(m.CHUNK, reads.expect("chunk", neighbors))
    t_wait = time.perf_counter()
    received = reads.read("chunk", m.CHUNK, neighbors)
    result = core.end_round(round_, received)
    result.metrics["candidates"] = [sum(c in payload for payload in received.values()) for c in range(len(core.bounds))]
    result.metrics["missed"] = sorted(neighbors - set(received))
    result.delivery = reads.delivered
    result.timing.update(
        exchange_s=t_wait - t_send, round_s=time.perf_counter() - t0, round_cpu_s=time.process_time() - cpu0
    )
    return result


def _send_chunks(core: NodeCore, round_: int, outgoing: Mapping[int, Any]) -> Generator[Step, None, None]:
    """The chunk messages of ``outgoing``, in neighbor order; an active attack's timing
    behaviour decides to whom (``recipients``), when (``hold``) and how often (``copies``)."""
    attack = core.attack if core.attacking(round_) else None
    targets = sorted(outgoing)
    copies = 1
    if attack is not None:
        rng = np.random.default_rng([core.config.seed, core.node, round_, _WITHHOLD_SALT])
        targets = attack.recipients(targets, rng)
        copies = attack.copies
        if attack.hold > 0:
            yield Hold(attack.hold)
    for j in targets:
        message = m.chunk(src=core.node, round_=round_, chunks=outgoing[j])
        for _ in range(copies):
            yield Send(j, message)
