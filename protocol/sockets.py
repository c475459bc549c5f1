"""Socket-level size limits and connection-drop accounting, shared by peers and the
coordinator (docs/FAILURES.md, *Hostile or malformed input*).

The codec's size check (``protocol.codec.decode``) runs on a message ZeroMQ has already
received whole, so alone it would let one frame claim any size and be buffered in full.
Every receiving ROUTER therefore also sets ``ZMQ_MAXMSGSIZE``: libzmq reads each frame's
length from its header and, when it exceeds the limit, closes that connection before
allocating or reading the body. Memory per frame is then bounded by the limit, whatever a
sender claims.

A connection closed that way produces no message, only a socket event. :class:`DropWatch`
follows a ROUTER's events and counts each established connection that closed as one
``connection_dropped``: a frame over the limit, a stream that broke ZMTP after its
handshake, or a sender whose process died. A connection that closes before its handshake
completed (a refused CURVE key, a client of another mechanism, a TCP client that never
speaks ZMTP) produces a failed-handshake event before its disconnect; those are netted out
here (a refused key is counted as ``unknown_key`` by the ZAP handler).
"""

from __future__ import annotations

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

#: allowance over a message limit for the bytes ZeroMQ adds to a frame (a CURVE MESSAGE
#: command carries a nonce and a MAC around the plaintext)
FRAME_OVERHEAD = 1024

#: socket events of a failed security handshake (peers and the coordinator watch them)
HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def frame_limit(max_message_bytes: int) -> int:
    """The ``ZMQ_MAXMSGSIZE`` for a socket whose messages may total ``max_message_bytes``:
    no single frame of a valid message can be larger."""
    return max_message_bytes + FRAME_OVERHEAD


def bind_router(
    ctx: zmq.Context,
    endpoint: str,
    *,
    max_frame: int,
    curve_secret: str | None = None,
    linger: int = 0,
    handover: bool = False,
    timeout: float = 5.0,
) -> zmq.Socket:
    """A ROUTER bound on ``endpoint`` with ``ZMQ_MAXMSGSIZE = max_frame`` (and as a CURVE
    server with ``curve_secret``; with ``handover`` a connection that comes back with a
    routing id already known takes it over: the coordinator's control socket). libzmq fixes
    a listener's options when it binds, so the options are set first, and a peer binds its
    data socket this way once, before it registers, and never replaces it (a replaced
    listener loses what was sent to the old one). ``endpoint`` may end in ``:*`` (a free
    port). ``EADDRINUSE`` is retried for ``timeout`` seconds (a fixed port whose previous
    owner is still closing)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, linger)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame)
    if handover:
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    if curve_secret is not None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve_secret.encode())
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.bind(endpoint)
            return sock
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                sock.close(linger=0)
                raise OSError(f"cannot bind a ROUTER on {endpoint}: {exc}") from None
            time.sleep(0.01)


class DropWatch:
    """Counts a ROUTER's established connections that closed (``connection_dropped``).

    ``dropped = disconnects - failed handshakes``, over the socket's events so far; each
    call of :meth:`new_drops` returns the increase since the previous call (never
    negative: a failed handshake's event precedes its disconnect, so a read between the
    two is caught up by the next).
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self._sock = sock
        self._monitor: zmq.Socket | None = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | HANDSHAKE_FAILED)
        self._disconnects = 0
        self._failed = 0
        self._counted = 0

    def pending(self) -> int:
        """Connections dropped since the last :meth:`new_drops` (reads the pending events,
        no wait; counts nothing)."""
        if self._monitor is None:
            return 0
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self._disconnects += 1
            elif event & HANDSHAKE_FAILED:
                self._failed += 1
        return max(0, self._disconnects - self._failed - self._counted)

    @property
    def seen(self) -> tuple[int, int]:
        """(disconnect events, failed-handshake events) read so far."""
        return self._disconnects, self._failed

    def new_drops(self) -> int:
        """Connections dropped since the last call (reads the pending events, no wait)."""
        new = self.pending()
        self._counted += new
        return new

    def close(self) -> None:
        if self._monitor is not None:
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
