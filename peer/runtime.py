"""The peer process: drives a :class:`~peer.core.NodeCore` over real ZeroMQ sockets.

A :class:`PeerRuntime` joins three parts, each in its own module:

* the control channel (``peer/control.py``): one DEALER to the coordinator's ROUTER;
  registration, the connection watch, control messages;
* the data plane (``peer/dataplane.py``): one ROUTER bound before registering, one
  DEALER per linked peer; sending, receiving and the sender checks;
* the inbox (``peer/inbox.py``): per-round buffers of accepted messages and their round
  window, shared with the in-process reference.

What a round sends and waits for is the round schedule (``peer/rounds.py``), which the
in-process reference runs too; this module only delivers its steps: a ``Send`` goes out
over the data plane, an ``Await`` polls both sockets until the expected live senders'
messages are in the inbox or the round's ``runtime.chunk_timeout`` (counted from the end
of local training) passes, and a ``Hold`` waits (polling) until its fraction of that
deadline. A straggler (``peer/stragglers.py``) waits out its slowdown after training,
before its deadline starts. Around the schedule it writes checkpoints and reports
``round_done`` with the round's metrics, traffic and timing.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import zmq

from peer import checkpoint, heap
from peer import data as datasets
from peer.churn import ScheduledCrash, crash_round
from peer.control import (
    ControlChannel,
    CoordinatorLost,
    HandshakeError,
    PeerExit,
    RegistrationRefused,
    await_assignment,
)
from peer.core import NodeCore, RoundResult, model_digest
from peer.data import test_subset
from peer.dataplane import DataPlane
from peer.inbox import Inbox
from peer.options import PeerOptions
from peer.rounds import Await, Hold, Send, Step, enter_round, round_steps
from peer.slots import ComputeSlots, slots_path
from peer.stragglers import slowdown
from peer.traffic import Traffic
from protocol import assignment as assignment_mod
from protocol import graph as graph_mod
from protocol import messages as m
from protocol.assignment import Assignment
from protocol.codec import ProtocolError
from protocol.graph import RoundGraph

__all__ = ["CoordinatorLost", "HandshakeError", "PeerExit", "PeerRuntime", "RegistrationRefused", "run_peer"]

log = logging.getLogger("byzemu.peer")

_POLL_MS = 20
#: after a round in which connections closed: how long to wait for a stop before counting
#: them as lost (the control channel has its own I/O thread, which a loaded machine may
#: run later than the data plane's)
_STOP_WAIT_S = 1.0
#: the data planes of closed runtimes, held until the process exits (PeerRuntime.close)
_LEFT_TO_EXIT: list[DataPlane] = []


class PeerRuntime:
    """One peer: register, get assigned, then serve rounds until ``stop``."""

    def __init__(self, options: PeerOptions) -> None:
        self.options = options
        self.ctx = zmq.Context()  #: the data plane's (and its ZAP handler's)
        #: the control channel's own: :meth:`close` terminates it to flush the last control
        #: messages while the data plane's is left to the process's exit
        self.control_ctx = zmq.Context()
        self.traffic = Traffic(node=m.UNASSIGNED_ID)
        self.control = ControlChannel(
            self.control_ctx, options.coordinator, coordinator_key=options.coordinator_key, traffic=self.traffic
        )
        curve = None
        if options.coordinator_key is not None:  # a CURVE run: the data plane is CURVE too
            public, secret = (k.decode() for k in zmq.curve_keypair())
            curve = assignment_mod.CurveKeys(public, secret)
        self.data = DataPlane(
            self.ctx,
            bind_host=options.bind_host,
            advertise_host=options.data_host,
            max_message_bytes=options.max_message_bytes,
            curve=curve,
            traffic=self.traffic,
        )
        self.poller = zmq.Poller()
        self.poller.register(self.control.sock, zmq.POLLIN)
        self.poller.register(self.data.sock, zmq.POLLIN)
        self.node = m.UNASSIGNED_ID
        self.core: NodeCore | None = None
        self.inbox: Inbox | None = None
        self.addresses: dict[int, str] = {}
        self.resume: dict[str, Any] | None = None  # assign -> resume: {round, digest}
        self.init_digest: str | None = None  # assign -> model -> init_digest
        self.slots: ComputeSlots | None = None  # runtime.compute_slots

    # ------------------------------------------------------------------ joining

    def register(self) -> Assignment:
        """Register and wait for the assignment (``PeerOptions.assign_timeout``)."""
        data = self.data
        reg = await_assignment(
            self.control,
            m.register(
                data_addr=data.address,
                host=socket.gethostname(),
                pid=os.getpid(),
                curve_key=data.curve.public if data.curve is not None else None,
                max_message_bytes=data.socket_max_bytes,
                node=self.options.node,
            ),
            timeout=self.options.assign_timeout,
            curve=data.curve is not None,
        )
        self.addresses, self.resume, self.init_digest = reg.addresses, reg.resume, reg.init_digest
        data.mac = reg.mac_keys
        if reg.peer_keys is not None:  # answer the neighbors' held handshakes before the (slow) setup
            data.admit(reg.peer_keys, node=reg.assignment.node)
        return reg.assignment

    def setup(self, assignment: Assignment) -> None:
        """Build the node core (data, model), load a checkpoint when resuming, connect to
        the linked peers, answer ``ready``. ValueError/OSError if this host cannot."""
        cfg = assignment.config
        self.node = self.traffic.node = assignment.node
        if cfg.runtime.max_message_bytes > self.data.socket_max_bytes:
            raise ValueError(
                f"the run's runtime.max_message_bytes={cfg.runtime.max_message_bytes} exceeds this peer's data-socket "
                f"limit {self.data.socket_max_bytes}, fixed before registering: start it with --max-message-bytes "
                f"{cfg.runtime.max_message_bytes}"
            )
        self.data.max_bytes = cfg.runtime.max_message_bytes
        self.control.timeout = cfg.runtime.coordinator_timeout
        root = self.options.data_root or cfg.data.root
        root_path = Path(root) if root else None
        d = cfg.data
        train = datasets.load(d.dataset, root_path, train=True, synthetic_size=d.synthetic_size, seed=cfg.seed)
        test = datasets.load(d.dataset, root_path, train=False, synthetic_size=d.synthetic_size, seed=cfg.seed)
        self.core = NodeCore(assignment, train_data=train, test_set=test_subset(test, d.test_samples))
        # the core holds its shard and its evaluation set; the whole splits the forkserver
        # preloaded are not needed again: dropping this process's references unmaps them
        # here (not in the forkserver), with the page tables fork copied for them
        # (~0.1 MiB per peer for MNIST; BENCHMARKS.md section 8)
        del train, test
        datasets.cache.clear()
        if self.init_digest is not None and model_digest(self.core.vector) != self.init_digest:
            raise ValueError(
                f"this host builds an initial model with digest {model_digest(self.core.vector)}, the run's is "
                f"{self.init_digest} (assign.model.init_digest): another torch version or build initialises "
                f"models differently; run every peer on the coordinator's versions"
            )
        started = 0
        if self.resume is not None:
            started = self._load_checkpoint(int(self.resume["round"]), str(self.resume["digest"]))
        elif cfg.runtime.checkpoint_every and self.options.checkpoint_dir is None:
            log.warning(
                "peer %d: runtime.checkpoint_every=%d but no checkpoint folder (byzemu peer "
                "--checkpoint-dir): this peer writes no checkpoints",
                self.node,
                cfg.runtime.checkpoint_every,
            )
        self.inbox = Inbox(self.core, started=started, traffic=self.traffic)
        self.slowdown = slowdown(cfg, self.node)
        if cfg.runtime.compute_slots:
            path = slots_path(self.options.coordinator)
            self.slots = ComputeSlots(path, cfg.runtime.compute_slots, home=self.node)
        # before ready: round 1 may start at once (a graph that changes: neighbors link on first send)
        fixed = (
            assignment.linked()
            if assignment.receive_from is None
            else [j for j in (*assignment.colluders, *assignment.oracle_targets) if j in self.addresses]
        )
        self.data.num_nodes = assignment.num_nodes
        self.data.connect(self.node, self.addresses, fixed)
        # everything built so far (torch's modules, the data, the model) lives for the whole
        # run: move it out of the cyclic collector's reach, so a full collection scans only
        # what rounds allocate (~85 ms otherwise, at random rounds) and never writes to the
        # pages a forked peer shares with its forkserver
        gc.freeze()
        self.control.send(m.ready(src=self.node))
        heap.release_free_memory()  # what loading the data and building the model freed

    # ------------------------------------------------------------------ checkpoints

    def _load_checkpoint(self, round_: int, digest: str) -> int:
        """Resume: load this node's checkpoint of ``round_`` (ValueError/OSError if it is
        missing, foreign, or its model is not the one the coordinator recorded)."""
        assert self.core is not None
        folder = self.options.checkpoint_dir
        if folder is None:
            raise ValueError(f"told to resume from round {round_}, but this peer has no checkpoint folder")
        state = checkpoint.load(folder, round_, self.node)
        if state.get("digest") != digest:
            raise ValueError(
                f"checkpoint of round {round_} holds model {state.get('digest')}, the run recorded {digest}"
            )
        self.core.load_state_dict(state)
        log.info("peer %d resumes after round %d", self.node, round_)
        return round_

    def _save_checkpoint(self, round_: int) -> bool:
        """Write this node's checkpoint of ``round_`` if one is due; True if written."""
        assert self.core is not None
        every, folder = self.core.config.runtime.checkpoint_every, self.options.checkpoint_dir
        if not every or round_ % every or folder is None:
            return False
        try:
            checkpoint.save(folder, round_, self.node, self.core.state_dict(round_))
        except OSError as exc:  # a full disk must not stop the run; the round is not complete
            log.error("peer %d: cannot write the checkpoint of round %d: %s", self.node, round_, exc)
            return False
        return True

    # ------------------------------------------------------------------ rounds

    def _handle_control(self, msg: m.Message) -> None:
        """Control messages that may arrive at any time after assignment."""
        if msg.kind == m.STOP:
            raise PeerExit(msg["reason"])
        if msg.kind == m.PEER_FAILED:
            self.data.mark_failed(msg["nodes"])
        elif msg.kind == m.PEER_JOINED:  # a churn slot's process registered (coordinator/joins.py)
            try:
                self.data.learn(msg)
            except ProtocolError as exc:
                self.traffic.drop(exc.reason, exc.detail)
        else:
            started = self.inbox.started if self.inbox is not None else 0
            self.traffic.drop("unexpected_kind", f"{msg.kind} in round {started}")

    def _take_control(self, wait_s: float) -> None:
        """Handle the control messages queued now or arriving within ``wait_s`` seconds
        (a ``stop`` raises PeerExit)."""
        deadline = time.monotonic() + wait_s
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.control.sock.poll(left_ms):
                return
            msg = self.control.receive()
            if msg is not None:
                self._handle_control(msg)

    def _poll_once(self, timeout_ms: int) -> None:
        assert self.inbox is not None
        for sock, _ in self.poller.poll(timeout_ms):
            if sock is self.data.sock:
                self.data.receive(self.inbox)
            else:
                msg = self.control.receive()
                if msg is not None:
                    self._handle_control(msg)

    def _wait(self, round_: int, step: Await, deadline: float) -> None:
        """Poll until every live sender of ``step`` is in the inbox or the deadline passes."""
        assert self.inbox is not None
        while True:
            waiting = self.inbox.missing(step.kind, round_, step.senders) - self.data.failed
            if not waiting:
                return
            self.control.check()
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "peer %d round %d: no %s message from %s by the deadline (runtime.chunk_timeout)",
                    self.node,
                    round_,
                    step.kind,
                    sorted(waiting),
                )
                return
            self._poll_once(min(_POLL_MS * 10, int(left * 1000) + 1))

    def _idle_until(self, until: float) -> None:
        """Receive what arrives (and handle control messages) until ``until`` (monotonic)."""
        while (left := until - time.monotonic()) > 0:
            self.control.check()
            self._poll_once(min(_POLL_MS * 10, int(left * 1000) + 1))

    def _drive(self, round_: int) -> RoundResult:
        """Deliver the round schedule's steps; return its result."""
        assert self.core is not None and self.inbox is not None
        schedule = round_steps(self.core, self.inbox, round_)
        timeout = self.core.config.runtime.chunk_timeout
        straggle_s = 0.0
        try:
            t_train = time.monotonic()
            step = self._compute(schedule)  # the first step comes when local training is done
            while _before_training(step):  # churn.join: models go to (come to) a new peer first
                if isinstance(step, Send):
                    self.data.send(step.to, step.message)
                elif isinstance(step, Await):
                    self._wait(round_, step, t_train + timeout)
                t_train = time.monotonic()
                step = self._compute(schedule)
            if self.slowdown > 1:  # a straggler: training took slowdown times as long
                straggle_s = (self.slowdown - 1) * (time.monotonic() - t_train)
                self._idle_until(time.monotonic() + straggle_s)
            start = time.monotonic()
            deadline = start + timeout
            while True:
                if isinstance(step, Send):
                    self.data.send(step.to, step.message)
                elif isinstance(step, Hold):
                    self._idle_until(start + step.at * timeout)
                else:
                    self._wait(round_, step, deadline)
                step = self._compute(schedule)
        except StopIteration as end:
            result: RoundResult = end.value
            if straggle_s:
                result.timing["straggle_s"] = straggle_s
            return result

    def _compute(self, schedule: Generator[Step, None, RoundResult]) -> Step:
        """The schedule's next step: what it computes before it (training, aggregation,
        evaluation) runs in one of the host's compute slots when ``runtime.compute_slots``
        limits them (peer/slots.py; the schedule never waits on a message inside)."""
        if self.slots is None:
            return next(schedule)
        with self.slots.held():
            return next(schedule)

    def run_round(self, round_: int, failed: list[int], graph: RoundGraph | None = None) -> None:
        """Round ``round_``: the schedule, the checkpoint if due, ``round_done``."""
        assert self.inbox is not None and self.core is not None
        self.data.mark_failed(failed)
        enter_round(self.core, self.inbox, round_, graph)
        result = self._drive(round_)
        self.inbox.close(round_)
        # A stop (Ctrl-C, an aborted run) reaches every peer at once, and an idle neighbour
        # exits at once and closes its connections: those are no lost messages. So a stop
        # that is queued, or on its way while connections closed, ends this peer here,
        # before they are counted (and logged) as lost.
        self._take_control(_STOP_WAIT_S if self.data.lost_pending() else 0.0)
        self.data.count_lost()
        t_ckpt = time.perf_counter()
        saved = self._save_checkpoint(round_)
        if saved:
            result.timing["checkpoint_s"] = time.perf_counter() - t_ckpt
        self.control.send(
            m.round_done(
                src=self.node,
                round_=round_,
                metrics=result.metrics,
                traffic=self.traffic.take(),
                timing=result.timing,
                delivery=result.delivery,
                checkpoint=round_ if saved else None,
            )
        )
        # an evaluation's blocks stay in the heap (peer/heap.py); "round": the training's too
        if "eval_s" in result.timing or self.core.config.runtime.release_memory == "round":
            heap.release_free_memory()

    def serve(self) -> None:
        """Wait for round starts until ``stop``; exits if the coordinator goes silent."""
        assert self.core is not None and self.inbox is not None
        runtime = self.core.config.runtime
        # a round takes at most round_timeout at the coordinator: a peer away under churn
        # (a new one before its join round) waits that long for every round it skips
        last = time.monotonic()
        while True:
            skipped = max(1, self.inbox.upcoming - self.inbox.started)
            silence = 2 * runtime.round_timeout * skipped + runtime.register_timeout
            if time.monotonic() - last > silence:
                raise CoordinatorLost(f"coordinator silent for {silence:g} s")
            self.control.check()
            events = dict(self.poller.poll(200))
            if self.data.sock in events:
                self.data.receive(self.inbox)
            if self.control.sock not in events:
                continue
            msg = self.control.receive()
            if msg is None:
                continue
            last = time.monotonic()
            if msg.kind != m.ROUND_START:
                self._handle_control(msg)
                continue
            if msg.round == crash_round(self.core.config, self.node):
                raise ScheduledCrash(f"scheduled crash in round {msg.round} (churn.crash)")
            if msg.round <= self.inbox.started:
                self.traffic.drop("stale_round", f"round_start {msg.round} after {self.inbox.started}")
                continue
            # rounds are started one by one (docs/PROTOCOL.md), or at the round a peer away
            # under churn was told it returns in
            if msg.round > max(self.inbox.started + 1, self.inbox.upcoming):
                self.traffic.drop("future_round", f"round_start {msg.round} after {self.inbox.started}")
                continue
            try:
                graph = self._round_graph(msg)
            except ProtocolError as exc:
                self.traffic.drop(exc.reason, exc.detail)
                continue
            complete = msg.fields.get("checkpoint", 0)
            if complete and self.options.checkpoint_dir is not None:  # older ones are not needed
                checkpoint.prune(self.options.checkpoint_dir, self.node, before=complete)
            self.run_round(msg.round, msg["failed"], graph)
            last = time.monotonic()

    def _round_graph(self, msg: m.Message) -> RoundGraph | None:
        """The round's graph from ``round_start`` (None in a static run); ProtocolError if a
        run whose graph changes sends none or a malformed one."""
        assert self.core is not None
        if self.core.assignment.receive_from is None:
            return None
        if "graph" not in msg.fields:
            raise ProtocolError("bad_field", f"round_start {msg.round} of a run whose graph changes has no graph")
        return graph_mod.from_fields(msg["graph"], node=self.node, num_nodes=self.core.assignment.num_nodes)

    def close(self) -> None:
        """Close the control channel and terminate its context (which waits up to the
        socket's 2 s linger for a last ``round_done`` to reach the coordinator); leave the
        data sockets and their context to the process's exit, which follows (``run_peer``
        is the body of a peer process).

        Every peer stops at once, so a DEALER closed while its connection is part-way
        through a multi-frame chunk message can see that connection fail in the same
        moment; libzmq 4.3 then asserts in ``session_base_t::clean_pipes`` (the pipe it
        would drain is already terminating: "Resource temporarily unavailable
        (src/session_base.cpp:233)") and aborts the process, printing a stray line on
        the terminal. The kernel closes an exiting process's sockets all the same, and
        nothing sent on them is awaited at this point.

        Leaving them takes a reference that outlives this object: without one, the last
        reference goes when ``run_peer`` returns, and pyzmq's ``Socket.__del__`` and
        ``Context.__del__`` close them there (LINGER 0) while the neighbours exit, which
        is the abort above (bench/interrupt_abort.py). A peer process ends in ``os._exit``
        (``launch.run.procs.peer_process``), which runs no destructor."""
        _LEFT_TO_EXIT.append(self.data)
        self.control.close()
        self.control_ctx.term()


