"""`byzemu peer --count N` without the key of a coordinator that runs CURVE: every peer's
handshake fails alike, and the terminal gets one line saying so, not one per peer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import Cluster, write_config

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

CONFIG = """
name = "nokey"
nodes = 3
rounds = 1

[data]
dataset = "synthetic"
synthetic_size = 100
root = ""

[model]
name = "logreg"

[topology]
kind = "ring"

[runtime]
curve = "on"
register_timeout = 240.0
"""


def test_missing_coordinator_key_is_one_error_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, CONFIG)
    with Cluster(cfg, tmp_path / "run", peers=3) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        cluster.coordinator_key = None  # the user left out --coordinator-key
        cluster.start_peers()
        assert cluster.peers is not None
        code = cluster.peers.wait(240)
        text = cluster.log("peers.log")

    assert code == 1, text
    failures = [line for line in text.splitlines() if "peer cannot join" in line]
    assert len(failures) == 1, text
    assert "pass --coordinator-key KEY" in failures[0]
