"""Late registration: peers whose process is not there at the start (``[churn]``).

A *slot* is a node whose process may register after the assignment
(:meth:`coordinator.churn.Presence.slots`): a new peer joining in round R >= 2
(``churn.join``) and a returning peer (``churn.leave``, once its first process has left).
Its id, shard, role and data-plane keys (sender MAC) are fixed at the assignment like any
other node's; only its data address and CURVE key come with its process.

* **Assignment.** The coordinator assigns as soon as every node that is not a slot has
  registered; registrations before that take the non-slot ids in registration order.
  Every other ``register`` is a late one.
* **Taking a slot.** A late ``register`` takes the slot its optional ``node`` names, or
  without it the next free slot by due round, then by id. A slot is free while no process
  holds it: a new peer's before its process registers, a returning peer's after its first
  process left. With no such slot it is refused with ``stop``, as before (a restarted
  process for a node that is not a slot, or a slot already held).
* **What it gets.** Its ``assign`` (the same fields as everyone's: ``neighbors`` lists the
  peers registered so far, ``first_round`` its round, ``receive_from`` that round's
  senders; a returning peer also ``resume`` with its checkpoint round and digest), and
  every live peer gets ``peer_joined`` (its node, data address and CURVE key) at once,
  so that every ``round_start`` after it finds the new address known.
* **In time or pending.** When a round starts in which a slot is due and its process has
  not registered (or not answered ``ready``), the coordinator waits up to
  ``runtime.join_timeout`` seconds, taking registrations; a slot still free then is
  *pending*: :meth:`~coordinator.churn.Presence.postpone` moves its round to the next one,
  the round's graph leaves it out, and its record entry says ``"pending"``. A process that
  registers while its slot is pending takes part from the first round that starts after
  it registered. With every slot filled in time the run is the deterministic schedule
  that the in-process reference runs, bit for bit.
* **Leaving.** A returning peer's first process is answered ``stop`` (reason ``"left:
  churn.leave"``) after its ``round_done`` of the round before its leave round; the
  coordinator forgets its registration (the slot is free) and records the model digest
  of its checkpoint round, which the returning process's ``resume`` names.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from coordinator import admission
from coordinator.plan import Plan
from coordinator.results import ResultsWriter, ResumePoint
from protocol import assignment as assignment_mod
from protocol import messages as m
from protocol.config import RunConfig
from protocol.errors import UserError

log = logging.getLogger("byzemu.coordinator")

_POLL_MS = 50


class SlotError(UserError):
    """A churn schedule whose slots late registration cannot serve (one line)."""


class Host(Protocol):
    """What late registration uses of the coordinator (``coordinator/server.py``)."""

    plan: Plan
    cfg: RunConfig
    resume: ResumePoint | None
    results: ResultsWriter
    curve: bool
    peers: dict[int, Any]  #: node -> its PeerInfo
    by_identity: dict[bytes, int]
    failed: set[int]

    def drop(self, reason: str, detail: str) -> None: ...
    def send(self, identity: bytes, msg: m.Message) -> None: ...
    def broadcast(self, msg: m.Message, nodes: list[int] | None = None) -> None: ...
    def receive(self, timeout_ms: int) -> tuple[bytes, m.Message] | None: ...
    def probe_dead(self, round_: int) -> None: ...
    def reject(self, identity: bytes, msg: m.Message, unfit: str) -> None: ...
    def enrol(self, identity: bytes, node: int, msg: m.Message) -> None: ...
    def refuse_registration(self, identity: bytes, msg: m.Message, round_: int) -> None: ...


class LateJoins:
    """The coordinator's slots and late registrations (see the module docstring)."""

    def __init__(self, coord: Host) -> None:
        self.coord = coord
        self.presence = coord.plan.rounds.presence
        #: node -> the round it is due in (moved on by postponement); a resumed run's slots
        #: are those still to come
        after = coord.resume.round if coord.resume is not None else 0
        self.slots = {node: due for node, due in self.presence.slots().items() if due > after}
        plan = coord.plan
        linked = plan.config.byzantine.knowledge == "oracle" or len(plan.byzantine) > 1
        byzantine = sorted(set(self.slots) & set(plan.byzantine))
        if linked and byzantine:
            raise SlotError(
                f"churn: node {byzantine[0]} is Byzantine and joins or returns late, but Byzantine peers have links "
                "from the assignment (colluders, oracle mode); make it join in round 1, or place the Byzantine peers "
                "elsewhere (byzantine.nodes)"
            )
        self.ready: set[int] = set()  #: slots whose late process answered ready
        self.pending: set[int] = set()  #: slots left out of the round being started
        self.digests: dict[int, str] = {}  #: returning node -> model digest of its checkpoint round
        #: filled by the assignment: what every assign carries (layout, digest, MAC keys)
        self.model: dict[str, Any] = {}
        self.init: Any = None
        self.macs: dict[int, dict[str, Any]] = {}
        self.started = 0  #: the last round whose round_start went out
        #: every late registration: {node, round (the last round started then), pid, host}
        self.registered: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ before the assignment

    def first_ids(self) -> list[int]:
        """The node ids the assignment waits for, in registration order: all but the new
        peers' slots (a returning peer's first process is there from the start)."""
        return [i for i in range(self.coord.cfg.nodes) if i not in self.slots or i in self.presence.leaves]

    # ------------------------------------------------------------------ late registrations

    def free(self) -> list[int]:
        """The slots no process holds, by due round, then id."""
        held = set(self.coord.peers)
        return sorted((n for n in self.slots if n not in held), key=lambda n: (self.slots[n], n))

    def register(self, identity: bytes, msg: m.Message, round_: int) -> bool:
        """A ``register`` after the assignment: True if it took a slot (assign and
        ``peer_joined`` sent), False if no slot fits (the caller refuses it)."""
        coord = self.coord
        free = self.free()
        asked = msg.fields.get("node")
        node = (asked if asked in free else None) if asked is not None else (free[0] if free else None)
        if node is None:
            return False
        unfit = admission.refusal(msg, cfg=coord.cfg, curve=coord.curve)
        if unfit:
            coord.reject(identity, msg, unfit)
            return True
        coord.enrol(identity, node, msg)
        info = coord.peers[node]
        others = sorted(set(coord.peers) - coord.failed - {node})
        coord.broadcast(m.peer_joined(round_=round_, node=node, addr=info.data_addr, curve_key=info.curve_key), others)
        coord.send(identity, self.assign_message(node))
        self.ready.discard(node)
        self.registered.append({"node": node, "round": self.started, "pid": msg["pid"], "host": msg["host"]})
        coord.results.write_topology(coord.plan.topology_json({i: p.to_json() for i, p in coord.peers.items()}))
        log.info("peer %d registered late (pid %d on %s) in round %d", node, msg["pid"], msg["host"], round_)
        return True

    def assign_message(self, node: int) -> m.Message:
        """The ``assign`` of a slot's process: its first round is its due round."""
        coord = self.coord
        a = coord.plan.assignment(node)
        first = self.slots[node]
        a.first_round = first
        a.receive_from = list(coord.plan.rounds.view(node, first).receive_from)
        addresses = {i: p.data_addr for i, p in coord.peers.items() if i != node}
        keys = None
        if coord.curve:
            keys = {i: p.curve_key or "" for i, p in coord.peers.items() if i != node and p.curve_key}
        resume = None
        if node in self.presence.leaves:
            a.join_from = []
            resume = {"round": self.presence.checkpoint_round(node), "digest": self.digests.get(node, "")}
        return assignment_mod.to_message(
            a,
            {j: addresses[j] for j in a.linked() if j in addresses},
            keys,
            resume=resume,
            model=self.model,
            init=self.init if coord.peers[node].want_init else None,
            mac=self.macs.get(node),
        )

    # ------------------------------------------------------------------ rounds

    def before_round(self, round_: int) -> None:
        """Round ``round_`` is about to start: wait up to ``runtime.join_timeout`` for the
        slots due in it, then postpone those still free (pending)."""
        coord = self.coord
        due = [n for n, r in self.slots.items() if r <= round_ and (n not in coord.peers or n not in self.ready)]
        deadline = time.monotonic() + coord.cfg.runtime.join_timeout
        while due and time.monotonic() < deadline:
            got = coord.receive(_POLL_MS)
            coord.probe_dead(round_ - 1)
            if got is not None and not self.handle(*got, round_=round_ - 1):
                self.coord.drop("unexpected_kind", f"{got[1].kind} from {got[1].src} before round {round_}")
            due = [n for n in due if n not in coord.failed and (n not in coord.peers or n not in self.ready)]
        self.pending = {n for n, r in self.slots.items() if r <= round_ and n not in coord.peers}
        for node in sorted(self.pending):
            log.warning("slot %d: no process registered by round %d (runtime.join_timeout); pending", node, round_)
            self.presence.postpone(node, round_ + 1)
            self.slots[node] = round_ + 1
        self.started = round_

    def handle(self, identity: bytes, msg: m.Message, *, round_: int) -> bool:
        """A control message a round's barrier does not take: a late ``register`` or a
        slot's ``ready``; False if it is neither (the caller drops it)."""
        if msg.kind == m.REGISTER and identity not in self.coord.by_identity:
            if not self.register(identity, msg, round_):
                self.coord.refuse_registration(identity, msg, round_)
            return True
        if msg.kind == m.READY and msg.src in self.slots:
            self.ready.add(msg.src)
            return True
        return False

    def reported(self, round_: int, node: int, metrics: dict[str, Any]) -> None:
        """A ``round_done`` was recorded: keep a returning peer's checkpoint digest, and
        let its first process go after the round before its leave round."""
        if node not in self.presence.leaves:
            return
        leave, _ = self.presence.leaves[node]
        if round_ == self.presence.checkpoint_round(node):
            self.digests[node] = str(metrics.get("digest", ""))
        if round_ == leave - 1:
            coord = self.coord
            info = coord.peers.pop(node)
            coord.by_identity.pop(info.identity, None)
            coord.send(info.identity, m.stop(reason="left: churn.leave"))
            log.info("peer %d left after round %d (churn.leave)", node, round_)
