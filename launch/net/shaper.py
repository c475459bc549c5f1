"""Link conditions as Linux ``tc`` rules on each peer's egress, and the kernel's check.

Each peer namespace's ``eth0`` gets one HTB root (``htb default 0``: traffic no filter
claims, i.e. the control plane and messages between Byzantine colluders, leaves
unshaped). For each graph neighbour ``j`` with a non-ideal link the peer gets a class
``1:<10+j>`` (hex) with the link's rate as both ``rate`` and ``ceil`` (100 Gbit/s when only
netem's conditions are set), a ``u32`` filter sending packets for ``j``'s address to it,
and, when the link has a delay, jitter, loss, reordering or duplication, a ``netem`` leaf
under the class. Both ends of an edge shape their own direction, so each direction of a
link has its conditions (a round trip carries the delay twice).

Only ``htb`` is needed for a rate; everything else needs ``netem`` (``sch_netem``) or, on
a kernel that lacks it, netfilter and a delay loop (:mod:`launch.net.netfilter`; then no
netem leaf is added and tc shapes only the rate): :func:`check_kernel` tries them in a
namespace and refuses the run (one line naming what is missing) rather than running it
unshaped.
"""

from __future__ import annotations

import subprocess

from launch.net.namespaces import NetworkError
from launch.net.netfilter import check_netfilter
from protocol.network_config import Link

#: the rate of a class that only carries netem's conditions (Mbit/s): no limit in practice
UNLIMITED_MBIT = 100_000.0
_TIMEOUT_S = 60


def run_tc(ns: str, commands: list[str]) -> None:
    """``tc -n NS -batch -`` over ``commands``; NetworkError with tc's message."""
    proc = subprocess.run(
        ["tc", "-n", ns, "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        said = [x.strip() for x in proc.stderr.splitlines() if x.strip() and not x.startswith("Command failed")]
        raise NetworkError(f"`tc -n {ns}` failed: {'; '.join(said) or proc.returncode}")


def class_id(node: int) -> str:
    """The HTB class (``1:minor``, minor in hex) of the link towards ``node``."""
    return f"1:{10 + node:x}"


def netem_args(link: Link) -> str:
    """The link's conditions as netem options ("" if it needs none)."""
    parts = []
    if link.delay_ms > 0:
        parts.append(f"delay {link.delay_ms}ms" + (f" {link.jitter_ms}ms" if link.jitter_ms > 0 else ""))
    if link.loss_pct > 0:
        parts.append(f"loss {link.loss_pct}%")
    if link.reorder_pct > 0:
        parts.append(f"reorder {link.reorder_pct}%")
    if link.duplicate_pct > 0:
        parts.append(f"duplicate {link.duplicate_pct}%")
    return " ".join(parts)


def egress_commands(towards: dict[int, tuple[str, Link]], dev: str = "eth0") -> list[str]:
    """tc commands shaping ``dev``'s egress: ``towards`` maps a neighbour's node id to its
    address and the link's conditions."""
    cmds = [f"qdisc add dev {dev} root handle 1: htb default 0"]
    for node, (addr, link) in sorted(towards.items()):
        if link.ideal:
            continue
        cid = class_id(node)
        rate = link.rate_mbit if link.rate_mbit > 0 else UNLIMITED_MBIT
        cmds.append(f"class add dev {dev} parent 1: classid {cid} htb rate {rate}mbit ceil {rate}mbit")
        netem = netem_args(link)
        if netem:
            cmds.append(f"qdisc add dev {dev} parent {cid} handle {10 + node:x}: netem {netem}")
        cmds.append(f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip dst {addr}/32 flowid {cid}")
    return cmds


def check_kernel(ns: str, *, needs: list[str], apply_with: str = "auto") -> str:
    """What applies ``needs`` (the link fields beyond the rate that some link sets) in
    ``ns``'s kernel: ``"netem"``, ``"netfilter"`` (:mod:`launch.net.netfilter`) or ``""``
    when nothing is needed. Refuses (NetworkError, one line) unless HTB works and, for
    ``needs``, the mechanism ``apply_with`` allows does."""
    try:
        run_tc(ns, ["qdisc add dev lo root handle 1: htb default 0", "qdisc del dev lo root"])
    except NetworkError as exc:
        raise NetworkError(
            f"network: shaping a rate needs the kernel's htb qdisc (sch_htb), which fails here: {exc}"
        ) from None
    if not needs:
        return ""
    what = ", ".join(f"network.{f}" for f in needs)
    if apply_with != "netfilter":
        try:
            run_tc(ns, ["qdisc add dev lo root netem delay 1ms", "qdisc del dev lo root"])
            return "netem"
        except NetworkError as exc:
            lacks = f"the kernel's netem qdisc (sch_netem), which this kernel lacks ({exc})"
        if apply_with == "netem":
            raise NetworkError(
                f"network: {what} needs {lacks}; "
                'set network.apply_with = "auto" to apply them with netfilter, or run on a kernel with sch_netem'
            )
    else:
        lacks = 'netem, which network.apply_with = "netfilter" rules out'
    if "duplicate_pct" in needs:
        raise NetworkError(
            f"network: network.duplicate_pct needs {lacks}; without netem only rate_mbit, delay_ms, jitter_ms, "
            "loss_pct and reorder_pct can be applied"
        )
    try:
        check_netfilter(ns)
    except NetworkError as exc:
        raise NetworkError(
            f"network: {what} needs {lacks}, or netfilter (iptables, nfnetlink_queue): {exc}; "
            "only network.rate_mbit can be applied here"
        ) from None
    return "netfilter"
