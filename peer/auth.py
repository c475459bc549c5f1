"""CURVE authentication of a peer's data plane (``runtime.curve``, docs/FAILURES.md, *Identity*).

With CURVE on, a peer's data ROUTER is a CURVE server with the key pair the coordinator
issued, and :class:`ZapHandler` admits exactly the clients whose public key belongs to a
peer it exchanges data with. Every message of an admitted connection carries that peer's
node id as its ``User-Id`` property, which the runtime compares with the header's
``src``. The handler is asked once per connection handshake, never per message, and its
answer depends only on the client's key.
"""

from __future__ import annotations

import logging
import threading

import zmq
from zmq.utils import z85

log = logging.getLogger("byzemu.peer")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  #: where libzmq asks a context's ZAP handler (RFC 27)


class ZapHandler:
    """The ZAP handler of one ZeroMQ context: CURVE clients with a known key only.

    ``allowed`` maps Z85 public keys to node ids. A client whose key is one of them is
    accepted with ``User-Id`` = its node id in decimal; any other key, or another
    mechanism, is refused (status 400) and counted in :attr:`refused`. The socket is
    bound here, before the caller binds a CURVE server, so no handshake is ever answered
    without it; a thread answers requests until the context is terminated.
    """

    def __init__(self, ctx: zmq.Context, allowed: dict[str, int], *, owner: int) -> None:
        self.allowed = {z85.decode(key.encode()): node for key, node in allowed.items()}
        self.owner = owner
        self.refused = 0  #: refused handshakes (written by the thread only)
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(ZAP_ENDPOINT)
        self._thread = threading.Thread(target=self._serve, name=f"zap-{owner}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock = self._sock
        try:
            while True:
                sock.send_multipart(self.reply(sock.recv_multipart()))
        except zmq.ContextTerminated:
            pass
        finally:
            sock.close(linger=0)

    def reply(self, frames: list[bytes]) -> list[bytes]:
        """The ZAP reply to one request: version, request id, status, text, user id, metadata."""
        if len(frames) < 6:  # libzmq never sends this; answer rather than block the socket
            return [b"1.0", frames[1] if len(frames) > 1 else b"", b"500", b"malformed request", b"", b""]
        _version, request_id, _domain, address, _identity, mechanism, *credentials = frames
        node = None
        if mechanism == b"CURVE" and len(credentials) == 1:
            node = self.allowed.get(credentials[0])
        if node is None:
            self.refused += 1
            if self.refused <= 10 or self.refused % 100 == 0:
                key = z85.encode(credentials[0]).decode() if len(credentials) == 1 and len(credentials[0]) == 32 else "-"
                log.warning(
                    "peer %d refused a connection (unknown_key, #%d): %s client %s from %s",
                    self.owner, self.refused, mechanism.decode(errors="replace"), key,
                    address.decode(errors="replace"),
                )
            return [b"1.0", request_id, b"400", b"unknown key", b"", b""]
        return [b"1.0", request_id, b"200", b"OK", str(node).encode(), b""]


def user_id(frame: zmq.Frame) -> str | None:
    """The ``User-Id`` the ZAP handler gave the connection ``frame`` arrived on (None if none)."""
    try:
        return frame.get("User-Id")
    except zmq.ZMQError:
        return None


def make_curve_client(sock: zmq.Socket, *, public: str, secret: str, server_key: str) -> None:
    """Make ``sock`` (before it connects) a CURVE client of the server with ``server_key``."""
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public.encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret.encode())
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