def _before_training(step: Send | Await | Hold) -> bool:
    """A step of the ``model`` exchange that opens a new peer's join round (peer/rounds.py)."""
    if isinstance(step, Send):
        return step.message.kind == m.MODEL
    return isinstance(step, Await) and step.kind == m.MODEL


def run_peer(options: PeerOptions, runtime: Callable[[PeerOptions], PeerRuntime] = PeerRuntime) -> int:
    """Entry point of one peer process; returns its exit code. ``runtime`` builds the
    runtime (a subclass: the conformance kit's hostile peer, launch/tools/conformance_hostile.py)."""
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    rt = runtime(options)
    try:
        assignment = rt.register()
        try:
            rt.setup(assignment)
        except (ValueError, OSError) as exc:  # bad data root, model or parameters on this host
            log.error("peer %d cannot start: %s", rt.node, exc)
            return 1
        rt.serve()
    except (CoordinatorLost, RegistrationRefused) as exc:
        log.error("peer %s exits: %s", rt.node if rt.node != m.UNASSIGNED_ID else f"(pid {os.getpid()})", exc)
        return 1
    except PeerExit as exc:
        if str(exc) not in ("finished",):
            log.info("peer %d exits: %s", rt.node, exc)
        return 0
    except HandshakeError as exc:
        log.error("peer cannot join: %s", exc)
        return 1
    except ScheduledCrash as exc:  # no goodbye: closing its sockets is all the others see
        log.warning("peer %d exits: %s", rt.node, exc)
        return 1
    finally:
        rt.close()
    return 0
