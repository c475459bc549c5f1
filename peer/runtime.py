"""The peer process: drives a :class:`~peer.core.NodeCore` over real ZeroMQ sockets.

Sockets:

* control plane: one DEALER connected to the coordinator's ROUTER;
* data plane, incoming: one ROUTER bound on ``bind_host`` (random port) before the peer
  registers, with its final options (frame limit ``--max-message-bytes``, CURVE server
  key), advertised in ``register`` and never replaced; every connection's routing id is
  the sender's node id;
* data plane, outgoing: one DEALER per neighbor, connected to the neighbor's ROUTER with
  routing id ``str(node)`` before the peer answers ``ready``.

With CURVE (the peer was given ``--coordinator-key``, see ``peer/auth.py``) the control
DEALER is a CURVE client of the coordinator; the peer makes its own data-plane key pair,
binds its data ROUTER as a CURVE server with it and sends the public key in ``register``;
its ZAP handler holds neighbors' handshakes until ``assign`` names the keys it admits; the
outgoing DEALERs are CURVE clients without a routing id, and a message's sender is the
node whose key its connection authenticated with.

Nothing is read from the data socket before the assignment is set up: what neighbors send
meanwhile waits in ZeroMQ's queues (no message is lost; docs/PROTOCOL.md, *No silent loss*).

Every received message is decoded and validated; a bad one is dropped, counted by reason
(reported in ``round_done`` traffic) and logged, never raised. Chunk messages are accepted
for rounds in (last aggregated round, last started round + 1]: later rounds' messages that
arrive early are buffered, older ones are dropped as stale.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from peer import auth, checkpoint
from peer import data as datasets
from peer.attacks.base import Knowledge
from peer.core import NodeCore, Payloads
from peer.data import test_subset
from protocol import assignment as assignment_mod
from protocol import messages as m
from protocol import sockets
from protocol.assignment import Assignment
from protocol.codec import FittedChunk, ProtocolError, decode, encode, is_int
from protocol.config import RuntimeConfig

log = logging.getLogger("byzemu.peer")

_POLL_MS = 20


class PeerExit(Exception):
    """The coordinator told this peer to stop (or went silent)."""


class HandshakeError(Exception):
    """The control connection's security handshake failed (CURVE on one side only, or a
    wrong ``--coordinator-key``)."""


class CoordinatorLost(PeerExit):
    """The control connection to the coordinator closed and did not come back within
    ``runtime.coordinator_timeout`` seconds (the coordinator died, or its host)."""


class RegistrationRefused(PeerExit):
    """The coordinator answered ``register`` with ``stop`` (e.g. the run already started)."""


_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
#: control-connection events a peer watches: failed handshakes, and losing / regaining
#: the coordinator (a killed coordinator's kernel closes the TCP connection at once; a
#: hung host is caught by ZeroMQ heartbeats)
_CONTROL_EVENTS = _HANDSHAKE_FAILED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
#: ZMTP heartbeats on the control connection: a PING every 2 s, the connection closed after
#: 30 s without traffic. A loaded host (hundreds of peers on a few cores) can leave a peer's
#: I/O thread unscheduled for seconds: a 3 s timeout closed hundreds of healthy
#: connections at once with 256 peers on 2 cores (BENCHMARKS.md, section 7)
_HEARTBEAT_IVL_MS = 2000
_HEARTBEAT_TIMEOUT_MS = 30000


@dataclass
class Traffic:
    """Counters of one peer's data-plane traffic (reset each round, drops cumulative)."""

    sent_msgs: int = 0
    sent_bytes: int = 0  # whole messages: msgpack header frame + array frames
    sent_payload_bytes: int = 0  # array frames only (the chunks' float32 values)
    recv_msgs: int = 0
    recv_bytes: int = 0
    dropped: int = 0
    drops: Counter[str] = field(default_factory=Counter)

    def take(self) -> dict[str, Any]:
        out = {
            "sent_msgs": self.sent_msgs,
            "sent_bytes": self.sent_bytes,
            "sent_payload_bytes": self.sent_payload_bytes,
            "recv_msgs": self.recv_msgs,
            "recv_bytes": self.recv_bytes,
            "dropped": self.dropped,
            "drops_total": dict(self.drops),
        }
        self.sent_msgs = self.sent_bytes = self.sent_payload_bytes = self.recv_msgs = self.recv_bytes = self.dropped = 0
        return out


