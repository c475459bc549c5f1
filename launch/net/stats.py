"""Per-link measurements read from the kernel: bytes through each link's tc class and the
TCP round-trip time and retransmissions of each data connection (``ss -ti``), as the round record's
``network.links`` (docs/NETWORK.md, *What is recorded*).

Keys are ``"u>v"``: the direction from node ``u`` to node ``v``. ``bytes`` and ``packets``
are what left ``u`` towards ``v`` since the previous record (IP packets, TCP/IP headers,
retransmissions and ACKs included); ``retrans`` the TCP segments ``u``'s connection to
``v``'s data socket retransmitted since then (a lost packet shows here); ``rtt_ms`` is
the kernel's smoothed RTT of that connection when the record is written (None before it
exists).
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

from launch.net.shaper import class_id

_TIMEOUT_S = 30
_RTT = re.compile(r"\brtt:([0-9.]+)/")
_RETRANS = re.compile(r"\bretrans:\d+/(\d+)")
_SENT = re.compile(r"\s*Sent (\d+) bytes (\d+) pkt")


def tc_command(ns: str, dev: str = "eth0") -> list[str]:
    return ["tc", "-n", ns, "-s", "class", "show", "dev", dev]


def ss_command(ns: str) -> list[str]:
    return ["ss", "-N", ns, "-t", "-i", "-n", "-H", "state", "established"]


def class_counters(text: str) -> dict[str, tuple[int, int]]:
    """classid -> (bytes, packets) sent through each HTB class, from ``tc -s class show``
    (text: its ``-j`` prints no JSON for classes in iproute2 6.1)."""
    out: dict[str, tuple[int, int]] = {}
    handle = None
    for line in text.splitlines():
        fields = line.split()
        if fields[:2] == ["class", "htb"] and len(fields) > 2:
            handle = fields[2]
        elif handle is not None and (m := _SENT.match(line)):
            out[handle] = (int(m.group(1)), int(m.group(2)))
            handle = None
    return out


def _per_connection(text: str, pattern: re.Pattern[str]) -> dict[tuple[str, str], str | None]:
    """(local address, remote ``ip:port``) -> ``pattern``'s group in the connection's
    details line (None where it is absent), for each connection of ``ss -tinH``."""
    out: dict[tuple[str, str], str | None] = {}
    key: tuple[str, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if not line[:1].isspace() and len(fields) >= 4:
            key = (fields[-2].rsplit(":", 1)[0], fields[-1])
        elif key is not None:
            m = pattern.search(line)
            out[key] = m.group(1) if m else None
            key = None
    return out


def connection_rtts(text: str) -> dict[tuple[str, str], float]:
    """(local address, remote ``ip:port``) -> smoothed RTT in ms of each established TCP
    connection, from ``ss -tinH``."""
    return {k: float(v) for k, v in _per_connection(text, _RTT).items() if v is not None}


def connection_retrans(text: str) -> dict[tuple[str, str], int]:
    """(local address, remote ``ip:port``) -> segments retransmitted since the connection
    opened (``retrans:current/total``; ss prints nothing while there were none)."""
    return {k: int(v or 0) for k, v in _per_connection(text, _RETRANS).items()}


def run_all(commands: list[list[str]]) -> list[str]:
    """The stdout of each command, all started at once (a round's reading then takes
    about one command's time, not 2N of them, off the coordinator's loop)."""
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        for cmd in commands
    ]
    out = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
        out.append(text if p.returncode == 0 else "")
    return out


class LinkMeter:
    """Reads the counters of every directed link once per round; reports differences."""

    def __init__(self, *, ns_of: dict[int, str], addr_of: dict[int, str], links: list[tuple[int, int]]) -> None:
        self.ns_of, self.addr_of = ns_of, addr_of  # addr_of: node -> data address ip:port
        self.directed = sorted({(u, v) for a, b in links for u, v in ((a, b), (b, a))})
        self.last: dict[tuple[int, int], tuple[int, int, int]] = {}

    def read(self) -> dict[str, Any]:
        """``{"links": {"u>v": {"bytes", "packets", "retrans", "rtt_ms"}}, "read_s"}`` since
        the last read (``read_s``: the seconds this reading took the coordinator)."""
        t0 = time.perf_counter()
        nodes = sorted({u for u, _ in self.directed})
        texts = run_all([tc_command(self.ns_of[u]) for u in nodes] + [ss_command(self.ns_of[u]) for u in nodes])
        counters = {u: class_counters(t) for u, t in zip(nodes, texts)}
        rtts = {u: connection_rtts(t) for u, t in zip(nodes, texts[len(nodes) :])}
        retrans = {u: connection_retrans(t) for u, t in zip(nodes, texts[len(nodes) :])}
        links: dict[str, Any] = {}
        for u, v in self.directed:
            conn = (self.addr_of[u].rsplit(":", 1)[0], self.addr_of[v])
            now = (*counters[u].get(class_id(v), (0, 0)), retrans[u].get(conn, 0))
            before = self.last.get((u, v), (0, 0, 0))
            self.last[(u, v)] = now
            links[f"{u}>{v}"] = {
                "bytes": now[0] - before[0],
                "packets": now[1] - before[1],
                "retrans": max(0, now[2] - before[2]),  # a reconnection starts its count anew
                "rtt_ms": rtts[u].get(conn),
            }
        return {"links": links, "read_s": time.perf_counter() - t0}
