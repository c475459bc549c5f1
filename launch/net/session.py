"""One ``byzemu launch`` run's network: the loopback, or shaped per-peer namespaces.

:func:`run_network` returns :class:`Loopback` when ``[network]`` leaves every link ideal
(nothing changes: peers and coordinator on 127.0.0.1) and :class:`ShapedNetwork`
otherwise. Both are context managers the local launcher enters before it binds the
coordinator and leaves after its peers have stopped, with the same four calls:
``control_bind``, ``peer_options`` (one per peer), ``attach`` (hooks on the coordinator)
and the exit.

A shaped run is refused with one ``error:`` line, before any peer starts, when this
machine cannot apply its links (not Linux, not root, no ``ip``/``tc``, neither netem nor
netfilter for a delay or loss). ``byzemu launch`` run by another user is root here too: it
entered a user namespace of its own first (:mod:`launch.net.rootless`). Without netem,
delay and loss are netfilter rules at each receiving peer and a delay loop process in the bridge namespace
(:mod:`launch.net.netfilter`), stopped before the namespaces are removed. Its network
is removed when the block ends (a normal end, an exception, Ctrl-C), by
:mod:`launch.net.reaper` when the launcher is killed, and, as a last resort, by the next
shaped run (:func:`launch.net.namespaces.remove_stale`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from types import TracebackType
from typing import Any

from launch.net import namespaces
from launch.net.links import Edge, netem_fields, possible_links, resolve_links
from launch.net.namespaces import NetworkError, RunNetwork
from launch.net.netfilter import DelayLoop, Incoming, install
from launch.net.rootless import rootless_hint
from launch.net.shaper import UNLIMITED_MBIT, check_kernel, egress_commands, run_tc
from launch.net.stats import LinkMeter
from peer.options import PeerOptions
from protocol.config import RunConfig
from protocol.network_config import Link, shaped

log = logging.getLogger("byzemu.net")


class Loopback:
    """Ideal links: everything on 127.0.0.1, as without ``[network]``."""

    control_bind = "tcp://127.0.0.1:*"

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def peer_options(self, options: PeerOptions, count: int) -> list[PeerOptions]:
        return [options] * count

    def attach(self, coordinator: Any) -> None:
        return None


def preflight() -> None:
    """NetworkError naming what this machine lacks for namespaces and tc."""
    if not sys.platform.startswith("linux"):
        raise NetworkError(f"network: link conditions need Linux network namespaces and tc; this is {sys.platform}")
    missing = [tool for tool in ("ip", "tc", "ss") if shutil.which(tool) is None]
    if missing:
        raise NetworkError(f"network: link conditions need iproute2's {', '.join(missing)} on PATH: install iproute2")
    if os.geteuid() != 0:
        raise NetworkError(
            "network: link conditions need root (network namespaces need CAP_SYS_ADMIN, tc CAP_NET_ADMIN) or a "
            "user namespace: byzemu launch enters one where the kernel allows it; from Python call "
            "launch.net.rootless.enter() before importing torch, or run as root"
        )


def check_support(cfg: RunConfig) -> None:
    """Refuse (NetworkError) a shaped run this machine cannot apply, before anything heavy
    starts: :func:`preflight`, then the kernel's qdiscs tried in a namespace of its own."""
    if not shaped(cfg.network):
        return
    preflight()
    what = netem_fields(possible_links(cfg.network, nodes=cfg.nodes))
    probe = f"{namespaces.PREFIX}{os.getpid()}-probe"
    namespaces.run_ip(["netns", "add", probe])
    try:
        check_kernel(probe, needs=what, apply_with=cfg.network.apply_with)
    except NetworkError as exc:
        raise NetworkError(f"{exc}{rootless_hint()}") from None
    finally:
        namespaces.run_ip(["netns", "del", probe], check=False)