class PeerRuntime:
    """One peer: register, get assigned, then serve rounds until ``stop``."""

    def __init__(
        self,
        coordinator: str,
        *,
        bind_host: str = "127.0.0.1",
        advertise_host: str | None = None,
        data_root: str | None = None,
        assign_timeout: float = 600.0,
        coordinator_key: str | None = None,
        checkpoint_dir: str | None = None,
        max_message_bytes: int = RuntimeConfig.max_message_bytes,
    ) -> None:
        self.ctx = zmq.Context()
        self.ctrl = self.ctx.socket(zmq.DEALER)
        self.ctrl.setsockopt(zmq.LINGER, 2000)
        self.ctrl.setsockopt(zmq.HEARTBEAT_IVL, _HEARTBEAT_IVL_MS)
        self.ctrl.setsockopt(zmq.HEARTBEAT_TIMEOUT, _HEARTBEAT_TIMEOUT_MS)
        # a fixed, random routing id: a control connection that closes and comes back keeps
        # the identity the coordinator registered (the coordinator sets ROUTER_HANDOVER)
        self.ctrl.setsockopt(zmq.ROUTING_ID, b"p" + os.urandom(15))
        self.coordinator, self.coordinator_key = coordinator, coordinator_key
        if coordinator_key is not None:  # any client key: the coordinator admits everyone
            public, secret = (k.decode() for k in zmq.curve_keypair())
            auth.make_curve_client(self.ctrl, public=public, secret=secret, server_key=coordinator_key)
        self.ctrl_monitor: zmq.Socket | None = self.ctrl.get_monitor_socket(_CONTROL_EVENTS)
        self._lost_since: float | None = None  # when the control connection closed
        self._handshaken = False  # whether a control handshake ever succeeded
        self.coordinator_timeout = RuntimeConfig.coordinator_timeout  # the run's, once assigned
        self.checkpoint_dir = checkpoint_dir
        self.resume: dict[str, Any] | None = None  # assign -> resume: {round, digest}
        self.ctrl.connect(coordinator)
        #: the data socket's limit, fixed here for the whole run; a run with a larger
        #: runtime.max_message_bytes is refused (setup)
        self.socket_max_bytes = max_message_bytes
        self.max_bytes = max_message_bytes  # the run's limit (codec check), once assigned
        self.curve: assignment_mod.CurveKeys | None = None  # CURVE runs: own keys, peers' keys once assigned
        self.zap: auth.ZapHandler | None = None
        if coordinator_key is not None:  # a CURVE run: the data plane is CURVE too
            public, secret = (k.decode() for k in zmq.curve_keypair())
            self.curve = assignment_mod.CurveKeys(public, secret)
            self.zap = auth.ZapHandler(self.ctx, None, owner=m.UNASSIGNED_ID)  # before the server binds
        self.data = sockets.bind_router(
            self.ctx, f"tcp://{bind_host}:*", max_frame=sockets.frame_limit(max_message_bytes),
            curve_secret=self.curve.secret if self.curve is not None else None,
        )
        port = self.data.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1]
        self.data_addr = f"tcp://{advertise_host or bind_host}:{port}"
        self.data_drops = sockets.DropWatch(self.data)
        self.data_root = data_root
        self.assign_timeout = assign_timeout
        self.out: dict[int, zmq.Socket] = {}
        self.poller = zmq.Poller()
        self.poller.register(self.ctrl, zmq.POLLIN)
        self.poller.register(self.data, zmq.POLLIN)
        self.traffic = Traffic()
        self.core: NodeCore | None = None
        self.node = m.UNASSIGNED_ID
        self.failed: set[int] = set()
        self.started = 0  # last round announced by the coordinator
        self.aggregated = 0  # last round aggregated
        self.buffer: dict[int, Payloads] = defaultdict(dict)  # round -> sender -> chunks
        self.collusion: dict[int, dict[int, Payloads]] = defaultdict(dict)  # round -> colluder -> view
        self.oracle: dict[int, dict[int, np.ndarray]] = defaultdict(dict)  # round -> honest -> vector
        self._zap_counted = 0  # refusals of self.zap already folded into the drop counters

    # ------------------------------------------------------------------ drops

    def _drop(self, reason: str, detail: str) -> None:
        self.traffic.dropped += 1
        self.traffic.drops[reason] += 1
        count = self.traffic.drops[reason]
        if count <= 10 or count % 100 == 0:
            log.warning("peer %d dropped a message (%s, #%d): %s", self.node, reason, count, detail)

    def _count_dropped_connections(self) -> None:
        """Fold the data socket's dropped connections (a frame over the limit, a broken
        stream, a sender that died: ``protocol/sockets.py``) into the drop counters."""
        for _ in range(self.data_drops.new_drops()):
            self._drop("connection_dropped", "an inbound data connection closed: a frame over "
                       f"{sockets.frame_limit(self.max_bytes)} bytes, a malformed stream or a dead sender")

    # ------------------------------------------------------------------ control plane

    def _send_ctrl(self, msg: m.Message) -> None:
        self.ctrl.send_multipart(encode(msg), copy=False)

    def _recv_ctrl(self) -> m.Message | None:
        frames = self.ctrl.recv_multipart(copy=False)
        try:
            msg = decode(frames, allowed=m.TO_PEER_CONTROL, max_bytes=1 << 30)
        except ProtocolError as exc:
            self._drop(exc.reason, f"control: {exc.detail}")
            return None
        if msg.src != m.COORDINATOR_ID:
            self._drop("sender_mismatch", f"control message claims src {msg.src}")
            return None
        return msg

    def _handle_async_ctrl(self, msg: m.Message) -> None:
        """Control messages that may arrive at any time after assignment."""
        if msg.kind == m.STOP:
            raise PeerExit(msg["reason"])
        if msg.kind == m.PEER_FAILED:
            self.failed.update(n for n in msg["nodes"] if isinstance(n, int))
        else:
            self._drop("unexpected_kind", f"{msg.kind} in round {self.started}")

    def register(self) -> Assignment:
        self._send_ctrl(m.register(
            data_addr=self.data_addr, host=socket.gethostname(), pid=os.getpid(),
            curve_key=self.curve.public if self.curve is not None else None,
            max_message_bytes=self.socket_max_bytes,
        ))
        deadline = time.monotonic() + self.assign_timeout
        while time.monotonic() < deadline:
            self._check_control()
            if not self.ctrl.poll(200):
                continue
            msg = self._recv_ctrl()
            if msg is None:
                continue
            if msg.kind == m.STOP:
                raise RegistrationRefused(msg["reason"])
            if msg.kind != m.ASSIGN:
                self._drop("unexpected_kind", f"{msg.kind} before assignment")
                continue
            try:
                assignment, addresses = assignment_mod.from_message(msg)
                peer_keys = assignment_mod.curve_peers(msg)
                if (peer_keys is None) != (self.curve is None):
                    raise ProtocolError("bad_assignment", "curve keys in a run without CURVE on the control plane, "
                                        "or none in a run with it")
            except ProtocolError as exc:
                self._drop(exc.reason, exc.detail)
                continue
            resume = msg.fields.get("resume")
            if resume is not None and not (
                is_int(resume.get("round")) and resume["round"] >= 1 and isinstance(resume.get("digest"), str)
            ):
                self._drop("bad_assignment", f"resume {resume!r}")
                continue
            self.addresses = addresses
            self.resume = resume
            if self.curve is not None and self.zap is not None and peer_keys is not None:
                self.curve = assignment_mod.CurveKeys(self.curve.public, self.curve.secret, peer_keys)
                # answer the neighbors' handshakes it held, before the (slow) setup
                self.zap.admit({k: j for j, k in peer_keys.items()}, owner=assignment.node)
            return assignment
        raise PeerExit(f"no assignment within {self.assign_timeout:g} s")

    def _check_control(self) -> None:
        """Read the control connection's events. Raise HandshakeError if its handshake
        failed (libzmq would otherwise retry or give up silently and the peer wait for an
        assignment in vain), CoordinatorLost once it has stayed closed for
        ``runtime.coordinator_timeout`` seconds."""
        while self.ctrl_monitor is not None and self.ctrl_monitor.poll(0):
            event = recv_monitor_message(self.ctrl_monitor)
            if event["event"] & _HANDSHAKE_FAILED:
                self._handshake_failed(event)
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    log.warning(
                        "peer %d: control connection to the coordinator at %s closed; exiting in %g s "
                        "unless it comes back (runtime.coordinator_timeout)",
                        self.node, self.coordinator, self.coordinator_timeout,
                    )
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # (re)connected, and it speaks
                self._handshaken = True
                self._lost_since = None
            # a bare TCP connect (EVENT_CONNECTED) does not count as back: a coordinator
            # that refuses the security handshake closes every new connection, and the
            # peer may see only that close, not the failed handshake
        if self._lost_since is not None and time.monotonic() - self._lost_since > self.coordinator_timeout:
            if not self._handshaken:
                self._handshake_failed({"event": zmq.EVENT_DISCONNECTED, "value": 0})
            raise CoordinatorLost(
                f"lost the coordinator at {self.coordinator}: no control connection for "
                f"{self.coordinator_timeout:g} s (runtime.coordinator_timeout); rounds it recorded are in "
                f"its rounds.jsonl, resume from the last checkpoint with `byzemu launch --resume RUN_DIR`"
            )

    def _handshake_failed(self, event: dict[str, Any]) -> None:
        if self.coordinator_key:
            why = "this peer uses CURVE (--coordinator-key): the coordinator runs without CURVE or has another key"
        else:
            why = "the coordinator runs with CURVE: pass --coordinator-key KEY, the key it printed at start"
        raise HandshakeError(
            f"security handshake with the coordinator at {self.coordinator} failed "
            f"(zmq event {event['event']}, errno {event['value']}); {why}"
        )

    def _close_monitor(self) -> None:
        if self.ctrl_monitor is not None:
            self.ctrl.disable_monitor()
            self.ctrl_monitor.close(linger=0)
            self.ctrl_monitor = None

    def setup(self, assignment: Assignment) -> None:
        cfg = assignment.config
        self.node = assignment.node
        if cfg.runtime.max_message_bytes > self.socket_max_bytes:
            raise ValueError(
                f"the run's runtime.max_message_bytes={cfg.runtime.max_message_bytes} exceeds this peer's data-socket "
                f"limit {self.socket_max_bytes}, fixed before registering: start it with --max-message-bytes "
                f"{cfg.runtime.max_message_bytes}"
            )
        self.max_bytes = cfg.runtime.max_message_bytes
        self.coordinator_timeout = cfg.runtime.coordinator_timeout
        root = self.data_root or cfg.data.root
        root_path = Path(root) if root else None
        d = cfg.data
        train = datasets.load(d.dataset, root_path, train=True, synthetic_size=d.synthetic_size, seed=cfg.seed)
        test = datasets.load(d.dataset, root_path, train=False, synthetic_size=d.synthetic_size, seed=cfg.seed)
        self.core = NodeCore(assignment, train_data=train, test_set=test_subset(test, d.test_samples))
        if self.resume is not None:
            self._load_checkpoint(self.resume["round"], self.resume["digest"])
        elif cfg.runtime.checkpoint_every and self.checkpoint_dir is None:
            log.warning("peer %d: runtime.checkpoint_every=%d but no checkpoint folder (byzemu peer "
                        "--checkpoint-dir): this peer writes no checkpoints", self.node, cfg.runtime.checkpoint_every)
        self._connect(assignment.linked())  # before ready: round 1 may start at once
        # everything built so far (torch's modules, the data, the model) lives for the whole
        # run: move it out of the cyclic collector's reach, so a full collection scans only
        # what rounds allocate (~85 ms otherwise, at random rounds) and never writes to the
        # pages a forked peer shares with its forkserver
        gc.freeze()
        self._send_ctrl(m.ready(src=self.node))

    # ------------------------------------------------------------------ checkpoints

    def _load_checkpoint(self, round_: int, digest: str) -> None:
        """Resume: load this node's checkpoint of ``round_`` (ValueError/OSError if it is
        missing, foreign, or its model is not the one the coordinator recorded)."""
        assert self.core is not None
        if self.checkpoint_dir is None:
            raise ValueError(f"told to resume from round {round_}, but this peer has no checkpoint folder")
        state = checkpoint.load(self.checkpoint_dir, round_, self.node)
        if state.get("digest") != digest:
            raise ValueError(
                f"checkpoint of round {round_} holds model {state.get('digest')}, the run recorded {digest}"
            )
        self.core.load_state_dict(state)
        self.started = self.aggregated = round_
        log.info("peer %d resumes after round %d", self.node, round_)

    def _save_checkpoint(self, round_: int) -> bool:
        """Write this node's checkpoint of ``round_`` if one is due; True if written."""
        assert self.core is not None
        every = self.core.config.runtime.checkpoint_every
        if not every or round_ % every or self.checkpoint_dir is None:
            return False
        try:
            checkpoint.save(self.checkpoint_dir, round_, self.node, self.core.state_dict(round_))
        except OSError as exc:  # a full disk must not stop the run; the round is not complete
            log.error("peer %d: cannot write the checkpoint of round %d: %s", self.node, round_, exc)
            return False
        return True

    def _connect(self, peers: list[int]) -> None:
        """One DEALER per peer in ``peers`` (routing id = our node id, or with CURVE a
        CURVE client with no routing id: the receiver identifies us by our key)."""
        for j in peers:
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 1000)
            try:
                if self.curve is None:
                    s.setsockopt(zmq.ROUTING_ID, str(self.node).encode())
                else:
                    auth.make_curve_client(
                        s, public=self.curve.public, secret=self.curve.secret, server_key=self.curve.peers[j]
                    )
                s.connect(self.addresses[j])
            except (zmq.ZMQError, KeyError) as exc:  # e.g. a registrant advertised "host:port" without tcp://
                s.close(linger=0)
                log.error("peer %d: cannot connect to neighbor %d at %r (%s); treating it as failed",
                          self.node, j, self.addresses[j], exc)
                self.failed.add(j)
                continue
            self.out[j] = s

    # ------------------------------------------------------------------ data plane

    def _recv_data(self) -> None:
        frames = self.data.recv_multipart(copy=False)
        identity, body = frames[0].bytes, frames[1:]
        try:
            assert self.core is not None  # compiled check first; anything else: generic decode, named drop
            msg = self.core.chunk_check.decode(body) or decode(body, allowed=m.DATA_PLANE, max_bytes=self.max_bytes)
            self._accept_data(identity, msg, auth.user_id(body[0]) if self.curve is not None else None)
        except ProtocolError as exc:
            self._drop(exc.reason, f"data from {identity!r}: {exc.detail}")
            return
        self.traffic.recv_msgs += 1
        self.traffic.recv_bytes += sum(len(f) for f in body)

    def _check_round(self, msg: m.Message, seen: dict[int, dict[int, Any]]) -> None:
        """Round window (last aggregated, last started + 1] and one message per sender."""
        r = msg.round
        if r <= self.aggregated:
            raise ProtocolError("stale_round", f"{msg.kind} round {r} from {msg.src}, at {self.aggregated}")
        if r > self.started + 1:
            raise ProtocolError("future_round", f"{msg.kind} round {r} from {msg.src}, at {self.started}")
        if msg.src in seen[r]:
            raise ProtocolError("duplicate", f"second round-{r} {msg.kind} from {msg.src}")

    def _accept_data(self, identity: bytes, msg: m.Message, key_owner: str | None = None) -> None:
        """Check and file one data message; ``key_owner`` (CURVE only) is the node id whose
        key the connection authenticated with, which replaces the routing-id check."""
        core = self.core
        assert core is not None
        if self.curve is not None:
            if key_owner != str(msg.src):
                raise ProtocolError("key_mismatch", f"connection with the key of node {key_owner} claims src {msg.src}")
        elif identity != str(msg.src).encode():
            raise ProtocolError("sender_mismatch", f"connection {identity!r} claims src {msg.src}")
        if msg.kind == m.CHUNK:
            if not isinstance(msg, FittedChunk):  # a FittedChunk passed core.chunk_check already
                core.check_payload(msg.src, msg["chunks"], msg.arrays)
            self._check_round(msg, self.buffer)
            self.buffer[msg.round][msg.src] = dict(zip(msg["chunks"], msg.arrays))
        elif msg.kind == m.COLLUDE:
            view = core.check_collusion(msg.src, msg["items"], msg.arrays)
            self._check_round(msg, self.collusion)
            self.collusion[msg.round][msg.src] = view
        else:
            core.check_oracle(msg.src, msg.arrays)
            self._check_round(msg, self.oracle)
            self.oracle[msg.round][msg.src] = msg.arrays[0]

    def _send(self, j: int, msg: m.Message) -> None:
        if j in self.failed or j not in self.out:
            return
        frames = encode(msg)
        try:
            self.out[j].send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            self._drop("send_blocked", f"peer {j} is not draining its queue")
            return
        self.traffic.sent_msgs += 1
        self.traffic.sent_bytes += sum(memoryview(f).nbytes for f in frames)
        self.traffic.sent_payload_bytes += sum(memoryview(f).nbytes for f in frames[1:])

    def _send_chunks(self, round_: int, outgoing: Payloads) -> None:
        for j in sorted(outgoing):
            self._send(j, m.chunk(src=self.node, round_=round_, chunks=outgoing[j]))

    def _wait_for(self, what: str, round_: int, expected: set[int], have: dict[int, Any], deadline: float) -> None:
        """Poll until every live peer in ``expected`` is in ``have`` or the deadline passes."""
        while True:
            waiting = expected - self.failed - set(have)
            if not waiting:
                return
            self._check_control()
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("peer %d round %d: no %s from %s by the deadline", self.node, round_, what, sorted(waiting))
                return
            self._poll_once(min(_POLL_MS * 10, int(left * 1000) + 1))

    def _gather_knowledge(self, round_: int, deadline: float) -> Knowledge:
        """Rushing attacker: wait for the round's honest chunks (and, in oracle mode, the
        honest models), share them with the colluders, wait for theirs."""
        core = self.core
        assert core is not None
        honest = set(core.honest_neighbors())
        self._wait_for("chunks", round_, honest, self.buffer[round_], deadline)
        oracle = None
        if core.oracle_mode:
            everyone = set(range(core.assignment.num_nodes)) - set(core.colluders) - {self.node}
            self._wait_for("oracle models", round_, everyone, self.oracle[round_], deadline)
            oracle = dict(self.oracle[round_])
        observed = {j: v for j, v in self.buffer[round_].items() if j in honest}
        for c in core.colluders:
            self._send(c, m.collude(src=self.node, round_=round_, observed=observed))
        self._wait_for("collusion views", round_, set(core.colluders), self.collusion[round_], deadline)
        return Knowledge(observed=observed, shared=dict(self.collusion[round_]), oracle=oracle)


    # ------------------------------------------------------------------ rounds

    def _poll_once(self, timeout_ms: int) -> None:
        for sock, _ in self.poller.poll(timeout_ms):
            if sock is self.data:
                self._recv_data()
            else:
                msg = self._recv_ctrl()
                if msg is not None:
                    self._handle_async_ctrl(msg)

    def run_round(self, round_: int, failed: list[int]) -> None:
        assert self.core is not None
        cfg = self.core.config
        self.failed.update(n for n in failed if isinstance(n, int))
        self.started = round_
        t0, cpu0 = time.perf_counter(), time.process_time()
        core = self.core
        core.train(round_)
        t_send = time.perf_counter()
        deadline = time.monotonic() + cfg.runtime.chunk_timeout
        for j in core.assignment.oracle_targets:
            self._send(j, m.oracle(src=self.node, round_=round_, vector=core.vector))
        knowledge = self._gather_knowledge(round_, deadline) if core.needs_knowledge(round_) else None
        self._send_chunks(round_, core.outgoing(round_, knowledge))
        self._wait_for("chunks", round_, set(core.neighbors), self.buffer[round_], deadline)
        t_wait = time.perf_counter()
        received = self.buffer.pop(round_, {})
        result = core.end_round(round_, received)
        self.aggregated = round_
        for buffer in (self.buffer, self.collusion, self.oracle):
            for stale in [r for r in buffer if r <= round_]:
                del buffer[stale]
        timing = dict(result.timing)
        timing.update(
            exchange_s=t_wait - t_send, round_s=time.perf_counter() - t0, round_cpu_s=time.process_time() - cpu0
        )
        if self.zap is not None and self.zap.refused > self._zap_counted:
            refused, self._zap_counted = self.zap.refused - self._zap_counted, self.zap.refused
            self.traffic.dropped += refused
            self.traffic.drops["unknown_key"] += refused  # logged by the handler
        self._count_dropped_connections()
        t_ckpt = time.perf_counter()
        saved = self._save_checkpoint(round_)
        if saved:
            timing["checkpoint_s"] = time.perf_counter() - t_ckpt
        done = m.round_done(
            src=self.node, round_=round_, metrics=result.metrics, traffic=self.traffic.take(), timing=timing
        )
        if saved:
            done.fields["checkpoint"] = round_
        self._send_ctrl(done)

    def serve(self) -> None:
        """Wait for round starts until ``stop``; exits if the coordinator goes silent."""
        assert self.core is not None
        silence = 2 * self.core.config.runtime.round_timeout + self.core.config.runtime.register_timeout
        last = time.monotonic()
        while True:
            if time.monotonic() - last > silence:
                raise CoordinatorLost(f"coordinator silent for {silence:g} s")
            self._check_control()
            events = dict(self.poller.poll(200))
            if self.data in events:
                self._recv_data()
            if self.ctrl in events:
                msg = self._recv_ctrl()
                if msg is None:
                    continue
                last = time.monotonic()
                if msg.kind == m.ROUND_START:
                    if msg.round <= self.started:
                        self._drop("stale_round", f"round_start {msg.round} after {self.started}")
                        continue
                    complete = msg.fields.get("checkpoint", 0)
                    if complete and self.checkpoint_dir is not None:  # older ones are not needed
                        checkpoint.prune(self.checkpoint_dir, self.node, before=complete)
                    self.run_round(msg.round, msg["failed"])
                    last = time.monotonic()
                else:
                    self._handle_async_ctrl(msg)

    def close(self) -> None:
        self._close_monitor()
        self.data_drops.close()
        for s in self.out.values():
            s.close(linger=0)
        self.data.close(linger=0)
        self.ctrl.close(linger=2000)
        self.ctx.term()


def run_peer(
    coordinator: str,
    *,
    bind_host: str = "127.0.0.1",
    advertise_host: str | None = None,
    data_root: str | None = None,
    assign_timeout: float = 600.0,
    coordinator_key: str | None = None,
    checkpoint_dir: str | None = None,
    max_message_bytes: int = RuntimeConfig.max_message_bytes,
) -> int:
    """Entry point of one peer process; returns its exit code."""
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    rt = PeerRuntime(
        coordinator,
        bind_host=bind_host,
        advertise_host=advertise_host,
        data_root=data_root,
        assign_timeout=assign_timeout,
        coordinator_key=coordinator_key,
        checkpoint_dir=checkpoint_dir,
        max_message_bytes=max_message_bytes,
    )
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
    finally:
        rt.close()
    return 0
