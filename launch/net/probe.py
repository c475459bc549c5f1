"""One-way delay of messages over one shaped link, measured: the check that a link's
conditions are what the config asked for (``bench/link_delay.py``, the network tests).

:func:`one_way_delays` builds a network of two peer namespaces (``namespaces.create``,
the run's own layout), shapes the link between them both ways as a run does (HTB for the
rate; netem, or netfilter rules and the delay loop, for the rest, whichever
``apply_with`` and the kernel give), and sends ``count`` messages of ``size`` bytes from
peer 0 to peer 1 over one TCP connection, one at a time, ``gap_s`` apart. Each message
starts with the sender's ``CLOCK_MONOTONIC`` (one clock for every namespace of the
machine); the receiver takes the time once it has read the whole message. The one-way
delay of a message is the difference: the link's delay, the message's transmission and
TCP's own pacing (slow start after an idle spell), plus the two threads' latency.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from launch.net import namespaces
from launch.net.links import netem_fields
from launch.net.netfilter import DelayLoop, Incoming, install
from launch.net.shaper import check_kernel, egress_commands, run_tc
from protocol.network_config import Link

_HEADER = struct.Struct("=dI")  # send time (monotonic s), payload bytes
_PORT = 5201
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Probe:
    """What one measurement found: the delays (s, in sending order) and how the link was
    applied (``netem``, ``netfilter`` or ``""`` for an unshaped link)."""

    delays: list[float]
    mechanism: str


def one_way_delays(
    link: Link, *, size: int, count: int, gap_s: float = 0.3, seed: int = 0, apply_with: str = "auto"
) -> Probe:
    """Send ``count`` messages of ``size`` bytes over ``link`` (see the module's doc);
    NetworkError where the link cannot be applied (as a run would be refused)."""
    net = namespaces.create(2)
    loop: DelayLoop | None = None
    try:
        mechanism = check_kernel(net.bridge_ns, needs=netem_fields([link]), apply_with=apply_with)
        shaped = link if mechanism == "netem" else Link(rate_mbit=link.rate_mbit)
        addr = [net.peer_addr(0), net.peer_addr(1)]
        for me in (0, 1):
            if not shaped.ideal:
                run_tc(net.peer_ns(me), egress_commands({1 - me: (addr[1 - me], shaped)}))
        if mechanism == "netfilter":
            loop = install(
                net.bridge_ns, seed, {me: (net.peer_ns(me), [Incoming(1 - me, addr[1 - me], link)]) for me in (0, 1)}
            )
        return Probe(_exchange(net, size=size, count=count, gap_s=gap_s), mechanism)
    finally:
        if loop is not None:
            loop.stop()
        namespaces.remove(net.prefix)


def _exchange(net: namespaces.RunNetwork, *, size: int, count: int, gap_s: float) -> list[float]:
    delays: list[float] = []
    listening = threading.Event()
    failures: list[BaseException] = []

    def receive() -> None:
        try:
            namespaces.enter(net.peer_ns(1))
            with socket.create_server((net.peer_addr(1), _PORT)) as server:
                server.settimeout(_TIMEOUT_S)
                listening.set()
                conn, _ = server.accept()
                with conn, conn.makefile("rb") as stream:
                    conn.settimeout(_TIMEOUT_S)
                    while len(head := stream.read(_HEADER.size)) == _HEADER.size:
                        sent, n = _HEADER.unpack(head)
                        if len(stream.read(n)) != n:
                            break
                        delays.append(time.monotonic() - sent)
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            failures.append(exc)
            listening.set()

    def send() -> None:
        try:
            namespaces.enter(net.peer_ns(0))
            with socket.create_connection((net.peer_addr(1), _PORT), timeout=_TIMEOUT_S) as conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                payload = bytes(size)
                for _ in range(count):
                    conn.sendall(_HEADER.pack(time.monotonic(), size) + payload)
                    time.sleep(gap_s)  # the link idles between messages: each is measured alone
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            failures.append(exc)

    receiver = threading.Thread(target=receive, name="probe-receive", daemon=True)
    receiver.start()
    listening.wait(_TIMEOUT_S)
    sender = threading.Thread(target=send, name="probe-send", daemon=True)
    sender.start()
    sender.join(_TIMEOUT_S + count * (gap_s + _TIMEOUT_S))
    receiver.join(_TIMEOUT_S)
    if failures:
        raise failures[0]
    if len(delays) != count:
        raise RuntimeError(f"probe: {len(delays)} of {count} messages arrived")
    return delays
