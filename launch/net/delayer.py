"""The delay loop of a run's links on a kernel without netem: holds queued packets, then
accepts them.

``python -m launch.net.delayer SPEC_JSON`` runs in the run's bridge namespace (started by
``ip netns exec``, so the cleanup that kills what runs in the run's namespaces kills it
too). For each receiving peer namespace it makes one netlink socket there and binds one
nfnetlink_queue per incoming link: the queue number is the sending node's id, and the
netfilter rule of :mod:`launch.net.netfilter` sends that link's packets to it on the
receiver's ``PREROUTING`` hook. Each packet is released (verdict accept) at

    t_release = t_read + delay + jitter * (2U - 1),   U ~ Uniform[0, 1) (seeded per link)

where ``t_read`` is when this process read it: never before the packet arrived, so every
packet is held *at least* its draw (a lower bound; the overshoot is this loop's latency,
measured in BENCHMARKS.md). Without jitter every packet of a link is held the same time
and released in arrival order (release times are non-decreasing, ties keep arrival order);
with jitter a later packet can draw a shorter delay and overtake an earlier one, as with
netem's ``delay D J``: TCP sees reordering. With ``reorder_pct`` a packet is released at
once with that probability (netem's ``reorder``).

Seeding: link u->v draws from ``numpy.random.default_rng([seed, 0x444C59, u, v])`` ("DLY"),
one draw pair per packet; which packets get which draw depends on the packets TCP sends,
so the draws are reproducible but the timing is not (nor is it with netem).

Protocol with the launcher: SPEC_JSON is ``{"seed": s, "receivers": [{"ns": name,
"node": v, "links": {"u": {"delay_ms", "jitter_ms", "reorder_pct"}}}]}``; the loop
writes ``ready`` on stdout once every queue is bound, or one ``error: ...`` line and exits
1; it exits when its stdin (a pipe from the launcher) closes.
"""

from __future__ import annotations

import heapq
import json
import os
import selectors
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

from launch.net.namespaces import enter_path
from launch.net.nfqueue import NF_ACCEPT, QueueSocket, verdict_message

#: the rng stream of the per-packet delay draws ("DLY"), apart from every other seeded draw
DELAY_STREAM = 0x444C59
_DRAWS = 4096  # uniforms drawn at once per link


@dataclass
class LinkDelay:
    """One incoming link's hold time: ``delay_s + jitter_s * (2U - 1)``, or 0 with
    probability ``reorder``."""

    delay_s: float
    jitter_s: float
    reorder: float
    rng: np.random.Generator

    def __post_init__(self) -> None:
        self._u: list[float] = []
        self._r: list[float] = []

    def draw(self) -> float:
        if not self._u:
            self._u = self.rng.random(_DRAWS).tolist()
            self._r = self.rng.random(_DRAWS).tolist()
        u, r = self._u.pop(), self._r.pop()
        if r < self.reorder:
            return 0.0
        return self.delay_s + self.jitter_s * (2.0 * u - 1.0)


def open_queues(spec: dict) -> tuple[list[QueueSocket], dict[tuple[int, int], LinkDelay]]:
    """One bound socket per receiver namespace; ``(socket index, queue) -> LinkDelay``."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    socks: list[QueueSocket] = []
    delays: dict[tuple[int, int], LinkDelay] = {}
    try:
        for receiver in spec["receivers"]:
            enter_path(f"/run/netns/{receiver['ns']}")
            sock = QueueSocket()
            enter_path(f"/proc/self/fd/{own}")
            socks.append(sock)
            for sender, link in sorted(receiver["links"].items(), key=lambda kv: int(kv[0])):
                sock.bind(int(sender))
                rng = np.random.default_rng([int(spec["seed"]), DELAY_STREAM, int(sender), int(receiver["node"])])
                delays[(len(socks) - 1, int(sender))] = LinkDelay(
                    link["delay_ms"] / 1e3, link["jitter_ms"] / 1e3, link.get("reorder_pct", 0.0) / 100, rng
                )
    finally:
        os.close(own)
    return socks, delays


def serve(socks: list[QueueSocket], delays: dict[tuple[int, int], LinkDelay], stop_fd: int) -> None:
    """Hold and release packets until ``stop_fd`` reaches EOF."""
    sel = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        sel.register(sock.fileno(), selectors.EVENT_READ, i)
    sel.register(stop_fd, selectors.EVENT_READ, -1)
    held: list[tuple[float, int, int, int, int]] = []  # (release, seq, socket, queue, packet id)
    seq = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        events = sel.select(timeout)
        now = time.monotonic()
        for key, _ in events:
            i = key.data
            if i == -1:
                if not os.read(stop_fd, 4096):
                    return
                continue
            for queue, packet_id in socks[i].read():
                seq += 1
                heapq.heappush(held, (now + delays[(i, queue)].draw(), seq, i, queue, packet_id))
        now = time.monotonic()
        due: dict[int, list[bytes]] = {}
        while held and held[0][0] <= now:
            _, _, i, queue, packet_id = heapq.heappop(held)
            due.setdefault(i, []).append(verdict_message(queue, packet_id, NF_ACCEPT))
        for i, messages in due.items():
            socks[i].send(messages)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m launch.net.delayer SPEC_JSON", file=sys.stderr)
        return 2
    # a Ctrl-C in the launcher's terminal reaches this process group too: the launcher
    # stops the loop (closes its stdin) once its peers have stopped, not before
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        socks, delays = open_queues(json.loads(argv[0]))
    except OSError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    print("ready", flush=True)
    serve(socks, delays, sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
