"""Per-link measurements read from the kernel: bytes through each link's tc class and the
TCP round-trip time of each data connection (``ss -ti``), as the round record's
``network.links`` (docs/NETWORK.md, *What is recorded*).

Keys are ``"u>v"``: the direction from node ``u`` to node ``v``. ``bytes`` and ``packets``
are what left ``u`` towards ``v`` since the previous record (IP packets, TCP/IP headers,
retransmissions and ACKs included); ``rtt_ms`` is the kernel's smoothed RTT of ``u``'s
connection to ``v``'s data socket when the record is written (None before it exists).
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from launch.net.shaper import class_id

_TIMEOUT_S = 30
_RTT = re.compile(r"\brtt:([0-9.]+)/")
_SENT = re.compile(r"\s*Sent (\d+) bytes (\d+) pkt")


def class_counters(ns: str, dev: str = "eth0") -> dict[str, tuple[int, int]]:
    """classid -> (bytes, packets) sent through each HTB class of ``dev`` in ``ns`` (tc's
    text output: its ``-j`` prints no JSON for classes in iproute2 6.1)."""
    proc = subprocess.run(
        ["tc", "-n", ns, "-s", "class", "show", "dev", dev],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    out: dict[str, tuple[int, int]] = {}
    handle = None
    for line in proc.stdout.splitlines():
        fields = line.split()
        if fields[:2] == ["class", "htb"] and len(fields) > 2:
            handle = fields[2]
        elif handle is not None and (m := _SENT.match(line)):
            out[handle] = (int(m.group(1)), int(m.group(2)))
            handle = None
    return out


def connection_rtts(ns: str) -> dict[tuple[str, str], float]:
    """(local address, remote ``ip:port``) -> smoothed RTT in ms of each established TCP
    connection in ``ns``."""
    proc = subprocess.run(
        ["ss", "-N", ns, "-t", "-i", "-n", "-H", "state", "established"],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    out: dict[tuple[str, str], float] = {}
    key: tuple[str, str] | None = None
    for line in proc.stdout.splitlines():
        fields = line.split()
        if not line[:1].isspace() and len(fields) >= 4:
            key = (fields[-2].rsplit(":", 1)[0], fields[-1])
        elif key is not None:
            m = _RTT.search(line)
            if m:
                out[key] = float(m.group(1))
            key = None
    return out


class LinkMeter:
    """Reads the counters of every directed link once per round; reports differences."""

    def __init__(self, *, ns_of: dict[int, str], addr_of: dict[int, str], links: list[tuple[int, int]]) -> None:
        self.ns_of, self.addr_of = ns_of, addr_of  # addr_of: node -> data address ip:port
        self.directed = sorted({(u, v) for a, b in links for u, v in ((a, b), (b, a))})
        self.last: dict[tuple[int, int], tuple[int, int]] = {}

    def read(self) -> dict[str, Any]:
        """``{"links": {"u>v": {"bytes", "packets", "rtt_ms"}}}`` since the last read."""
        nodes = sorted({u for u, _ in self.directed})
        counters = {u: class_counters(self.ns_of[u]) for u in nodes}
        rtts = {u: connection_rtts(self.ns_of[u]) for u in nodes}
        links: dict[str, Any] = {}
        for u, v in self.directed:
            now = counters[u].get(class_id(v), (0, 0))
            before = self.last.get((u, v), (0, 0))
            self.last[(u, v)] = now
            src = self.addr_of[u].rsplit(":", 1)[0]
            links[f"{u}>{v}"] = {
                "bytes": now[0] - before[0],
                "packets": now[1] - before[1],
                "rtt_ms": rtts[u].get((src, self.addr_of[v])),
            }
        return {"links": links}
