"""A peer's data plane: its one bound ROUTER for incoming messages and one DEALER per
peer it sends to.

* incoming: one ROUTER bound on ``bind_host`` (random port) before the peer registers,
  with its final options (frame limit ``--max-message-bytes``, CURVE server key), via
  :func:`protocol.sockets.bind_router`; advertised in ``register`` and never replaced.
  Without CURVE every connection's routing id is the sender's node id; with CURVE the
  sender is the node whose key the connection authenticated with (``peer/auth.py``: the
  ZAP handler holds neighbors' handshakes until ``assign`` names the keys it admits);
* outgoing: one DEALER per linked peer, connected before the peer answers ``ready``
  (routing id ``str(node)``, or a CURVE client without one). In a run whose graph
  changes, a link to a peer is opened the first time this one sends to it and then kept
  for the run: not sending to a former neighbor is what disconnects it. Closing a DEALER
  would discard what its queue still holds (a silent loss), and a link reopened later
  under the same routing id could collide at the receiver's ROUTER with the old one.

With ``runtime.sender_mac`` every message sent ends with a tag under the link's key and
every message received must carry a valid one for its claimed sender (``protocol/mac.py``);
that check runs before the connection-identity checks.

Nothing is read from the data socket before the assignment is set up: what neighbors
send meanwhile waits in ZeroMQ's queues (docs/PROTOCOL.md, *No silent loss*). Every
received message is decoded and its sender checked here, then filed by the node's
:class:`~peer.inbox.Inbox`; a bad one is dropped, counted by reason in
:class:`~peer.traffic.Traffic` and logged, never raised. So are connections the socket
closed (a frame over the limit, a broken stream, a dead sender) and handshakes the ZAP
handler refused (``unknown_key``).
"""

from __future__ import annotations

import logging
from typing import Any

import zmq

from peer import auth
from peer.inbox import Inbox
from peer.traffic import Traffic
from protocol import assignment as assignment_mod
from protocol import messages as m
from protocol import sockets
from protocol.codec import ProtocolError, encode
from protocol.mac import LinkKeys

log = logging.getLogger("byzemu.peer")


