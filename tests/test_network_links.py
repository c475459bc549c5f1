"""Link conditions on real namespaces: measured lower bounds, the refusal, the cleanup.

What runs where: every test here needs root, ``ip`` and ``tc`` (else it is skipped with
that reason). The rate test needs only HTB; the delay and loss tests need netem and are
skipped, with the reason, on a kernel without it, where the refusal test runs instead
(and is skipped where netem exists). docs/NETWORK.md, *Tests*, lists them.

Times are lower bounds: a loaded machine only makes a round slower, so each assertion
holds however busy the cores are.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.net import namespaces
from launch.net.namespaces import GSO_MAX_BYTES, PREFIX
from launch.net.probe import one_way_delays
from launch.run.reference import run_reference
from protocol import config as config_mod
from protocol.network_config import Link
from tests.support import commands
from tests.support.harness import read_rounds
from tests.support.runs import network_config
from tests.support.waiting import running, wait_until

pytestmark = pytest.mark.cluster


def _requirements() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "network namespaces and tc need root"
    missing = [t for t in ("ip", "tc", "ss") if shutil.which(t) is None]
    return f"iproute2's {', '.join(missing)} missing" if missing else ""


def _has_netem() -> bool:
    """Whether this kernel has sch_netem (tried in a namespace of our own)."""
    ns = f"{PREFIX}{os.getpid()}-probe"
    subprocess.run(["ip", "netns", "add", ns], capture_output=True, check=False)
    try:
        proc = subprocess.run(
            ["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


_MISSING = _requirements()
needs_root = pytest.mark.skipif(bool(_MISSING), reason=_MISSING)
NETEM = not _MISSING and _has_netem()
needs_netem = pytest.mark.skipif(not NETEM, reason="this kernel has no netem (sch_netem)")
NETFILTER = shutil.which("iptables-restore") is not None
needs_netfilter = pytest.mark.skipif(not NETFILTER, reason="iptables-restore missing (apt-get install iptables)")


def _leftovers(pid: int) -> list[str]:
    """Namespaces and root links a launcher with ``pid`` made that still exist."""
    prefix = f"{PREFIX}{pid}"
    spaces = [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]
    links = [e["ifname"] for e in json.loads(_ip("-j", "link", "show") or "[]")]
    return [s for s in spaces if s.startswith(f"{prefix}-")] + [x for x in links if x == f"{prefix}h"]


def _delay_loops(pid: int) -> list[int]:
    """Pids of the delay loops (``launch.net.delayer``) of the launcher ``pid``'s run."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"launch.net.delayer" in argv
            and any(f'"{PREFIX}{pid}-p'.encode() in x for x in argv)
            and _alive(int(entry.name))
        ):
            found.append(int(entry.name))
    return found


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _write(tmp_path: Path, network: dict[str, Any], rounds: int = 2) -> Path:
    cfg = tmp_path / "net.toml"
    cfg.write_text(network_config("net", seed=13, rounds=rounds, network=network))
    return cfg


def _launch(cfg: Path, out: Path, log: Path) -> commands.Command:
    """``byzemu launch`` as a process of its own (``tests/support/commands.py``)."""
    return commands.start(["launch", str(cfg), "--out", str(out)], log)


def _message_bytes(run: Path) -> int:
    """Bytes of one chunk message (each peer sends one per neighbour per round)."""
    traffic = read_rounds(run)[0]["peers"]["0"]["traffic"]
    return traffic["sent_bytes"] // traffic["sent_msgs"]


@needs_root
def test_a_rate_limit_makes_every_round_last_a_transmission_time(tmp_path: Path) -> None:
    # Arrange: 2 Mbit/s on every link; each round every peer sends each neighbour one
    # message of ~102 kB, which needs 102e3 * 8 / 2e6 = 0.41 s on its link
    rate_mbit = 2.0
    cfg, out, log = _write(tmp_path, {"rate_mbit": rate_mbit}), tmp_path / "run", tmp_path / "launch.log"

    # Act
    proc = _launch(cfg, out, log)
    code = proc.wait(240)

    # Assert: a round cannot end before the last message crossed its link. HTB lets its
    # burst (1600 bytes at this rate) and one packet on credit (at most GSO_MAX_BYTES)
    # through at once, so the bound is (B - 1600 - GSO_MAX_BYTES) * 8 / R; the tolerance
    # (5 %) covers HTB's clock granularity; nothing can make a round shorter
    assert code == 0, log.read_text()[-3000:]
    size = _message_bytes(out)
    bound = (size - 1600 - GSO_MAX_BYTES) * 8 / (rate_mbit * 1e6) * 0.95
    rounds = read_rounds(out)
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        assert r["round_s"] >= bound, (r["round_s"], bound, rounds)
        links = r["network"]["links"]
        assert sorted(links) == ["0>1", "0>2", "1>0", "1>2", "2>0", "2>1"]  # a triangle, both directions
        assert all(link["rtt_ms"] is not None and link["rtt_ms"] > 0 for link in links.values()), links
        assert r["network"]["read_s"] > 0
    # shaping changes when chunks arrive, not what is computed: the same models and
    # metrics as the in-process reference (no chunk missed its deadline)
    reference = tmp_path / "reference"
    run_reference(config_mod.load(cfg), reference)
    for mine, ref in zip(rounds, read_rounds(reference), strict=True):
        for node in ("0", "1", "2"):
            assert mine["peers"][node]["metrics"] == ref["peers"][node]["metrics"], (mine["round"], node)
    for name in rounds[0]["network"]["links"]:
        # every message crossed its shaped class: over the run (the last record is read
        # after the last round), the kernel counted at least the messages' bytes
        sent = sum(r["network"]["links"][name]["bytes"] for r in rounds)
        assert sent >= len(rounds) * size, (name, sent, size)
    assert _leftovers(proc.pid) == []
    print(f"message {size} B, bound {bound:.3f} s, rounds {[round(r['round_s'], 3) for r in rounds]} s")


