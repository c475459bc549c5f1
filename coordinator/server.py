"""The coordinator process: registration, assignment, barrier-stepped rounds, results.

It binds one ZeroMQ ROUTER socket (the control plane). Peers connect a DEALER, send
``register``, receive ``assign``, answer ``ready``; then for each round the coordinator
sends ``round_start`` to every live peer and waits for their ``round_done`` until the
round deadline; as soon as the barrier closes it sends the next ``round_start``, then
appends (and flushes) the closed round's record while the peers work. Peers that miss
the deadline (or that a liveness probe reports dead) are marked failed, announced with
``peer_failed``, and the run goes on with the rest. It never sees
a model chunk (nor a checkpoint: peers write those on their own hosts and only report the
round; the coordinator records which rounds every peer checkpointed, and a resumed run
starts after the last of them). A ``register`` after the assignment takes a free churn
slot (``coordinator/joins.py``: a new or returning peer) or is refused with ``stop``.
Every malformed or unexpected message is dropped, counted and logged.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from coordinator import admission
from coordinator.joins import LateJoins
from coordinator.plan import Plan, initial_model
from coordinator.recorder import RoundRecorder
from coordinator.results import ResultsWriter, ResumePoint
from peer.core import model_digest
from protocol import assignment as assignment_mod
from protocol import mac, sockets
from protocol import messages as m
from protocol import reports as reports_mod
from protocol.codec import ProtocolError, decode, encode
from protocol.config import config_fingerprint
from protocol.errors import UserError

log = logging.getLogger("byzemu.coordinator")

_POLL_MS = 50
#: largest control message (a round_done's metrics and traffic are a few KiB)
MAX_CONTROL_BYTES = 1 << 22


@dataclass
class _Round:
    """One round on the coordinator's side, from its ``round_start`` to its record."""

    number: int
    t0: float  #: when round_start went out (monotonic)
    refused_before: int  #: len(Coordinator.refused) at the start
    reports: dict[int, dict[str, Any]] = field(default_factory=dict)
    checkpointed: set[int] = field(default_factory=set)
    t1: float = 0.0  #: when the barrier closed (all reports in, or the deadline)
    refused_after: int = 0
    #: None unless a checkpoint round (runtime.checkpoint_every)
    checkpoint_complete: bool | None = None
    #: the failed peers when the barrier closed (later failures belong to the next round)
    failed: set[int] | None = None
    #: churn slots whose process had not registered when the round started (joins.py)
    pending: list[int] = field(default_factory=list)


class CoordinatorError(UserError):
    """The run cannot proceed (e.g. too few peers registered in time): a one-line error,
    like every :class:`~protocol.errors.UserError`."""


@dataclass
class PeerInfo:
    """A registered peer as the coordinator knows it."""

    identity: bytes
    node: int
    data_addr: str
    host: str
    pid: int
    curve_key: str | None = None  #: its data-plane CURVE public key (CURVE runs)
    want_init: bool = False  #: it asked for the initial model's vector in assign

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "data_addr": self.data_addr}


