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
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

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


Step = Send | Await


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


def round_steps(core: NodeCore, inbox: Inbox, round_: int) -> Generator[Step, None, RoundResult]:
    """One node's round ``round_`` (see the module docstring); the driver calls
    :func:`enter_round` before and ``inbox.close(round_)`` after."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    node = core.node
    core.train(round_)
    t_send = time.perf_counter()
    for j in core.taking_part(core.assignment.oracle_targets):
        yield Send(j, m.oracle(src=node, round_=round_, vector=core.vector))
    knowledge = None
    if core.needs_knowledge(round_):
        honest = frozenset(core.honest_neighbors())
        yield Await(m.CHUNK, honest)
        observed = {j: v for j, v in inbox.arrived(m.CHUNK, round_).items() if j in honest}
        oracle: dict[int, np.ndarray] | None = None
        if core.oracle_mode:
            everyone = frozenset(core.taking_part(range(core.assignment.num_nodes))) - set(core.colluders) - {node}
            yield Await(m.ORACLE, everyone)
            oracle = inbox.arrived(m.ORACLE, round_)
        colluders = core.taking_part(core.colluders)  # churn: the colluders away this round send nothing
        for c in colluders:
            yield Send(c, m.collude(src=node, round_=round_, observed=observed))
        yield Await(m.COLLUDE, frozenset(colluders))
        knowledge = Knowledge(observed=observed, shared=inbox.arrived(m.COLLUDE, round_), oracle=oracle)
    outgoing = core.outgoing(round_, knowledge)
    for j in sorted(outgoing):
        yield Send(j, m.chunk(src=node, round_=round_, chunks=outgoing[j]))
    yield Await(m.CHUNK, frozenset(core.receive_from))
    t_wait = time.perf_counter()
    result = core.end_round(round_, inbox.arrived(m.CHUNK, round_))
    result.timing.update(
        exchange_s=t_wait - t_send, round_s=time.perf_counter() - t0, round_cpu_s=time.process_time() - cpu0
    )
    return result