def _refused(cfg: Path, out: Path, env: dict[str, str] | None = None) -> tuple[commands.Command, str]:
    """Launch ``cfg``, expecting a refusal: the process and its one stderr line."""
    logs = out.parent
    proc = commands.start(["launch", str(cfg), "--out", str(out)], logs / "stdout.log", env, err=logs / "stderr.log")
    _, stderr = proc.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    assert proc.returncode == 2, stderr
    assert len(lines) == 1, stderr
    assert not (out / "rounds.jsonl").exists()  # refused before any peer started
    assert _leftovers(proc.pid) == []
    return proc, lines[0]


@needs_root
@pytest.mark.skipif(NETEM, reason="this kernel has netem: a delay with apply_with = netem runs")
def test_a_delay_for_netem_is_refused_where_the_kernel_has_no_netem(tmp_path: Path) -> None:
    cfg = _write(tmp_path, {"delay_ms": 100.0, "loss_pct": 1.0, "apply_with": "netem"})
    _, line = _refused(cfg, tmp_path / "run")
    assert line.startswith("error: network: network.delay_ms, network.loss_pct needs the kernel's netem"), line
    assert line.endswith(
        'set network.apply_with = "auto" to apply them with netfilter, or run on a kernel with sch_netem'
    )


@needs_root
def test_a_delay_without_netem_is_refused_where_iptables_is_missing(tmp_path: Path) -> None:
    # Arrange: a PATH with iproute2 but no iptables (a machine without the package)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "tc", "ss"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    cfg = _write(tmp_path, {"delay_ms": 100.0, "loss_pct": 1.0, "apply_with": "netfilter"})

    # Act
    _, line = _refused(cfg, tmp_path / "run", env={"PATH": str(bin_dir)})

    # Assert: one line naming the fields, the mechanism and the missing package
    assert line == (
        'error: network: network.delay_ms, network.loss_pct needs netem, which network.apply_with = "netfilter" '
        "rules out, or netfilter (iptables, nfnetlink_queue): iptables-restore is not on PATH (install the "
        "iptables package); only network.rate_mbit can be applied here"
    )


@needs_root
@pytest.mark.parametrize(
    "mechanism", [pytest.param("netfilter", marks=needs_netfilter), pytest.param("netem", marks=needs_netem)]
)
def test_a_delayed_lossy_link_holds_back_every_round_and_loses_no_message(tmp_path: Path, mechanism: str) -> None:
    # Arrange: 100 ms one way and 10 % packet loss on every link, each direction
    network = {"delay_ms": 100.0, "loss_pct": 10.0, "apply_with": mechanism}
    cfg, out, log = _write(tmp_path, network), tmp_path / "run", tmp_path / "launch.log"

    # Act
    proc = _launch(cfg, out, log)
    code = proc.wait(240)

    # Assert: a round holds at least one message crossing (>= 100 ms), every connection's
    # RTT carries the delay twice, and loss cost time (retransmissions), not messages
    assert code == 0, log.read_text()[-3000:]
    rounds = read_rounds(out)
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        assert r["round_s"] >= 0.1, r["round_s"]
        links = r["network"]["links"]
        assert all(link["rtt_ms"] >= 200 for link in links.values()), links
        for peer in r["peers"].values():
            assert peer["status"] == "ok"
            assert peer["traffic"]["recv_msgs"] == 2 and peer["traffic"]["drops_total"] == {}
    # ~13 data packets (<= 8 KiB each) per message, 12 messages: P(no loss at 10 %) < 1e-70
    assert sum(link["retrans"] for r in rounds for link in r["network"]["links"].values()) > 0
    # delay and loss change when chunks arrive, never which: the models and metrics
    # (digests included) equal the in-process reference's, as the ideal network's do
    reference = tmp_path / "reference"
    run_reference(config_mod.load(cfg), reference)
    for mine, ref in zip(rounds, read_rounds(reference), strict=True):
        for node in ("0", "1", "2"):
            assert mine["peers"][node]["metrics"] == ref["peers"][node]["metrics"], (mine["round"], node)
    assert _leftovers(proc.pid) == []