class Coordinator:
    """Runs one experiment's control plane.

    ``dead_probe`` (optional) is called while waiting and returns node ids known to be
    dead (the local launcher uses the child processes' exit status); without it a dead
    peer is detected by the round deadline.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        bind: str,
        results: ResultsWriter,
        progress: Callable[[dict[str, Any]], None] | None = None,
        resume: ResumePoint | None = None,
    ) -> None:
        self.plan = plan
        #: a resumed run: peers load their checkpoints of resume.round, rounds go on after it
        self.resume = resume
        #: last round every peer checkpointed (announced in round_start: older ones may go)
        self.last_checkpoint = resume.round if resume is not None else 0
        #: registrations refused because the run was already under way
        self.refused: list[dict[str, Any]] = []
        self.cfg = plan.config
        self.results = results
        #: churn slots: nodes whose process registers after the assignment (a schedule it
        #: cannot serve is refused here, before any socket is bound)
        self.joins = LateJoins(self)
        self.progress = progress
        #: this coordinator's own context: :meth:`close` terminates it, which waits up to
        #: the socket's linger for the last messages (each peer's ``stop``) to go out
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        #: CURVE on both planes (runtime.curve); the control socket is then a CURVE server
        #: with this run's key pair, and peers need its public key (``--coordinator-key``)
        self.curve = self.cfg.runtime.curve_on(bind)
        self.public_key: str | None = None
        secret: str | None = None
        if self.curve:
            public, secret = (k.decode() for k in zmq.curve_keypair())
            self.public_key = public
        results.curve = self.curve
        # the same listener as a peer's data socket (protocol/sockets.py): libzmq closes a
        # connection whose frame claims more than the limit; ROUTER_HANDOVER: a peer whose
        # control connection closed and came back (same routing id, set by the peer) takes
        # its identity over, so its next messages are not from an "unregistered" id
        self.sock = sockets.bind_router(
            self.ctx,
            bind,
            max_frame=sockets.frame_limit(MAX_CONTROL_BYTES),
            curve_secret=secret,
            linger=1000,
            handover=True,
        )
        self.address: str = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.connection_drops = sockets.DropWatch(self.sock)
        self.peers: dict[int, PeerInfo] = {}
        self.by_identity: dict[bytes, int] = {}
        self.failed: set[int] = set()
        self.drops: Counter[str] = Counter()
        self.dead_probe: Callable[[], set[int]] | None = None
        #: called with node id -> data address once every peer registered, before the
        #: assignment (a shaped network installs its links there: launch/net)
        self.before_assign: Callable[[dict[int, str]], None] | None = None
        #: called with a round's number when its record is written; its fields join the record
        self.round_extra: Callable[[int], dict[str, Any]] | None = None
        #: called with a round's number just before its round_start goes out (the local
        #: launcher starts the processes of churn slots due in the next round there)
        self.on_round_start: Callable[[int], None] | None = None

    # ------------------------------------------------------------------ plumbing

    def send(self, identity: bytes, msg: m.Message) -> None:
        self.sock.send_multipart([identity, *encode(msg)], copy=False)

    def drop(self, reason: str, detail: str) -> None:
        self.drops[reason] += 1
        count = self.drops[reason]
        if count <= 10 or count % 100 == 0:
            log.warning("coordinator dropped a message (%s, #%d): %s", reason, count, detail)

    def _count_dropped_connections(self) -> None:
        """Fold the control socket's dropped connections into the drop counters. Read at
        each round record, so connections that close after the last round (peers exiting
        on ``stop``) are not counted."""
        for _ in range(self.connection_drops.new_drops()):
            self.drop(
                "connection_dropped",
                "a control connection closed: a frame over "
                f"{sockets.frame_limit(MAX_CONTROL_BYTES)} bytes, a malformed stream or a dead peer",
            )

    def receive(self, timeout_ms: int) -> tuple[bytes, m.Message] | None:
        """One valid message (identity, message) or None on timeout / dropped message."""
        if not self.sock.poll(timeout_ms):
            return None
        frames = self.sock.recv_multipart(copy=False)
        identity = frames[0].bytes
        try:
            msg = decode(frames[1:], allowed=m.TO_COORDINATOR, max_bytes=MAX_CONTROL_BYTES)
        except ProtocolError as exc:
            self.drop(exc.reason, f"from {identity!r}: {exc.detail}")
            return None
        if msg.kind != m.REGISTER:
            node = self.by_identity.get(identity)
            if node is None:
                self.drop("unknown_sender", f"{msg.kind} from unregistered {identity!r}")
                return None
            if msg.src != node:
                self.drop("sender_mismatch", f"{msg.kind} claims src {msg.src}, is node {node}")
                return None
        return identity, msg

    def broadcast(self, msg: m.Message, nodes: list[int] | None = None) -> None:
        frames = encode(msg)  # once for all: the same frames go to every peer
        for node in sorted(self.peers) if nodes is None else nodes:
            self.sock.send_multipart([self.peers[node].identity, *frames], copy=False)

    # ------------------------------------------------------------------ phases

    def wait_registrations(self) -> None:
        """Block until every node but the churn slots registered; ids follow registration
        order (slots are taken later: coordinator/joins.py)."""
        n, timeout = self.cfg.nodes, self.cfg.runtime.register_timeout
        ids = self.joins.first_ids()
        deadline = time.monotonic() + timeout
        while len(self.peers) < len(ids):
            left = deadline - time.monotonic()
            if left <= 0:
                key = shlex.quote(self.public_key or "")
                hint = f"; CURVE is on: peers need --coordinator-key {key}" if self.curve else ""
                raise CoordinatorError(
                    f"only {len(self.peers)} of {len(ids)} peers registered within {timeout:g} s at "
                    f"{self.address}; start the missing peers or raise runtime.register_timeout{hint}"
                )
            got = self.receive(min(_POLL_MS * 4, int(left * 1000) + 1))
            if got is None:
                continue
            identity, msg = got
            if msg.kind != m.REGISTER:
                self.drop("unexpected_kind", f"{msg.kind} before assignment")
                continue
            if identity in self.by_identity:
                self.drop("duplicate", f"second register from {identity!r}")
                continue
            unfit = admission.refusal(msg, cfg=self.cfg, curve=self.curve)
            if unfit:
                self.reject(identity, msg, unfit)
                continue
            node = ids[len(self.peers)]
            self.enrol(identity, node, msg)
            log.info("peer %d registered (pid %d on %s)", node, msg["pid"], msg["host"])
        if n > len(ids):
            later = sorted(set(range(n)) - set(ids))
            log.info("assigning without the new peers %s: their processes register later", later)

    def reject(self, identity: bytes, msg: m.Message, unfit: str) -> None:
        """Refuse a ``register`` that does not fit the run (admission.py)."""
        self.drop("registration_refused", f"pid {msg['pid']} on {msg['host']}: {unfit}")
        self.send(identity, m.stop(reason=f"registration refused: {unfit}"))

    def enrol(self, identity: bytes, node: int, msg: m.Message) -> None:
        """Give the process of ``register`` ``msg`` the id ``node``."""
        self.peers[node] = PeerInfo(
            identity,
            node,
            msg["data_addr"],
            msg["host"],
            msg["pid"],
            msg.fields.get("curve_key"),
            msg.fields.get("want_init") == 1,
        )
        self.by_identity[identity] = node

    def assign(self) -> None:
        """Send every peer its assignment, then wait for all ``ready`` (late ones fail)."""
        addresses = {i: p.data_addr for i, p in self.peers.items()}
        if self.before_assign is not None:
            self.before_assign(dict(addresses))
        plans = {node: self.plan.assignment(node) for node in sorted(self.peers)}
        if self.resume is not None and self.plan.rounds.dynamic:  # the first round run is resume.round + 1
            for node, a in plans.items():
                a.receive_from = list(self.plan.rounds.view(node, self.resume.round + 1).receive_from)
        keys = (
            assignment_mod.curve_keys(plans, {i: p.curve_key or "" for i, p in self.peers.items()})
            if self.curve
            else {}
        )
        # every node's link keys now, the churn slots' too (joins.py sends theirs later)
        everyone = {node: self.plan.assignment(node) for node in range(self.cfg.nodes)}
        macs = (
            mac.assignment_keys(mac.run_secret(), assignment_mod.partners(everyone))
            if self.cfg.runtime.sender_mac
            else {}
        )
        layout, init = initial_model(self.cfg)
        model = {"layout": layout, "init_digest": model_digest(init)}
        self.joins.model, self.joins.init, self.joins.macs = model, init, macs
        for node, a in plans.items():
            msg = assignment_mod.to_message(
                a,
                {j: addresses[j] for j in a.linked() if j in addresses},
                keys.get(node),
                resume={"round": self.resume.round, "digest": self.resume.digests[node]} if self.resume else None,
                model=model,
                init=init if self.peers[node].want_init else None,
                mac=macs.get(node),
            )
            self.send(self.peers[node].identity, msg)
        self.results.write_topology(self.plan.topology_json({i: p.to_json() for i, p in self.peers.items()}))
        ready: set[int] = set()
        deadline = time.monotonic() + self.cfg.runtime.register_timeout
        while len(ready) < len(self.peers) and time.monotonic() < deadline:
            got = self.receive(_POLL_MS * 4)
            self.probe_dead(0)
            if got is None:
                continue
            identity, msg = got
            if msg.kind == m.READY:
                ready.add(msg.src)
                self.joins.ready.add(msg.src)
            elif not self.joins.handle(identity, msg, round_=0):
                self.drop("unexpected_kind", f"{msg.kind} from {msg.src} before round 1")
            if len(ready | self.failed) >= len(self.peers):
                break
        for node in sorted(set(self.peers) - ready - self.failed):
            self._mark_failed(node, 0, "not ready before runtime.register_timeout")
        if self.resume is not None and self.failed:
            raise CoordinatorError(
                f"cannot resume after round {self.resume.round}: peers {sorted(self.failed)} did not load "
                f"their checkpoints (their log lines say why)"
            )

    def refuse_registration(self, identity: bytes, msg: m.Message, round_: int) -> None:
        """A ``register`` after the assignment that takes no churn slot (a restarted peer, a
        slot already held): node ids are fixed once, so it is answered with ``stop``,
        counted and logged."""
        self.drop("unexpected_kind", f"register from pid {msg['pid']} on {msg['host']} after the assignment")
        reason = (
            f"registration refused: the run is in progress (round {round_}); ids are assigned once at "
            f"the start and no churn slot is free for a late peer (docs/FAILURES.md)"
        )
        self.send(identity, m.stop(reason=reason))
        self.refused.append({"round": round_, "pid": msg["pid"], "host": msg["host"], "data_addr": msg["data_addr"]})
        log.warning(
            "refused a registration from pid %d on %s in round %d: run in progress", msg["pid"], msg["host"], round_
        )

    def _mark_failed(self, node: int, round_: int, reason: str) -> None:
        if node in self.failed:
            return
        self.failed.add(node)
        log.warning("peer %d marked failed in round %d: %s", node, round_, reason)
        live = sorted(set(self.peers) - self.failed)
        self.broadcast(m.peer_failed(round_=round_, nodes=[node], reason=reason), live)

    def probe_dead(self, round_: int) -> None:
        if self.dead_probe is None:
            return
        for node in sorted(self.dead_probe() - self.failed):
            self._mark_failed(node, round_, "process exited")

    def _start_round(self, round_: int) -> _Round:
        """Send ``round_start`` to every live peer (with its graph of the round when the
        graph changes: coordinator/dynamics.py)."""
        if self.on_round_start is not None:
            self.on_round_start(round_)
        self.joins.before_round(round_)
        round_state = _Round(
            number=round_, t0=time.monotonic(), refused_before=len(self.refused), pending=sorted(self.joins.pending)
        )
        schedule = self.plan.rounds
        for node in self._expected(round_):
            start = m.round_start(
                round_=round_,
                failed=sorted(self.failed),
                deadline=self.cfg.runtime.round_timeout,
                checkpoint=self.last_checkpoint or None,
                graph=schedule.view(node, round_).to_fields() if schedule.dynamic else None,
            )
            self.send(self.peers[node].identity, start)
        return round_state

    def _expected(self, round_: int) -> list[int]:
        """The peers the barrier of ``round_`` counts: live and not away ([churn]); a peer
        whose scheduled crash is this round is counted until it is marked failed."""
        presence = self.plan.rounds.presence
        present = presence.present(round_) | presence.crashing(round_)
        return sorted(n for n in set(self.peers) - self.failed if n in present)

    def _collect_round(self, rnd: _Round) -> _Round:
        """Wait for every live peer's ``round_done`` (the barrier) or the round deadline;
        mark the laggards failed and note whether the round's checkpoint is complete, so
        that the next ``round_start`` can go out before this round's record is written."""
        round_, timeout = rnd.number, self.cfg.runtime.round_timeout
        live = self._expected(round_)
        reports, checkpointed = rnd.reports, rnd.checkpointed
        deadline = rnd.t0 + timeout
        # the live peers not yet in: updated per report, and from self.failed when it grows
        # (testing every live peer after every message cost O(N^2) per round)
        pending, n_failed = set(live) - set(reports) - self.failed, len(self.failed)
        while time.monotonic() < deadline:
            if len(self.failed) != n_failed:
                pending, n_failed = pending - self.failed, len(self.failed)
            if not pending:
                break
            got = self.receive(_POLL_MS)
            self.probe_dead(round_)
            if got is None:
                continue
            identity, msg = got
            if msg.kind != m.ROUND_DONE and self.joins.handle(identity, msg, round_=round_):
                pass
            elif msg.kind != m.ROUND_DONE:
                self.drop("unexpected_kind", f"{msg.kind} from {msg.src} during round {round_}")
            elif msg.round != round_:
                self.drop("stale_round", f"round_done for {msg.round} during {round_}")
            elif msg.src in self.failed:
                self.drop("failed_sender", f"round_done from failed peer {msg.src}")
            elif wrong := reports_mod.problems(msg["metrics"], msg["traffic"], msg["timing"]):
                self.drop("bad_report", f"round_done from {msg.src}: {'; '.join(wrong)}")
            elif not reports_mod.recordable(msg.fields.get("delivery")):
                # the delivery log must be able to record it verbatim
                self.drop("bad_report", f"round_done from {msg.src}: delivery holds values JSON cannot record")
            else:
                reports[msg.src] = {
                    "metrics": msg["metrics"],
                    "traffic": msg["traffic"],
                    "timing": msg["timing"],
                    "delivery": msg.fields.get("delivery"),
                }
                pending.discard(msg.src)
                if msg.fields.get("checkpoint") == round_:
                    checkpointed.add(msg.src)
                self.joins.reported(round_, msg.src, msg["metrics"])
        for node in live:
            if node not in reports:
                self._mark_failed(node, round_, f"no round_done within {timeout:g} s")
        rnd.t1 = time.monotonic()
        rnd.refused_after = len(self.refused)
        every = self.cfg.runtime.checkpoint_every
        if every and round_ % every == 0:
            # complete = every peer wrote its state of this round: the run can resume here
            rnd.checkpoint_complete = checkpointed == set(range(self.cfg.nodes))
            if rnd.checkpoint_complete:
                self.last_checkpoint = round_
        return rnd

    def _record_round(self, rnd: _Round, recorder: RoundRecorder) -> dict[str, Any]:
        """Record the collected round (appended flushed, progress reported)."""
        extra: dict[str, Any] = {}
        if rnd.checkpoint_complete is not None:
            extra["checkpoint"] = {
                "complete": rnd.checkpoint_complete,
                "nodes": sorted(rnd.checkpointed),
                "config": config_fingerprint(self.cfg),
            }
        if rnd.pending:
            extra["pending"] = rnd.pending
        if rnd.refused_after > rnd.refused_before:
            extra["refused_registrations"] = self.refused[rnd.refused_before : rnd.refused_after]
        if self.round_extra is not None:
            extra.update(self.round_extra(rnd.number))
        self._count_dropped_connections()
        return recorder.record(
            round_=rnd.number,
            reports=rnd.reports,
            failed=rnd.failed if rnd.failed is not None else self.failed,
            t0=rnd.t0,
            t1=rnd.t1,
            coordinator_drops=self.drops,
            extra=extra,
        )

    def stop(self, reason: str) -> None:
        self.broadcast(m.stop(reason=reason))

    def run(self) -> dict[str, Any]:
        """The whole experiment; returns the summary (also written to summary.json). A run
        that stops early (Ctrl-C, every peer failed, ...) writes interrupted.json instead
        and re-raises."""
        wall0 = time.monotonic()
        recorder: RoundRecorder | None = None
        try:
            self.wait_registrations()
            self.assign()
            recorder = RoundRecorder(
                plan=self.plan,
                results=self.results,
                progress=self.progress,
                started=time.monotonic() - self.results.elapsed_offset,
            )
            first = self.resume.round + 1 if self.resume is not None else 1
            # the barrier is answered first: once round t's last round_done is in, round
            # t+1 starts, and round t's record is written while the peers train
            rnd = self._start_round(first) if first <= self.cfg.rounds else None
            while rnd is not None:
                self._collect_round(rnd)
                rnd.failed = set(self.failed)
                everyone_failed = len(self.failed) == len(self.peers)
                going_on = not everyone_failed and rnd.number < self.cfg.rounds
                following = self._start_round(rnd.number + 1) if going_on else None
                self._record_round(rnd, recorder)
                if everyone_failed:
                    raise CoordinatorError(f"every peer failed by round {rnd.number}")
                rnd = following
            self.stop("finished")
        except BaseException as exc:
            self.stop("coordinator aborted")
            reason = "interrupted (SIGINT)" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
            self.results.interrupt(wall_s=time.monotonic() - wall0, reason=reason, extra=self._extra())
            raise
        finally:
            if recorder is not None:
                recorder.close()
        return self.results.finish(wall_s=time.monotonic() - wall0, extra=self._extra())

    def _extra(self) -> dict[str, Any]:
        return {
            "coordinator_drops": dict(self.drops),
            "refused_registrations": self.refused,
            "late_registrations": self.joins.registered,
            "resumed_after": self.resume.round if self.resume is not None else None,
        }

    def close(self) -> None:
        """Close the control socket and terminate the context: the last messages queued
        (``stop`` to every peer) are sent, or given up after the 1 s linger, before this
        returns, so a coordinator process that ends right after (``byzemu coordinator``)
        does not leave a peer waiting out ``runtime.coordinator_timeout`` for its ``stop``."""
        self.connection_drops.close()
        self.sock.close(linger=1000)
        self.ctx.term()