class DataPlane:
    """The data sockets of one peer; ``curve`` (CURVE runs) holds its own key pair."""

    def __init__(
        self,
        ctx: zmq.Context,
        *,
        bind_host: str,
        advertise_host: str,
        max_message_bytes: int,
        curve: assignment_mod.CurveKeys | None,
        traffic: Traffic,
    ) -> None:
        self.ctx = ctx
        self.traffic = traffic
        self.curve = curve
        #: the socket's limit, fixed here for the whole run (a run with a larger
        #: runtime.max_message_bytes is refused at setup)
        self.socket_max_bytes = max_message_bytes
        self.max_bytes = max_message_bytes  #: the run's limit (codec check), once assigned
        # the ZAP handler is bound before the CURVE server, so no handshake goes unanswered
        self.zap = auth.ZapHandler(ctx, None, owner=m.UNASSIGNED_ID) if curve is not None else None
        self._zap_counted = 0  # refusals of self.zap already counted as drops
        self.sock = sockets.bind_router(
            ctx,
            f"tcp://{bind_host}:*",
            max_frame=sockets.frame_limit(max_message_bytes),
            curve_secret=curve.secret if curve is not None else None,
        )
        port = self.sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1]
        self.address = f"tcp://{advertise_host}:{port}"  #: advertised in register
        self._watch = sockets.DropWatch(self.sock)
        self.out: dict[int, zmq.Socket] = {}
        self.node = m.UNASSIGNED_ID
        self.num_nodes = 0  #: the run's N, from the assignment
        self.addresses: dict[int, str] = {}  #: data address of every peer this one may link to
        self.failed: set[int] = set()  #: peers known failed: nothing is sent to them
        #: the failed peers the coordinator named: what they send is dropped (failed_sender)
        self.failed_by_coordinator: set[int] = set()
        #: runtime.sender_mac: the link keys from the assignment (set before anything is read)
        self.mac: LinkKeys | None = None

    def mark_failed(self, nodes: list[Any]) -> None:
        """The coordinator names ``nodes`` failed (``round_start.failed``, ``peer_failed``)."""
        named = {n for n in nodes if isinstance(n, int)}
        self.failed |= named
        self.failed_by_coordinator |= named

    def admit(self, peer_keys: dict[int, str], *, node: int) -> None:
        """CURVE: the assignment names the peers' keys; answer the handshakes held."""
        if self.curve is None or self.zap is None:
            return
        self.curve = assignment_mod.CurveKeys(self.curve.public, self.curve.secret, peer_keys)
        self.zap.admit({k: j for j, k in peer_keys.items()}, owner=node)

    def learn(self, msg: m.Message) -> None:
        """``peer_joined``: a churn slot's process registered with this data address (and,
        CURVE runs, key). A returning peer's new process replaces the old one: the link to
        its old address is closed (nothing was sent on it while the peer was away) and the
        next send opens one to the new address. ProtocolError if the message is malformed."""
        node, addr, key = msg["node"], msg["addr"], msg.fields.get("curve_key")
        if not (0 <= node < self.num_nodes and node != self.node):
            raise ProtocolError("bad_field", f"peer_joined names node {node}")
        if self.curve is not None and not assignment_mod.is_z85_key(key):
            raise ProtocolError("bad_field", f"peer_joined of node {node} has no valid curve_key in a CURVE run")
        old = self.out.pop(node, None)
        if old is not None:
            old.close(linger=0)
        self.addresses[node] = addr
        if node not in self.failed_by_coordinator:  # a link that could not connect is tried again
            self.failed.discard(node)
        if self.curve is not None and key is not None:
            self.admit({**self.curve.peers, node: key}, node=self.node)

    def connect(self, node: int, addresses: dict[int, str], peers: list[int]) -> None:
        """Remember every peer's address; one DEALER to each of ``peers`` now (others are
        linked on their first :meth:`send`)."""
        self.node, self.addresses = node, dict(addresses)
        for j in peers:
            self._link(j)

    def _link(self, j: int) -> None:
        """One DEALER to peer ``j``; one that cannot be connected (a registrant advertised
        ``host:port`` without ``tcp://``) is logged and treated as failed."""
        node, addresses = self.node, self.addresses
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 1000)
        try:
            if self.curve is None:
                s.setsockopt(zmq.ROUTING_ID, str(node).encode())
            else:
                auth.make_curve_client(
                    s, public=self.curve.public, secret=self.curve.secret, server_key=self.curve.peers[j]
                )
            s.connect(addresses[j])
        except (zmq.ZMQError, KeyError) as exc:
            s.close(linger=0)
            log.error(
                "peer %d: cannot connect to neighbor %d at %r (%s); treating it as failed",
                node,
                j,
                addresses.get(j),
                exc,
            )
            self.failed.add(j)
            return
        self.out[j] = s

    def link(self, to: int) -> zmq.Socket | None:
        """The DEALER to peer ``to``, opened now if this peer never sent to it (None if
        ``to`` failed or has no address)."""
        if to not in self.out and to not in self.failed and to in self.addresses:
            self._link(to)
        return None if to in self.failed else self.out.get(to)

    def send(self, to: int, msg: m.Message) -> None:
        """Hand ``msg`` to peer ``to`` without blocking (skipped if it failed); a full
        queue drops it (``send_blocked``)."""
        if self.link(to) is None:
            return
        frames = encode(msg)
        try:
            wire = frames if self.mac is None else self.mac.sign(to, frames)
            self.out[to].send_multipart(wire, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.traffic.drop("send_blocked", f"peer {to} is not draining its queue")
            return
        self.traffic.count_sent(frames)

    def receive(self, inbox: Inbox) -> None:
        """Read one pending message and file it into ``inbox``, or count it dropped."""
        frames = self.sock.recv_multipart(copy=False)
        identity, body = frames[0].bytes, frames[1:]
        try:
            # the run's compiled chunk check first; anything it declines: generic decode, named drop
            if self.mac is None:
                msg = inbox.core.chunk_check.decode_data(body)
            else:  # the tag first: it alone proves the sender (docs/PROTOCOL.md, Sender MAC)
                msg = self.mac.open(body, inbox.core.chunk_check.decode_data)
                body = body[:-1]  # the tag is not counted as traffic
            if self.curve is not None:
                key_owner = auth.user_id(body[0])
                if key_owner != str(msg.src):
                    raise ProtocolError(
                        "key_mismatch", f"connection with the key of node {key_owner} claims src {msg.src}"
                    )
            elif identity != str(msg.src).encode():
                raise ProtocolError("sender_mismatch", f"connection {identity!r} claims src {msg.src}")
            if msg.src in self.failed_by_coordinator:  # out of the run (docs/PROTOCOL.md, chunk)
                raise ProtocolError("failed_sender", f"{msg.kind} from {msg.src}, known failed")
            inbox.accept(msg)
        except ProtocolError as exc:
            self.traffic.drop(exc.reason, f"data from {identity!r}: {exc.detail}")
            return
        self.traffic.count_received(body)

    def lost_pending(self) -> bool:
        """Whether connections closed since the last :meth:`count_lost` (counts nothing)."""
        return self._watch.pending() > 0

    def count_lost(self) -> None:
        """Count as drops the handshakes the ZAP handler refused (``unknown_key``, logged
        by the handler) and the connections the socket closed (``connection_dropped``)
        since the last call."""
        if self.zap is not None and self.zap.refused > self._zap_counted:
            refused, self._zap_counted = self.zap.refused - self._zap_counted, self.zap.refused
            self.traffic.drop("unknown_key", "", refused, logged=False)
        for _ in range(self._watch.new_drops()):
            self.traffic.drop(
                "connection_dropped",
                "an inbound data connection closed: a frame over "
                f"{sockets.frame_limit(self.max_bytes)} bytes, a malformed stream or a dead sender",
            )