@needs_root
@needs_netfilter
def test_a_100_ms_link_delays_every_message_at_least_100_ms() -> None:
    # one-way, measured from the sender's clock to the receiver's (one CLOCK_MONOTONIC):
    # a one-packet message and a chunk-sized one (~100 kB, the messages of the runs here)
    small = one_way_delays(Link(delay_ms=100.0), size=1000, count=3, gap_s=0.05, apply_with="netfilter")
    chunk = one_way_delays(Link(delay_ms=100.0), size=100_000, count=2, gap_s=0.05, apply_with="netfilter")
    assert small.mechanism == chunk.mechanism == "netfilter"
    assert min(small.delays) >= 0.1, small.delays
    assert min(chunk.delays) >= 0.1, chunk.delays


@needs_root
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_nothing_is_left_after_ctrl_c_or_a_killed_launcher(tmp_path: Path, stop: signal.Signals) -> None:
    # Arrange: a run slow enough to be stopped mid-way (0.5 Mbit/s: ~1.6 s per round),
    # with a delay applied by netfilter and the delay loop where iptables is installed
    network = {"rate_mbit": 0.5, **({"delay_ms": 5.0, "apply_with": "netfilter"} if NETFILTER else {})}
    cfg, out, log = _write(tmp_path, network, rounds=50), tmp_path / "run", tmp_path / "launch.log"
    proc = _launch(cfg, out, log)
    wait_until(
        lambda: read_rounds(out),
        timeout=180,
        what="round 1 in rounds.jsonl",
        alive=running(proc),
        details=lambda: log.read_text()[-3000:],
    )
    assert _leftovers(proc.pid) != []  # the run's namespaces exist while it runs
    assert len(_delay_loops(proc.pid)) == (1 if NETFILTER else 0)  # and its delay loop

    # Act: Ctrl-C goes to the launcher's process group, as a terminal sends it; SIGKILL
    # only to the launcher (its peers and the reaper outlive it)
    os.killpg(proc.pid, stop) if stop == signal.SIGINT else os.kill(proc.pid, stop)
    proc.wait(60)

    # Assert: the launcher (Ctrl-C) or the reaper (killed) removed every namespace and
    # link, and no process is left in them
    left = wait_until(
        lambda: _leftovers(proc.pid) == [] or None,
        timeout=60,
        what="the run's namespaces removed",
        details=lambda: f"left: {_leftovers(proc.pid)}\n{log.read_text()[-3000:]}",
        interval=0.1,
    )
    assert left is True
    peers = [n["pid"] for n in json.loads((out / "topology.json").read_text())["nodes"]]
    wait_until(
        lambda: not any(_alive(pid) for pid in peers),
        timeout=60,
        what="every peer process gone",
        details=lambda: f"alive: {[pid for pid in peers if _alive(pid)]}",
        interval=0.1,
    )
    # the delay loop is gone (its queues and the iptables rules went with the namespaces)
    wait_until(
        lambda: _delay_loops(proc.pid) == [] or None,
        timeout=60,
        what="the delay loop gone",
        details=lambda: f"alive: {_delay_loops(proc.pid)}",
        interval=0.1,
    )
    if stop == signal.SIGINT:
        assert proc.returncode == 130, log.read_text()[-3000:]
        assert json.loads((out / "interrupted.json").read_text())["reason"].startswith("interrupted")


@needs_root
def test_the_next_run_removes_a_network_whose_launcher_is_gone() -> None:
    # Arrange: a network named for a pid that no process has (a launcher killed before its
    # reaper started, say)
    dead = 4_000_000  # above pid_max's default ceiling (2^22): never a live pid
    net = namespaces.create(2, prefix=f"{PREFIX}{dead}")
    assert len(_leftovers(dead)) == 4  # bridge and 2 peer namespaces, the launcher's link

    # Act
    removed = namespaces.remove_stale()

    # Assert
    assert net.prefix in removed
    assert _leftovers(dead) == []


def test_a_multihost_coordinator_refuses_a_network_section(tmp_path: Path) -> None:
    # byzemu coordinator cannot shape links on other hosts: refused, not run ideal
    cfg, out = _write(tmp_path, {"rate_mbit": 5.0}), tmp_path / "run"
    # in process: refused before anything binds or starts
    proc = CliRunner().invoke(main, ["coordinator", str(cfg), "--bind", "tcp://127.0.0.1:0", "--out", str(out)])
    assert proc.exit_code == 2, (proc.stderr, proc.exception)
    assert proc.stderr.strip().splitlines() == [
        "error: network: link conditions are applied by byzemu launch on one machine, not in a multihost run: "
        "remove [network] (docs/NETWORK.md)"
    ]