class ShapedNetwork:
    """Per-peer namespaces with each graph link shaped by tc (``launch/net``)."""

    def __init__(self, cfg: RunConfig, edges: list[Edge]) -> None:
        self.cfg = cfg
        self.links: dict[Edge, Link] = resolve_links(cfg.network, edges, seed=cfg.seed, nodes=cfg.nodes)
        self.net: RunNetwork | None = None
        self.reaper: subprocess.Popen[bytes] | None = None
        self.meter: LinkMeter | None = None
        self.mechanism = ""  # what applies delay and loss: "netem", "netfilter" or "" (none needed)
        self.delay_loop: DelayLoop | None = None

    @property
    def control_bind(self) -> str:
        assert self.net is not None
        return f"tcp://{self.net.host_addr}:*"

    def __enter__(self) -> ShapedNetwork:
        preflight()
        for prefix in namespaces.remove_stale():
            log.warning("removed the network %s left by a launcher that is gone", prefix)
        self.net = namespaces.create(self.cfg.nodes)
        try:
            what = netem_fields(list(self.links.values()))
            self.mechanism = check_kernel(self.net.bridge_ns, needs=what, apply_with=self.cfg.network.apply_with)
            self.reaper = subprocess.Popen(
                [sys.executable, "-m", "launch.net.reaper", self.net.prefix],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            namespaces.remove(self.net.prefix)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.delay_loop is not None:
            self.delay_loop.stop()
        if self.net is not None:
            namespaces.remove(self.net.prefix)
        if self.reaper is not None and self.reaper.stdin is not None:
            self.reaper.stdin.close()  # it finds nothing left and exits
            try:
                self.reaper.wait(10)
            except subprocess.TimeoutExpired:
                self.reaper.kill()

    def peer_options(self, options: PeerOptions, count: int) -> list[PeerOptions]:
        """Peer ``i`` enters namespace ``i`` and binds (and advertises) its address there."""
        assert self.net is not None
        net = self.net
        return [
            dataclasses.replace(options, bind_host=net.peer_addr(i), advertise_host=None, netns=net.peer_ns(i))
            for i in range(count)
        ]

    def attach(self, coordinator: Any) -> None:
        """Shape the links once ids are known (at the assignment, before any chunk), and
        add the links' measurements to each round record (``network.record_links``)."""
        coordinator.before_assign = self.shape
        if self.cfg.network.record_links:
            coordinator.round_extra = self.measure

    def shape(self, data_addrs: dict[int, str]) -> None:
        """Install every peer's egress rules; ``data_addrs``: node id -> ``tcp://ip:port``."""
        assert self.net is not None
        ns_by_addr = {self.net.peer_addr(i): self.net.peer_ns(i) for i in range(self.net.count)}
        hostport = {node: addr.removeprefix("tcp://") for node, addr in data_addrs.items()}
        ip_of = {node: hp.rsplit(":", 1)[0] for node, hp in hostport.items()}
        ns_of = {node: ns_by_addr[ip] for node, ip in ip_of.items()}
        for u in sorted(ns_of):
            # an ideal link gets an unlimited class too, so that its bytes are counted
            towards = {v: (ip_of[v], _counted(self._tc_part(link))) for v, link in self._towards(u, sorted(ns_of))}
            run_tc(ns_of[u], egress_commands(towards))
        if self.mechanism == "netfilter":  # loss and delay at each receiver (launch/net/netfilter.py)
            receivers = {
                v: (ns_of[v], [Incoming(u, ip_of[u], link) for u, link in self._towards(v, sorted(ns_of))])
                for v in sorted(ns_of)
            }
            self.delay_loop = install(self.net.bridge_ns, self.cfg.seed, receivers)
        self.meter = LinkMeter(ns_of=ns_of, addr_of=hostport, links=list(self.links))
        log.info("shaped %d links of %d peers in %s", len(self.links), len(ns_of), self.net.prefix)

    def _towards(self, v: int, nodes: list[int]) -> list[tuple[int, Link]]:
        return [(u, self.links[(min(u, v), max(u, v))]) for u in nodes if (min(u, v), max(u, v)) in self.links]

    def _tc_part(self, link: Link) -> Link:
        """What tc applies of ``link``: all of it with netem, only the rate otherwise."""
        return link if self.mechanism == "netem" else Link(rate_mbit=link.rate_mbit)

    def measure(self, round_: int) -> dict[str, Any]:
        if self.delay_loop is not None and not self.delay_loop.alive:
            # its queues are gone: the kernel drops what its rules queue, the run stalls
            log.error("the delay loop died (exit %s): its links drop every packet", self.delay_loop.proc.returncode)
        return {"network": self.meter.read()} if self.meter is not None else {}


def _counted(link: Link) -> Link:
    return link if not link.ideal else dataclasses.replace(link, rate_mbit=UNLIMITED_MBIT)


def run_network(cfg: RunConfig, edges: list[Edge]) -> Loopback | ShapedNetwork:
    """The network of a ``byzemu launch`` run of ``cfg`` over the graph ``edges``."""
    return ShapedNetwork(cfg, edges) if shaped(cfg.network) else Loopback()
