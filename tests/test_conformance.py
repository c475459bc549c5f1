"""``byzemu conformance`` (launch/tools/conformance.py; docs/PROTOCOL.md, *Conformance kit*) with the
raw-frame harness as the foreign peer (tests/support/foreign_peer.py): a conforming peer
passes every check with CURVE off and on (a round without one of its edges and a round
with a byzemu peer away included), and registering last with sender MACs (its
receiving side counts each hostile message under the spec's reason); a peer that breaks
the chunk rule fails, and the report names the failing checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from launch.cli import main

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

FOREIGN = [sys.executable, str(Path(__file__).parent / "support" / "foreign_peer.py")]
#: the kit's least: the byzemu neighbor killed after round 2, another one away in round 3
#: and back in round 4
SHORT = ["--set", "rounds=4"]


def conformance(tmp: Path, *args: str, peer: list[str]) -> Result:
    """``byzemu conformance`` through the click entry point in this process: the kit's
    coordinator runs here as it does in the command's process, its byzemu peers are real
    processes from the forkserver (started once for the module, not once per run), and
    the foreign peer is a real process (``sys.executable``)."""
    result = CliRunner().invoke(main, ["conformance", "--out", str(tmp / "conf"), *args, "--", *peer])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_conforming_peer_passes_every_check(tmp_path: Path) -> None:
    proc = conformance(tmp_path, *SHORT, peer=FOREIGN)

    assert proc.exit_code == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "[curve off]" in lines and "[curve on]" in lines
    checks = [line.strip() for line in lines if line.startswith("  ")]
    names = [c.split(":")[0] for c in checks]
    per_mode = (
        ["PASS registered", "PASS ready"]
        + [f"PASS round {t}" for t in (1, 2, 3, 4) for _ in ("round_done fields", "chunks to", "chunks from")]
        + ["PASS round 1", "PASS round 3"]  # the graph change and the churn event
        + ["PASS hostile messages", "PASS drops", "PASS peer_failed", "PASS stop"]
    )
    assert names == per_mode * 2, proc.stdout
    events = [c for c in checks if c.startswith(("PASS round 1: graph change", "PASS round 3: churn"))]
    assert events[:2] == [
        "PASS round 1: graph change: no edge to node 2: your peer exchanged with exactly [1, 3]",
        "PASS round 3: churn: node 1 away: your peer exchanged with exactly [2]",
    ], proc.stdout
    assert lines[-1] == "all checks passed"


def test_a_peer_registering_last_with_sender_macs_passes_every_check(tmp_path: Path) -> None:
    args = ["--curve", "on", "--register-last", "--set", "runtime.sender_mac=true", *SHORT]

    proc = conformance(tmp_path, *args, peer=FOREIGN)

    assert proc.exit_code == 0, proc.stdout + proc.stderr
    assert "your peer is node 3" in proc.stdout.splitlines()[0]
    hostile = next(line for line in proc.stdout.splitlines() if "hostile messages" in line)
    assert "'bad_mac'" in hostile and hostile.startswith("  PASS"), hostile


def test_peer_sending_every_chunk_fails_naming_the_checks(tmp_path: Path) -> None:
    fast = ["--set", "runtime.chunk_timeout=3", "--set", "runtime.round_timeout=12"]
    proc = conformance(tmp_path, "--curve", "off", *SHORT, *fast, peer=[*FOREIGN, "--broken", "all-chunks"])

    assert proc.exit_code == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "FAILED 5 check(s): curve off: round 1: chunks from your peer; curve off: round 2: chunks from your peer; "
        "curve off: round 3: chunks from your peer; curve off: round 4: chunks from your peer; curve off: drops"
    ), proc.stdout
    drops = next(line for line in proc.stdout.splitlines() if line.startswith("  FAIL drops"))
    assert "'bad_chunk_count': " in drops, drops


def test_peer_ignoring_the_round_graph_fails_the_graph_change_and_churn_checks(tmp_path: Path) -> None:
    proc = conformance(tmp_path, "--curve", "off", *SHORT, peer=[*FOREIGN, "--broken", "ignore-graph"])

    assert proc.exit_code == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "FAILED 3 check(s): curve off: round 1: graph change; curve off: round 3: churn; curve off: drops"
    ), proc.stdout
    graph = next(line for line in proc.stdout.splitlines() if "round 1: graph change" in line)
    assert "node 2 dropped 1 message(s) from it as not_round_neighbor" in graph, graph


def test_conformance_refuses_a_config_it_cannot_check(tmp_path: Path) -> None:
    # refused before anything starts: through the click entry point in this process
    args = ["conformance", "--out", str(tmp_path / "conf"), "--set", "topology.kind=ring", "--", *FOREIGN]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith('error: conformance needs topology.kind = "complete"')
