"""Multi-host runs across network namespaces (docs/CLUSTER.md, *By hand*).

The test builds a small private network out of Linux network namespaces and checks that
a run split over "hosts" gives bit-identical results to the single-host run:

* ``<prefix>-br`` holds a bridge ``br0`` (the root namespace, i.e. the machine's own
  network, is never touched);
* ``<prefix>-c`` (the coordinator host, ``10.77.X.1``), ``<prefix>-h1`` (``.2``) and
  ``<prefix>-h2`` (``.3``) each hold ``lo`` and one end of a veth pair, ``eth0``, whose
  other end is a port of ``br0``.

``X`` is chosen so that ``10.77.X.0/24`` overlaps no address or route of the machine. IPv6
is switched off in every namespace (no link-local addresses, no neighbor discovery), so
each namespace's only route is the test's /24: a packet to any address the test did not
create has nowhere to go (``ENETUNREACH``, counted in the namespace's ``Ip: OutNoRoutes``,
which the test checks is 0), and every address a namespace resolved on the link (its
neighbor table) must be one of the test's three.

``byzemu coordinator`` runs in ``-c`` bound on ``10.77.X.1``; ``byzemu peer --count 3``
runs in each of ``-h1`` and ``-h2`` with ``--bind-host`` its own address and the key from
``OUT/coordinator.key``; CURVE is on by ``runtime.curve = "auto"``. Both hosts start at
the same time, so which host's peers register first (node ids follow registration order)
is left to chance: results keyed by node id must not depend on it.

Skipped, with the reason, where namespaces cannot be made (not root, no ``ip``, no
permission in an unprivileged container, no veth/bridge support).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from launch.run.reference import run_reference
from protocol import config as config_mod
from tests.support import BYZEMU
from tests.support.harness import read_rounds
from tests.support.waiting import running, wait_until

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

NODES, ROUNDS, PER_HOST = 6, 3, 3
PORT = 5555  # the coordinator's namespace is fresh: nothing else can hold this port there

CONFIG = f"""
name = "multihost-netns"
seed = 13
nodes = {NODES}
rounds = {ROUNDS}

[topology]
kind = "regular"
degree = 3

[data]
dataset = "synthetic"
synthetic_size = 600

[model]
name = "mlp"

[train]
local_steps = 3
batch_size = 16
lr = 0.05

[chunks]
count = 4
per_neighbor = 2

[byzantine]
count = 1
attack = "gaussian"
params = {{ sigma = 0.5 }}

[eval]
every = 1
byzantine = true  # compare the Byzantine peer's evaluation too

[runtime]
register_timeout = 60.0
round_timeout = 40.0
chunk_timeout = 20.0
"""

#: prefix of this test's namespace names; the pid keeps concurrent test runs apart
PREFIX = "bzmh"
RUN_TIMEOUT = 240.0


# ----------------------------------------------------------------------------- namespaces


class SetupFailed(Exception):
    """An ``ip`` command needed to build the network failed."""


def _ip(*args: str, ns: str | None = None) -> str:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise SetupFailed(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _in_ns(ns: str, *argv: str) -> str:
    """Run a short command inside ``ns`` and return its stdout."""
    cmd = ["ip", "netns", "exec", ns, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise SetupFailed(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_namespaces() -> None:
    """Delete namespaces left by an earlier run of this test whose pytest process is gone
    (e.g. killed with SIGKILL before its teardown); names are ``PREFIX-<pid>-...``."""
    try:
        names = [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]
    except (SetupFailed, OSError, subprocess.TimeoutExpired):
        return
    for name in names:
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == PREFIX and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.77.X.0/24 that overlaps no IPv4 address or (non-default) route of this machine."""
    used: list[ipaddress.IPv4Network] = []
    for entry in json.loads(_ip("-j", "-4", "addr", "show") or "[]"):
        for a in entry.get("addr_info", []):
            used.append(ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network)
    for r in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = r.get("dst", "default")
        if dst != "default":
            used.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    start = os.getpid() % 200  # spread concurrent runs (they are isolated anyway)
    for k in range(256):
        net = ipaddress.IPv4Network(f"10.77.{(start + k) % 256}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise SetupFailed("every 10.77.X.0/24 overlaps an address or route of this machine")


@dataclass
class Host:
    ns: str
    addr: str


@dataclass
class Net:
    """The test network: a bridge namespace and the coordinator's and peers' hosts."""

    subnet: ipaddress.IPv4Network
    bridge_ns: str
    coordinator: Host
    hosts: list[Host]
    ipv6_off: bool = True
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return [self.bridge_ns, self.coordinator.ns, *(h.ns for h in self.hosts)]

    @property
    def addresses(self) -> set[str]:
        return {self.coordinator.addr, *(h.addr for h in self.hosts)}

    def start(self, ns: str, argv: list[str], log: Path) -> subprocess.Popen:
        """Start ``argv`` inside ``ns`` in a session of its own (its children included,
        so the teardown can kill the whole group), output to ``log``."""
        with log.open("wb") as fh:
            p = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the process group is the one it leads
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


def _build(pid: int) -> Net:
    names = {k: f"{PREFIX}-{pid}-{k}" for k in ("br", "c", "h1", "h2")}
    subnet = _free_subnet()
    hosts = list(subnet.hosts())
    net = Net(
        subnet=subnet,
        bridge_ns=names["br"],
        coordinator=Host(names["c"], str(hosts[0])),
        hosts=[Host(names["h1"], str(hosts[1])), Host(names["h2"], str(hosts[2]))],
    )
    created: list[str] = []
    try:
        for ns in net.namespaces:
            _ip("netns", "add", ns)
            created.append(ns)
            try:  # before any veth exists: no IPv6 link-local addresses, no ND or MLD packets
                _in_ns(
                    ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"
                )
            except (SetupFailed, FileNotFoundError):
                net.ipv6_off = False  # no IPv6 in this kernel, or /proc/sys read-only
        _ip("link", "add", "br0", "type", "bridge", "stp_state", "0", ns=net.bridge_ns)
        _ip("link", "set", "br0", "up", ns=net.bridge_ns)
        for i, host in enumerate([net.coordinator, *net.hosts]):
            port = f"port{i}"
            _ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.ns, ns=net.bridge_ns)
            _ip("link", "set", port, "master", "br0", "up", ns=net.bridge_ns)
            _ip("addr", "add", f"{host.addr}/{subnet.prefixlen}", "dev", "eth0", ns=host.ns)
            _ip("link", "set", "eth0", "up", ns=host.ns)
            _ip("link", "set", "lo", "up", ns=host.ns)
    except BaseException:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)
        raise
    return net


