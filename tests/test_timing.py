"""Deadlines, stragglers and exact replay over real processes and sockets.

Two runs: one whose conditions drop nothing (stragglers, a Byzantine peer that holds its
chunks for a small part of a long deadline) is bit-identical to the ideal in-process
reference; one whose Byzantine peer sends after the deadline has late chunks, counted
per sender, and ``byzemu reference --replay`` reproduces it bit for bit from its
delivery log while the ideal reference does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch import api
from launch.run.reference import replay_config, run_reference
from protocol import config as config_mod
from tests.support.harness import read_rounds
from tests.support.runs import small_config

pytestmark = pytest.mark.cluster

NODES = 4


def _launch(tmp: Path, name: str, text: str) -> tuple[Path, Path]:
    """A real local cluster, as ``byzemu launch`` runs it, started from this process: the
    launcher's torch import is paid once per worker, and the forkserver is reused."""
    cfg = tmp / f"{name}.toml"
    cfg.write_text(text)
    out = api.launch(config_mod.load(cfg), tmp / name)
    return cfg, out


def test_stragglers_and_held_chunks_that_meet_the_deadline_change_nothing(tmp_path: Path) -> None:
    text = small_config(
        "ontime",
        seed=3,
        nodes=NODES,
        rounds=2,
        train={"local_steps": 20},
        # node 1 holds its chunks 0.3 s past its own start of the exchange; the deadline is
        # far enough that the stragglers' chunks (sent after 4x their training, which a
        # loaded machine stretches) still meet it: a miss would be a timing accident here
        byzantine={"nodes": [1], "placement": "explicit", "attack": "deadline_edge", "params": {"at": 0.01}},
        stragglers={"factor": 4.0, "nodes": [0, 2]},
        runtime={"chunk_timeout": 30.0, "round_timeout": 60.0},
    )
    cfg, mp = _launch(tmp_path, "mp", text)
    run_reference(config_mod.load(cfg), tmp_path / "ideal")

    mp_rounds, ideal = read_rounds(mp), read_rounds(tmp_path / "ideal")
    assert [r["round"] for r in mp_rounds] == [1, 2]
    for got, want in zip(mp_rounds, ideal):
        for node in map(str, range(NODES)):
            peer = got["peers"][node]
            assert peer["metrics"] == want["peers"][node]["metrics"], (got["round"], node)
            assert peer["metrics"]["missed"] == [] and peer["traffic"]["late_from"] == {}
        for node in ("0", "2"):  # a straggler waits (factor - 1) x its training, at least
            timing = got["peers"][node]["timing"]
            assert timing["straggle_s"] >= 3.0 * timing["train_s"] > 0
        assert "straggle_s" not in got["peers"]["3"]["timing"]


def test_replay_reproduces_a_run_whose_chunks_missed_the_deadline(tmp_path: Path) -> None:
    text = small_config(
        "late",
        seed=1,
        nodes=NODES,
        rounds=3,
        byzantine={"nodes": [1], "placement": "explicit", "attack": "deadline_edge", "params": {"at": 1.5}},
        runtime={"chunk_timeout": 0.4, "round_timeout": 10.0},
    )
    cfg, mp = _launch(tmp_path, "mp", text)
    api.launch(replay_config(mp), tmp_path / "replay", in_process=True, replay=mp)  # byzemu reference --replay
    run_reference(config_mod.load(cfg), tmp_path / "ideal")

    mp_rounds, replayed, ideal = (read_rounds(p) for p in (mp, tmp_path / "replay", tmp_path / "ideal"))
    late = sum(n for r in mp_rounds for p in r["peers"].values() for n in p["traffic"]["late_from"].values())
    missed = [(r["round"], n) for r in mp_rounds for n, p in r["peers"].items() if p["metrics"]["missed"]]
    assert late >= 1 and missed  # peer 1's chunks reached its neighbors (0 and 2) after their deadline
    assert {n for _, n in missed} <= {"0", "2"}
    for got, want in zip(mp_rounds, replayed):
        for node in map(str, range(NODES)):
            assert got["peers"][node]["metrics"] == want["peers"][node]["metrics"], (got["round"], node)
    last = str(max(int(n) for _, n in missed))
    assert mp_rounds[-1]["peers"][last]["metrics"]["digest"] != ideal[-1]["peers"][last]["metrics"]["digest"]
    log = [json.loads(line) for line in (mp / "deliveries.jsonl").read_text().splitlines()]
    assert [entry["round"] for entry in log] == [1, 2, 3]
    assert sorted(log[0]["peers"]) == [str(n) for n in range(NODES)]
