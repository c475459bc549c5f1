"""Which socket events count as ``connection_dropped`` (protocol/sockets.py, docs/PROTOCOL.md
*Validation and drops*): an established connection that closes counts once; a TCP
connection that closes before its ZMTP handshake completed (a port scan, a stray client)
does not. Real sockets on loopback, in-process."""

from __future__ import annotations

import socket

import zmq

from protocol import sockets
from tests.support.waiting import wait_until


def test_only_connections_past_their_handshake_count_as_dropped() -> None:
    ctx = zmq.Context()
    try:
        router = sockets.bind_router(ctx, "tcp://127.0.0.1:*", max_frame=1 << 20)
        watch = sockets.DropWatch(router)
        host, port = router.getsockopt_string(zmq.LAST_ENDPOINT).rsplit("//", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port))) as raw:  # no ZMTP greeting at all
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 1000)
        dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
        dealer.send(b"hello")
        assert router.poll(10_000) and router.recv_multipart()[1] == b"hello"  # handshake done
        dealer.close()

        wait_until(lambda: watch.pending() and watch.seen[0] == 2, timeout=10, what="both disconnect events")
        dropped, seen = watch.pending(), watch.seen
        watch.close()
    finally:
        ctx.destroy(linger=0)

    assert seen == (2, 1)  # two connections closed, one of them before its handshake
    assert dropped == 1
