"""A peer's control channel: its one DEALER to the coordinator's ROUTER.

It registers and waits for the assignment (:func:`await_assignment`), sends ``ready``
and ``round_done``, and reads control messages. Its connection is watched (a socket monitor and ZMTP heartbeats): a
failed security handshake raises :class:`HandshakeError` (libzmq would otherwise retry
or give up silently and the peer wait for an assignment in vain), and a connection that
stays closed for ``runtime.coordinator_timeout`` seconds raises :class:`CoordinatorLost`.
With CURVE (``--coordinator-key``) the DEALER is a CURVE client of the coordinator; any
client key will do, the coordinator admits everyone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from peer import auth
from peer.traffic import Traffic
from protocol import assignment as assignment_mod
from protocol import messages as m
from protocol import reports, rundir, sockets
from protocol.codec import ProtocolError, decode, encode, is_int
from protocol.config import RuntimeConfig
from protocol.mac import LinkKeys

log = logging.getLogger("byzemu.peer")


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


#: control-connection events a peer watches: failed handshakes, and losing / regaining
#: the coordinator (a killed coordinator's kernel closes the TCP connection at once; a
#: hung host is caught by ZeroMQ heartbeats)
_CONTROL_EVENTS = (
    sockets.HANDSHAKE_FAILED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
)
#: ZMTP heartbeats on the control connection: a PING every 2 s, the connection closed after
#: 30 s without traffic. A loaded host (hundreds of peers on a few cores) can leave a peer's
#: I/O thread unscheduled for seconds: a 3 s timeout closed hundreds of healthy
#: connections at once with 256 peers on 2 cores (BENCHMARKS.md, section 7)
_HEARTBEAT_IVL_MS = 2000
_HEARTBEAT_TIMEOUT_MS = 30000
#: largest control message a peer accepts (an assignment carries its shard)
_MAX_CONTROL_BYTES = 1 << 30


class ControlChannel:
    """The DEALER to the coordinator at ``coordinator`` (CURVE client of
    ``coordinator_key`` when given), with its connection watch; drops are counted in
    ``traffic``."""

    def __init__(self, ctx: zmq.Context, coordinator: str, *, coordinator_key: str | None, traffic: Traffic) -> None:
        self.coordinator, self.coordinator_key = coordinator, coordinator_key
        self.traffic = traffic
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, _HEARTBEAT_IVL_MS)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, _HEARTBEAT_TIMEOUT_MS)
        # a fixed, random routing id: a control connection that closes and comes back keeps
        # the identity the coordinator registered (the coordinator sets ROUTER_HANDOVER)
        self.sock.setsockopt(zmq.ROUTING_ID, b"p" + os.urandom(15))
        if coordinator_key is not None:
            public, secret = (k.decode() for k in zmq.curve_keypair())
            auth.make_curve_client(self.sock, public=public, secret=secret, server_key=coordinator_key)
        self._monitor: zmq.Socket | None = self.sock.get_monitor_socket(_CONTROL_EVENTS)
        self._lost_since: float | None = None  # when the connection closed
        self._handshaken = False  # whether a handshake ever succeeded
        self.timeout = RuntimeConfig.coordinator_timeout  #: the run's, once assigned
        self.sock.connect(coordinator)

    def send(self, msg: m.Message) -> None:
        """Hand ``msg`` to the control socket without ever blocking on it: a DEALER whose
        connection failed its handshake (a peer without the coordinator's CURVE key) or
        closed has no pipe to queue into, and a plain blocking send would wait forever
        without reading the connection's events. While it cannot send, it reads them
        (:meth:`check`: HandshakeError, CoordinatorLost) and gives up with
        CoordinatorLost after :attr:`timeout` seconds."""
        frames = encode(msg)
        since = time.monotonic()
        while True:
            try:
                self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                return
            except zmq.Again:
                pass
            self.check()
            if time.monotonic() - since > self.timeout:
                self._give_up(
                    f"cannot send to the coordinator at {self.coordinator}: no connection to queue "
                    f"{msg.kind!r} on for {self.timeout:g} s (runtime.coordinator_timeout)"
                )
            self.sock.poll(100, zmq.POLLOUT)

    def receive(self) -> m.Message | None:
        """One pending control message from the coordinator, or None if it was dropped
        (counted and logged)."""
        frames = self.sock.recv_multipart(copy=False)
        try:
            msg = decode(frames, allowed=m.TO_PEER_CONTROL, max_bytes=_MAX_CONTROL_BYTES)
        except ProtocolError as exc:
            self.traffic.drop(exc.reason, f"control: {exc.detail}")
            return None
        if msg.src != m.COORDINATOR_ID:
            self.traffic.drop("sender_mismatch", f"control message claims src {msg.src}")
            return None
        return msg

    def check(self) -> None:
        """Read the connection's events: HandshakeError if its handshake failed,
        CoordinatorLost once it has stayed closed for :attr:`timeout` seconds."""
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] & sockets.HANDSHAKE_FAILED:
                self._handshake_failed(event)
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    log.warning(
                        "peer %d: control connection to the coordinator at %s closed; exiting in %g s "
                        "unless it comes back (runtime.coordinator_timeout)",
                        self.traffic.node,
                        self.coordinator,
                        self.timeout,
                    )
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # (re)connected, and it speaks
                self._handshaken = True
                self._lost_since = None
            # a bare TCP connect (EVENT_CONNECTED) does not count as back: a coordinator
            # that refuses the security handshake closes every new connection, and the
            # peer may see only that close, not the failed handshake
        if self._lost_since is not None and time.monotonic() - self._lost_since > self.timeout:
            self._give_up(
                f"lost the coordinator at {self.coordinator}: no control connection for "
                f"{self.timeout:g} s (runtime.coordinator_timeout); rounds it recorded are in "
                f"its {rundir.ROUNDS}, resume from the last checkpoint with `byzemu launch --resume RUN_DIR`"
            )

    def _give_up(self, detail: str) -> None:
        """The coordinator stayed out of reach for :attr:`timeout`: HandshakeError if no
        handshake ever succeeded (a coordinator that refuses it may show only closed
        connections), else CoordinatorLost with ``detail``."""
        if not self._handshaken:
            self._handshake_failed({"event": zmq.EVENT_DISCONNECTED, "value": 0})
        raise CoordinatorLost(detail)

    def _handshake_failed(self, event: Mapping[str, Any]) -> None:
        if self.coordinator_key:
            why = "this peer uses CURVE (--coordinator-key): the coordinator runs without CURVE or has another key"
        else:
            why = "the coordinator runs with CURVE: pass --coordinator-key KEY, the key it printed at start"
        raise HandshakeError(
            f"security handshake with the coordinator at {self.coordinator} failed "
            f"(zmq event {event['event']}, errno {event['value']}); {why}"
        )

    def close(self) -> None:
        if self._monitor is not None:
            self.sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self.sock.close(linger=2000)


@dataclass(frozen=True, kw_only=True)
class Registration:
    """What the coordinator's ``assign`` told this peer."""

    assignment: assignment_mod.Assignment
    addresses: dict[int, str]  #: data address of every peer it sends to
    peer_keys: dict[int, str] | None  #: CURVE runs: public key of every peer it talks to
    resume: dict[str, Any] | None  #: a resumed run: {round, digest} of the checkpoint to load
    mac_keys: LinkKeys | None = None  #: runtime.sender_mac: the keys of its links
    #: assign -> model -> init_digest: the digest of the initial model (None if not sent)
    init_digest: str | None = None


def await_assignment(channel: ControlChannel, register: m.Message, *, timeout: float, curve: bool) -> Registration:
    """Send ``register`` and wait up to ``timeout`` seconds for a valid ``assign`` (other
    messages and malformed assignments are dropped). ``curve``: whether this peer uses
    CURVE, so the assignment must carry the peers' keys. RegistrationRefused if the
    coordinator answers ``stop``, PeerExit if nothing comes in time."""
    channel.send(register)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        channel.check()
        if not channel.sock.poll(200):
            continue
        msg = channel.receive()
        if msg is None:
            continue
        if msg.kind == m.STOP:
            raise RegistrationRefused(msg["reason"])
        if msg.kind != m.ASSIGN:
            channel.traffic.drop("unexpected_kind", f"{msg.kind} before assignment")
            continue
        try:
            assignment, addresses = assignment_mod.from_message(msg)
            peer_keys = assignment_mod.curve_peers(msg)
            if (peer_keys is None) == curve:
                raise ProtocolError(
                    "bad_assignment", "curve keys in a run without CURVE on the control plane, or none in a run with it"
                )
            mac_keys = LinkKeys.from_assign(msg)
            if (mac_keys is None) == assignment.config.runtime.sender_mac:
                raise ProtocolError("bad_assignment", "mac keys present iff runtime.sender_mac, and they are not")
        except ProtocolError as exc:
            channel.traffic.drop(exc.reason, exc.detail)
            continue
        model = msg.fields.get("model", {})
        init_digest = model.get("init_digest") if isinstance(model, dict) else None
        if "model" in msg.fields and not (isinstance(init_digest, str) and reports.DIGEST.fullmatch(init_digest)):
            channel.traffic.drop("bad_assignment", f"model.init_digest {init_digest!r} is not 16 lowercase hex digits")
            continue
        resume = msg.fields.get("resume")
        if resume is not None and not (
            is_int(resume.get("round")) and resume["round"] >= 1 and isinstance(resume.get("digest"), str)
        ):
            channel.traffic.drop("bad_assignment", f"resume {resume!r}")
            continue
        return Registration(
            assignment=assignment,
            addresses=addresses,
            peer_keys=peer_keys,
            resume=resume,
            mac_keys=mac_keys,
            init_digest=init_digest,
        )
    raise PeerExit(f"no assignment within {timeout:g} s")