@pytest.fixture
def net() -> Iterator[Net]:
    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are Linux-only")
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root (this test runs as root in CI)")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    _remove_stale_namespaces()
    try:
        n = _build(os.getpid())
    except (SetupFailed, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot make network namespaces with veth pairs and a bridge here: {exc}")
    try:
        yield n
    finally:
        n.kill_all()
        for ns in n.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)


# ----------------------------------------------------------------------------- helpers


def _logs(paths: list[Path]) -> str:
    out = []
    for p in paths:
        text = p.read_text(errors="replace") if p.exists() else "(no log)"
        out.append(f"----- {p.name} (last 4000 chars)\n{text[-4000:]}")
    return "\n".join(out)


def _wait_for_key(path: Path, proc: subprocess.Popen, timeout: float, logs: list[Path]) -> str:
    """The coordinator's public key, once it has written the whole line to ``path``."""
    try:
        wait_until(
            lambda: path.exists() and path.read_text().endswith("\n"),
            timeout=timeout,
            what=f"key in {path}",
            alive=running(proc),
            details=lambda: _logs(logs),
            interval=0.1,
        )
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(str(exc))
    return path.read_text().strip()


def _wait(coordinator: subprocess.Popen, peers: dict[str, subprocess.Popen], timeout: float) -> dict[str, int | None]:
    """Exit codes (None: still running) of the coordinator, within ``timeout``, then of the
    peers, which exit right after the coordinator's ``stop`` (a few seconds' grace; a peer
    that lost its coordinator would wait far longer, and the test fails on it anyway)."""
    codes: dict[str, int | None] = {}
    for name, p, limit in [("coordinator", coordinator, timeout), *((n, p, 30.0) for n, p in peers.items())]:
        try:
            codes[name] = p.wait(limit)
        except subprocess.TimeoutExpired:
            codes[name] = None
    return codes


def _snmp_ip(ns: str) -> dict[str, int]:
    """The namespace's ``Ip:`` counters from /proc/net/snmp (per network namespace)."""
    lines = [x.split() for x in _in_ns(ns, "cat", "/proc/net/snmp").splitlines() if x.startswith("Ip:")]
    head, values = lines[0][1:], lines[1][1:]
    return {k: int(v) for k, v in zip(head, values)}


def _host_of(addr: str) -> str:
    return addr.removeprefix("tcp://").rsplit(":", 1)[0]


# ----------------------------------------------------------------------------- the test


