"""Delay, jitter and loss without netem: netfilter rules on each receiving peer's ingress
and a delay loop (:mod:`launch.net.delayer`) behind nfnetlink_queue.

For each link u->v with conditions, peer v's namespace gets, in ``iptables``' ``raw``
table, ``PREROUTING`` chain (the first hook an arriving packet meets)::

    -A PREROUTING -s ADDR_u/32 -m statistic --mode random --probability P -j DROP   (loss_pct)
    -A PREROUTING -s ADDR_u/32 -j NFQUEUE --queue-num u                            (delay_ms)

Why at the receiver, not at the sender's egress: a packet the sender's own ``OUTPUT``
hook drops is reported to TCP as a local send error (``EPERM``), which TCP retries as a
failed transmission, not as a loss on the path; and a packet held in a queue on the
sender's side still counts against its socket's TCP Small Queues budget (about 1 ms of
the pacing rate), which would throttle a delayed link to a few packets per delay. On
the receiver's ``PREROUTING`` hook the packet has crossed the link and left its sender's
accounting: a drop is a loss TCP recovers from by retransmitting, a hold is propagation
delay. The rate (HTB at the sender's egress, :mod:`launch.net.shaper`) comes first, as on
a real link. Only packets from graph neighbours match: the control plane (the
coordinator's address) and messages between colluders that are not neighbours pass
unheld and undropped.

The loss draws are the kernel's (``statistic --mode random``), not seeded.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass

from launch.net.namespaces import NetworkError, enter
from launch.net.nfqueue import QueueSocket
from protocol.network_config import Link

_TIMEOUT_S = 60
#: seconds the delay loop may take to bind its queues
_READY_S = 60.0


@dataclass(frozen=True)
class Incoming:
    """One link towards a peer: the sender's node id and address, and the conditions."""

    node: int
    addr: str
    link: Link


def held(link: Link) -> bool:
    """Whether the link's packets go through the delay loop."""
    return link.delay_ms > 0 or link.reorder_pct > 0


def ingress_rules(incoming: list[Incoming]) -> str:
    """``iptables-restore`` input for a receiving peer's namespace."""
    lines = ["*raw", ":PREROUTING ACCEPT [0:0]"]
    for inc in sorted(incoming, key=lambda i: i.node):
        src = f"-A PREROUTING -s {inc.addr}/32"
        if inc.link.loss_pct > 0:
            lines.append(f"{src} -m statistic --mode random --probability {inc.link.loss_pct / 100:.8f} -j DROP")
        if held(inc.link):
            lines.append(f"{src} -j NFQUEUE --queue-num {inc.node}")
    return "\n".join([*lines, "COMMIT", ""])


def apply_rules(ns: str, rules: str) -> None:
    """Load ``rules`` into ``ns`` (atomically); NetworkError with iptables' message."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "iptables-restore", "-w"],
        input=rules,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        said = "; ".join(x.strip() for x in proc.stderr.splitlines() if x.strip())
        raise NetworkError(f"`iptables-restore` in {ns} failed: {said or proc.returncode}")


def _bind_in(ns: str, queue: int) -> None:
    """Bind (and release) ``queue`` in ``ns`` from a helper thread (setns moves a thread)."""
    failure: list[BaseException] = []

    def probe() -> None:
        try:
            enter(ns)
            sock = QueueSocket(rcvbuf=1 << 16)
            try:
                sock.bind(queue)
            finally:
                sock.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=probe, name="nfqueue-probe", daemon=True)
    thread.start()
    thread.join(_TIMEOUT_S)
    if failure:
        raise failure[0]


def check_netfilter(ns: str) -> None:
    """NetworkError (one line: what is missing) unless ``ns`` takes the loss and queue
    rules and a queue can be bound there."""
    if shutil.which("iptables-restore") is None:
        raise NetworkError("iptables-restore is not on PATH (install the iptables package)")
    apply_rules(
        ns,
        ingress_rules([Incoming(0, "192.0.2.1", Link(delay_ms=1.0, loss_pct=1.0))]),  # TEST-NET-1: no traffic
    )
    try:
        _bind_in(ns, 0)
    except OSError as exc:
        raise NetworkError(f"binding an nfnetlink_queue failed ({exc.strerror or exc})") from None
    finally:
        apply_rules(ns, ingress_rules([]))  # the probe's rules go again


class DelayLoop:
    """The run's :mod:`launch.net.delayer` process, started in ``bridge_ns``."""

    def __init__(self, bridge_ns: str, spec: dict) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", bridge_ns, sys.executable, "-m", "launch.net.delayer", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], _READY_S)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if line != "ready":
            self.stop()
            said = line.removeprefix("error: ") or f"no answer in {_READY_S:.0f} s"
            raise NetworkError(f"network: the delay loop could not bind its nfnetlink queues: {said}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Close its pipe (it exits) and wait; kill it if it does not."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def delay_spec(seed: int, receivers: dict[int, tuple[str, list[Incoming]]]) -> dict:
    """The delay loop's spec: ``receivers`` maps a node to its namespace and incoming links."""
    out = []
    for node, (ns, incoming) in sorted(receivers.items()):
        links = {
            str(i.node): {"delay_ms": i.link.delay_ms, "jitter_ms": i.link.jitter_ms, "reorder_pct": i.link.reorder_pct}
            for i in incoming
            if held(i.link)
        }
        if links:
            out.append({"ns": ns, "node": node, "links": links})
    return {"seed": seed, "receivers": out}


def install(bridge_ns: str, seed: int, receivers: dict[int, tuple[str, list[Incoming]]]) -> DelayLoop | None:
    """Apply every receiver's loss and delay: the delay loop first (its queues bound), then
    the rules (a queue rule without a bound queue would drop its packets). Returns the
    loop to stop at the end, or None when no link is delayed."""
    spec = delay_spec(seed, receivers)
    loop = DelayLoop(bridge_ns, spec) if spec["receivers"] else None
    try:
        for _node, (ns, incoming) in sorted(receivers.items()):
            if any(i.link.loss_pct > 0 or held(i.link) for i in incoming):
                apply_rules(ns, ingress_rules(incoming))
    except BaseException:
        if loop is not None:
            loop.stop()
        raise
    return loop
