"""The run's private network: one namespace per peer, a bridge, and a link to the launcher.

Layout (``P`` is the run's prefix ``bzn<launcher pid>``, ``10.78.X.0/24`` a subnet that
overlaps no address or route of the machine)::

    root namespace (the launcher, the coordinator)      P-br                P-p<i> (peer i)
      Ph  10.78.X.1  --------- veth -------------  host  \\
                                                           br0 -- p<i> -- veth -- eth0 10.78.X.(10+i)

The coordinator binds ``10.78.X.1`` in the launcher's own (root) namespace: the one
interface the run adds there is ``Ph``, and it disappears with ``P-br``. Each peer process
enters its namespace (``setns``) right after it is forked, before it opens a socket, and
binds its data socket on its ``eth0`` address; links are shaped on each ``eth0``'s egress
(``launch/net/shaper.py``), whose packets are at most :data:`GSO_MAX_BYTES`.

Everything is named by the prefix, so :func:`remove_stale` removes what a launcher that
died without cleaning up (SIGKILL, a crash of the machine's power aside) left behind, and
:mod:`launch.net.reaper` removes a run's network as soon as its launcher is gone.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import signal
import subprocess
from dataclasses import dataclass

from protocol.errors import UserError

#: every name of a run starts with this and the launcher's pid
PREFIX = "bzn"
#: first peer address in the subnet (.1 is the launcher's)
_FIRST_PEER = 10
_CLONE_NEWNET = 0x40000000
#: largest packet TCP hands a peer's eth0 (GSO/TSO): HTB lets one packet through on
#: credit and makes the next ones wait for it, so a 64 KiB default would let 64 KiB pass
#: at once after an idle spell; 8 KiB bounds that error (6.6 ms at 10 Mbit/s)
GSO_MAX_BYTES = 8192
_TIMEOUT_S = 60


class NetworkError(UserError):
    """The run's network cannot be set up here (one line: what is missing)."""


def run_ip(args: list[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run ``ip ARGS`` (or ``ip -batch -`` with ``stdin``); NetworkError with its stderr."""
    cmd = ["ip", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


@dataclass(frozen=True)
class RunNetwork:
    """Names and addresses of one run's network (made by :func:`create`)."""

    prefix: str
    subnet: str  #: e.g. 10.78.3.0/24
    count: int  #: peer namespaces

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    @property
    def host_link(self) -> str:
        return f"{self.prefix}h"

    def peer_ns(self, index: int) -> str:
        return f"{self.prefix}-p{index}"

    def peer_addr(self, index: int) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + _FIRST_PEER + index)

    @property
    def host_addr(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)

    @property
    def namespaces(self) -> list[str]:
        return [self.bridge_ns, *(self.peer_ns(i) for i in range(self.count))]


def free_subnet() -> str:
    """A ``10.78.X.0/24`` that overlaps no IPv4 address or (non-default) route here."""
    used: list[ipaddress.IPv4Network] = []
    for entry in json.loads(run_ip(["-j", "-4", "addr", "show"]) or "[]"):
        for a in entry.get("addr_info", []):
            used.append(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network)
    for r in json.loads(run_ip(["-j", "-4", "route", "show", "table", "all"]) or "[]"):
        dst = r.get("dst", "default")
        if dst != "default":
            used.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    start = os.getpid() % 256
    for k in range(256):
        net = ipaddress.IPv4Network(f"10.78.{(start + k) % 256}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise NetworkError(
        "every 10.78.X.0/24 overlaps an address or route of this machine: free one for the run's network"
    )


def create(count: int, *, prefix: str | None = None) -> RunNetwork:
    """Build the network for ``count`` peers; on failure remove what was made and raise."""
    if count > 240:
        raise NetworkError(f"nodes={count}: a shaped network holds at most 240 peers (one /24)")
    net = RunNetwork(prefix or f"{PREFIX}{os.getpid()}", free_subnet(), count)
    plen = ipaddress.IPv4Network(net.subnet).prefixlen
    try:
        run_ip(["-batch", "-"], stdin="".join(f"netns add {ns}\n" for ns in net.namespaces))
        bridge = ["link add br0 type bridge stp_state 0", "link set br0 up", "link set lo up"]
        bridge += [
            f"link add host type veth peer name {net.host_link} netns {os.getpid()}",
            "link set host master br0 up",
        ]
        for i in range(count):
            gso = f"gso_max_size {GSO_MAX_BYTES}"
            bridge += [
                f"link add name p{i} {gso} type veth peer name eth0 {gso} netns {net.peer_ns(i)}",
                f"link set p{i} master br0 up",
            ]
        run_ip(["-n", net.bridge_ns, "-batch", "-"], stdin="\n".join(bridge) + "\n")
        run_ip(["addr", "add", f"{net.host_addr}/{plen}", "dev", net.host_link])
        run_ip(["link", "set", net.host_link, "up"])
        for i in range(count):
            cmds = [f"addr add {net.peer_addr(i)}/{plen} dev eth0", "link set eth0 up", "link set lo up"]
            run_ip(["-n", net.peer_ns(i), "-batch", "-"], stdin="\n".join(cmds) + "\n")
    except BaseException:
        remove(net.prefix)
        raise
    return net


def _names_with(prefix: str) -> tuple[list[str], list[str]]:
    """Namespaces and root-namespace links whose names start with ``prefix``."""
    spaces = [line.split()[0] for line in run_ip(["netns", "list"], check=False).splitlines() if line.strip()]
    links = [e["ifname"] for e in json.loads(run_ip(["-j", "link", "show"], check=False) or "[]")]
    return [s for s in spaces if s.startswith(prefix)], [x for x in links if x.startswith(prefix)]


def remove(prefix: str) -> None:
    """Kill every process left in the namespaces of ``prefix`` and delete them and the
    launcher's link (idempotent: what is gone already is skipped)."""
    spaces, links = _names_with(prefix)
    spaces = [s for s in spaces if s.startswith(f"{prefix}-")]
    links = [x for x in links if x == f"{prefix}h"]
    for ns in spaces:
        for pid in run_ip(["netns", "pids", ns], check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for link in links:
        run_ip(["link", "del", link], check=False)
    if spaces:
        run_ip(["-force", "-batch", "-"], stdin="".join(f"netns del {ns}\n" for ns in spaces), check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Remove the networks of runs whose launcher is gone; return their prefixes."""
    spaces, links = _names_with(PREFIX)
    stale = set()
    for name in [*(s.split("-", 1)[0] for s in spaces), *(x.removesuffix("h") for x in links)]:
        digits = name.removeprefix(PREFIX)
        if digits.isdigit() and not _pid_alive(int(digits)):
            stale.add(name)
    for prefix in sorted(stale):
        remove(prefix)
    return sorted(stale)


def enter(ns: str) -> None:
    """Move the calling thread (a freshly forked peer, before any socket) into ``ns``."""
    enter_path(f"/run/netns/{ns}")


def enter_path(path: str) -> None:
    """Move the calling thread into the network namespace of ``path`` (``/run/netns/NAME``
    or ``/proc/PID/ns/net``); sockets made afterwards belong to it, earlier ones stay."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {path}: {os.strerror(err)}")
    finally:
        os.close(fd)