def test_multihost_run_in_namespaces_equals_single_host_run(net: Net, tmp_path: Path) -> None:
    cfg = tmp_path / "multihost.toml"
    cfg.write_text(CONFIG)
    out, single = tmp_path / "multihost", tmp_path / "single"
    coord_log = tmp_path / "coordinator.log"
    host_logs = [tmp_path / f"peers-{h.ns.rsplit('-', 1)[1]}.log" for h in net.hosts]
    logs = [coord_log, *host_logs]

    # --- the multi-host run: coordinator in one namespace, 3 peers in each of two others
    t0 = time.monotonic()
    control = f"tcp://{net.coordinator.addr}:{PORT}"
    coord = net.start(
        net.coordinator.ns,
        [BYZEMU, "-v", "coordinator", str(cfg), "--bind", control, "--out", str(out), "--quiet"],
        coord_log,
    )
    key = _wait_for_key(out / "coordinator.key", coord, 90, logs)
    peers = {
        h.ns: net.start(
            h.ns,
            [
                BYZEMU,
                "-v",
                "peer",
                "--coordinator",
                control,
                "--count",
                str(PER_HOST),
                "--bind-host",
                h.addr,
                "--coordinator-key",
                key,
            ],
            log,
        )
        for h, log in zip(net.hosts, host_logs)
    }
    codes = _wait(coord, peers, RUN_TIMEOUT)
    multihost_s = time.monotonic() - t0
    assert all(c == 0 for c in codes.values()), f"exit codes {codes}\n{_logs(logs)}"

    # --- the same config and seed on one host: the in-process reference, which
    # tests/test_reference_equivalence.py holds bit-identical to `byzemu launch`
    run_reference(config_mod.load(cfg), single)

    # --- CURVE was on, and every peer advertised its own host's namespace address
    summary = json.loads((out / "summary.json").read_text())
    assert summary["curve"] is True, summary
    assert not summary.get("failed_peers"), (summary, _logs(logs))
    topo = json.loads((out / "topology.json").read_text())
    host_of_node = {n["id"]: _host_of(n["data_addr"]) for n in topo["nodes"]}
    peer_addrs = {h.addr for h in net.hosts}
    assert set(host_of_node.values()) == peer_addrs, host_of_node  # no 127.0.0.1, nothing foreign
    for h in net.hosts:
        assert sum(a == h.addr for a in host_of_node.values()) == PER_HOST, host_of_node
    cross = [(u, v) for u, v in topo["edges"] if host_of_node[u] != host_of_node[v]]
    assert cross, f"no graph edge crosses hosts: {host_of_node}"  # a connected graph always has one

    # the graph, roles and shards are those of the single-host run, whatever host got which id
    single_topo = json.loads((single / "topology.json").read_text())
    assert topo["edges"] == single_topo["edges"]
    for a, b in zip(topo["nodes"], single_topo["nodes"]):
        assert (a["role"], a["neighbors"], a["shard_size"]) == (b["role"], b["neighbors"], b["shard_size"])

    # --- every round, every peer: same metrics (model digest, loss, accuracy) as on one host
    mh_rounds, single_rounds = read_rounds(out), read_rounds(single)
    assert [r["round"] for r in mh_rounds] == list(range(1, ROUNDS + 1)), _logs(logs)
    assert [r["round"] for r in single_rounds] == list(range(1, ROUNDS + 1))
    for mh, sh in zip(mh_rounds, single_rounds):
        for node in map(str, range(NODES)):
            a, b = mh["peers"][node], sh["peers"][node]
            assert a["status"] == "ok", (mh["round"], node, a)
            assert a["role"] == b["role"]
            assert a["metrics"] == b["metrics"], (mh["round"], node, host_of_node[int(node)])
            assert a["traffic"]["drops_total"] == {}, (mh["round"], node)
    assert "test_accuracy" in mh_rounds[-1]["peers"]["0"]["metrics"]
    roles = [p["role"] for p in mh_rounds[0]["peers"].values()]
    assert roles.count("byzantine:gaussian") == 1

    # --- no traffic to any address the test did not create
    for host in [net.coordinator, *net.hosts]:
        routes = [r.get("dst") for r in json.loads(_ip("-j", "-4", "route", "show", ns=host.ns) or "[]")]
        assert routes == [str(net.subnet)], (host.ns, routes)  # no default route, nothing else
        if net.ipv6_off:
            assert json.loads(_ip("-j", "-6", "route", "show", ns=host.ns) or "[]") == [], host.ns
        snmp = _snmp_ip(host.ns)
        assert snmp["OutNoRoutes"] == 0, (host.ns, snmp)  # nothing tried to leave the subnet
        neigh = {e["dst"] for e in json.loads(_ip("-j", "neigh", "show", ns=host.ns) or "[]")}
        assert neigh <= net.addresses - {host.addr}, (host.ns, neigh)  # resolved only test addresses
        # and the run did go over the wire: chunks and control crossed the bridge
        stats = json.loads(_ip("-j", "-s", "link", "show", "eth0", ns=host.ns))[0]["stats64"]
        assert stats["tx"]["bytes"] > 10_000 and stats["rx"]["bytes"] > 10_000, (host.ns, stats)
    print(f"multi-host run {multihost_s:.1f} s; node -> host {host_of_node}; crossing edges {cross}")
