"""CURVE authentication of a peer's data plane (``runtime.curve``, docs/FAILURES.md, *Identity*).

With CURVE on, a peer makes its own data-plane key pair before it registers, binds its
data ROUTER once as a CURVE server with it and sends the public key in ``register``
(``curve_key``); the coordinator hands every peer, in ``assign``, the public keys of the
peers it exchanges data with. The secret key never leaves the peer.

:class:`ZapHandler` admits exactly the clients whose public key belongs to such a peer.
Every message of an admitted connection carries that peer's node id as its ``User-Id``
property, which the data plane (``peer/dataplane.py``) compares with the header's
``src``. The handler is asked once per connection handshake, never per message, and its
answer depends only on the client's key. A neighbor may connect before this peer has its
own assignment (the coordinator sends the ``assign`` messages one after the other): such
handshakes are *held*, not refused, until :meth:`ZapHandler.admit` names the allowed
keys, then answered.
"""

from __future__ import annotations

import logging
import threading

import zmq
from zmq.utils import z85

log = logging.getLogger("byzemu.peer")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  #: where libzmq asks a context's ZAP handler (RFC 27)
#: handshakes held while the assignment is unknown; more are refused at once
MAX_HELD = 1024
_WAKE_MS = 50  #: how often the handler thread looks for an assignment that arrived


class ZapHandler:
    """The ZAP handler of one ZeroMQ context: CURVE clients with a known key only.

    ``allowed`` maps Z85 public keys to node ids, or is None while the assignment is not
    known (requests are then held; :meth:`admit` answers them). A client whose key is
    allowed is accepted with ``User-Id`` = its node id in decimal; any other key, or
    another mechanism, is refused (status 400) and counted in :attr:`refused`. The socket
    is bound here, before the caller binds a CURVE server, so no handshake is ever
    answered without it; a thread answers requests until the context is terminated.

    The socket is a ROUTER (not the usual REP) so that requests can wait for
    :meth:`admit` without blocking the ones behind them; libzmq's ZAP requests and
    replies start with an empty delimiter frame, which a ROUTER sees after the routing id.
    """

    def __init__(self, ctx: zmq.Context, allowed: dict[str, int] | None, *, owner: int) -> None:
        self._allowed: dict[bytes, int] | None = None
        self.owner = owner
        self.refused = 0  #: refused handshakes (written by the thread only)
        self._held: list[tuple[bytes, list[bytes]]] = []  # (routing id, request) until admit()
        self._lock = threading.Lock()
        if allowed is not None:
            self.admit(allowed)
        self._sock = ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(ZAP_ENDPOINT)
        self._thread = threading.Thread(target=self._serve, name=f"zap-{owner}", daemon=True)
        self._thread.start()

    def admit(self, allowed: dict[str, int], *, owner: int | None = None) -> None:
        """The assignment arrived: from now on exactly the keys in ``allowed`` (Z85 ->
        node id) are admitted; held handshakes are answered by the handler thread."""
        with self._lock:
            self._allowed = {z85.decode(key.encode()): node for key, node in allowed.items()}
            if owner is not None:
                self.owner = owner

    def _serve(self) -> None:
        sock = self._sock
        try:
            while True:
                if sock.poll(_WAKE_MS):
                    routing_id, _delimiter, *request = sock.recv_multipart()
                    self._held.append((routing_id, request))
                with self._lock:
                    known = self._allowed is not None
                if known or len(self._held) > MAX_HELD:
                    held, self._held = self._held, []
                    for routing_id, request in held:
                        sock.send_multipart([routing_id, b"", *self.reply(request)])
        except zmq.ZMQError:  # the context was terminated (or destroyed, closing this socket)
            pass
        finally:
            sock.close(linger=0)

    def reply(self, frames: list[bytes]) -> list[bytes]:
        """The ZAP reply to one request: version, request id, status, text, user id, metadata."""
        if len(frames) < 6:  # libzmq never sends this; answer rather than block the socket
            return [b"1.0", frames[1] if len(frames) > 1 else b"", b"500", b"malformed request", b"", b""]
        _version, request_id, _domain, address, _identity, mechanism, *credentials = frames
        node = None
        with self._lock:
            allowed = self._allowed or {}
        if mechanism == b"CURVE" and len(credentials) == 1:
            node = allowed.get(credentials[0])
        if node is None:
            self.refused += 1
            if self.refused <= 10 or self.refused % 100 == 0:
                key = (
                    z85.encode(credentials[0]).decode() if len(credentials) == 1 and len(credentials[0]) == 32 else "-"
                )
                log.warning(
                    "peer %d refused a connection (unknown_key, #%d): %s client %s from %s",
                    self.owner,
                    self.refused,
                    mechanism.decode(errors="replace"),
                    key,
                    address.decode(errors="replace"),
                )
            return [b"1.0", request_id, b"400", b"unknown key", b"", b""]
        return [b"1.0", request_id, b"200", b"OK", str(node).encode(), b""]


def user_id(frame: zmq.Frame) -> str | None:
    """The ``User-Id`` the ZAP handler gave the connection ``frame`` arrived on (None if none)."""
    try:
        return str(frame.get("User-Id"))  # a string option (pyzmq types Frame.get as int | str)
    except zmq.ZMQError:
        return None


def make_curve_client(sock: zmq.Socket, *, public: str, secret: str, server_key: str) -> None:
    """Make ``sock`` (before it connects) a CURVE client of the server with ``server_key``."""
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public.encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret.encode())
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
