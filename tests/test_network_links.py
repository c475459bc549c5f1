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

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.net import namespaces
from launch.net.namespaces import GSO_MAX_BYTES, PREFIX
from launch.run.reference import run_reference
from protocol import config as config_mod
from tests.support import BYZEMU
from tests.support.harness import read_rounds
from tests.support.waiting import running, wait_until

pytestmark = pytest.mark.cluster

#: the model's flat vector is 50,890 float32 (mlp on 28x28 inputs); 2 of 4 chunks per neighbour
CONFIG = """
name = "net"
seed = 13
nodes = 3
rounds = {rounds}

[topology]
kind = "regular"
degree = 2

[data]
dataset = "synthetic"
synthetic_size = 300

[model]
name = "mlp"

[train]
local_steps = 1
batch_size = 16

[chunks]
count = 4
per_neighbor = 2

[eval]
every = 100

[runtime]
register_timeout = 120.0
round_timeout = 100.0
chunk_timeout = 60.0

[network]
{network}
"""


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


def _leftovers(pid: int) -> list[str]:
    """Namespaces and root links a launcher with ``pid`` made that still exist."""
    prefix = f"{PREFIX}{pid}"
    spaces = [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]
    links = [e["ifname"] for e in json.loads(_ip("-j", "link", "show") or "[]")]
    return [s for s in spaces if s.startswith(f"{prefix}-")] + [x for x in links if x == f"{prefix}h"]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=30).stdout


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _write(tmp_path: Path, network: str, rounds: int = 2) -> Path:
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG.format(network=network, rounds=rounds))
    return cfg


def _launch(cfg: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [BYZEMU, "launch", str(cfg), "--out", str(out)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _message_bytes(run: Path) -> int:
    """Bytes of one chunk message (each peer sends one per neighbour per round)."""
    traffic = read_rounds(run)[0]["peers"]["0"]["traffic"]
    return traffic["sent_bytes"] // traffic["sent_msgs"]


@needs_root
def test_a_rate_limit_makes_every_round_last_a_transmission_time(tmp_path: Path) -> None:
    # Arrange: 2 Mbit/s on every link; each round every peer sends each neighbour one
    # message of ~102 kB, which needs 102e3 * 8 / 2e6 = 0.41 s on its link
    rate_mbit = 2.0
    cfg, out, log = _write(tmp_path, f"rate_mbit = {rate_mbit}"), tmp_path / "run", tmp_path / "launch.log"

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


@needs_root
@pytest.mark.skipif(NETEM, reason="this kernel has netem: test_a_delay_holds_back_every_round runs instead")
def test_a_delay_is_refused_where_the_kernel_has_no_netem(tmp_path: Path) -> None:
    cfg, out = _write(tmp_path, "delay_ms = 100.0\nloss_pct = 1.0"), tmp_path / "run"
    proc = subprocess.Popen(
        [BYZEMU, "launch", str(cfg), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, stderr = proc.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    assert proc.returncode == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: network: network.delay_ms, network.loss_pct needs the kernel's netem"), lines
    assert "only network.rate_mbit can be applied here" in lines[0]
    assert not (out / "rounds.jsonl").exists()  # refused before any peer started
    assert _leftovers(proc.pid) == []


@needs_root
@pytest.mark.skipif(not NETEM, reason="this kernel has no netem (sch_netem): the refusal test runs instead")
def test_a_delay_holds_back_every_round(tmp_path: Path) -> None:  # pragma: no cover - needs netem
    # 100 ms one way: a message cannot arrive before 100 ms after it left, and a round
    # holds at least one message crossing
    cfg, out, log = _write(tmp_path, "delay_ms = 100.0"), tmp_path / "run", tmp_path / "launch.log"
    proc = _launch(cfg, out, log)
    assert proc.wait(240) == 0, log.read_text()[-3000:]
    for r in read_rounds(out):
        assert r["round_s"] >= 0.1, r["round_s"]
        assert all(link["rtt_ms"] >= 200 for link in r["network"]["links"].values()), r["network"]


@needs_root
@pytest.mark.skipif(not NETEM, reason="this kernel has no netem (sch_netem): the refusal test runs instead")
def test_packet_loss_costs_time_not_messages(tmp_path: Path) -> None:  # pragma: no cover - needs netem
    # 20 % loss: TCP retransmits, so every message arrives (no drop, every peer ok)
    cfg, out, log = _write(tmp_path, "loss_pct = 20.0"), tmp_path / "run", tmp_path / "launch.log"
    proc = _launch(cfg, out, log)
    assert proc.wait(240) == 0, log.read_text()[-3000:]
    for r in read_rounds(out):
        for peer in r["peers"].values():
            assert peer["status"] == "ok"
            assert peer["traffic"]["recv_msgs"] == 2 and peer["traffic"]["drops_total"] == {}


@needs_root
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_nothing_is_left_after_ctrl_c_or_a_killed_launcher(tmp_path: Path, stop: signal.Signals) -> None:
    # Arrange: a run slow enough to be stopped mid-way (0.5 Mbit/s: ~1.6 s per round)
    cfg, out, log = _write(tmp_path, "rate_mbit = 0.5", rounds=50), tmp_path / "run", tmp_path / "launch.log"
    proc = _launch(cfg, out, log)
    wait_until(
        lambda: read_rounds(out),
        timeout=180,
        what="round 1 in rounds.jsonl",
        alive=running(proc),
        details=lambda: log.read_text()[-3000:],
    )
    assert _leftovers(proc.pid) != []  # the run's namespaces exist while it runs

    # Act: Ctrl-C goes to the launcher's process group, as a terminal sends it; SIGKILL
    # only to the launcher (its peers and the reaper outlive it)
    os.killpg(proc.pid, stop) if stop == signal.SIGINT else proc.send_signal(stop)
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
    cfg, out = _write(tmp_path, "rate_mbit = 5.0"), tmp_path / "run"
    # in process: refused before anything binds or starts
    proc = CliRunner().invoke(main, ["coordinator", str(cfg), "--bind", "tcp://127.0.0.1:0", "--out", str(out)])
    assert proc.exit_code == 2, (proc.stderr, proc.exception)
    assert proc.stderr.strip().splitlines() == [
        "error: network: link conditions are applied by byzemu launch on one machine, not in a multihost run: "
        "remove [network] (docs/NETWORK.md)"
    ]
