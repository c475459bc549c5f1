"""The emulator's correctness test (docs/ARCHITECTURE.md, *Two drivers, one node*): the
multi-process run over real ZeroMQ sockets and the in-process reference give bit-identical
models and metrics, on a static graph and on one that changes every round (EL-Local:
directed pushes, a rushing ALIE attacker whose targets change by round)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from launch import api
from launch.run.reference import run_reference
from protocol import config as config_mod
from tests.support.harness import read_rounds

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

CONFIG = """
name = "equivalence"
seed = 11
nodes = 6
rounds = 3

[topology]
kind = "regular"
degree = 3

[data]
dataset = "synthetic"
synthetic_size = 600
split = "dirichlet"
alpha = 1.0

[model]
name = "lenet"

[train]
local_steps = 4
batch_size = 16
lr = 0.05
momentum = 0.9
weight_decay = 0.0001
lr_schedule = "fading"   # lr 0.05 / (1 + k): halves after the first pass (~6 steps)
lr_fading = 1.0

[chunks]
count = 5
per_neighbor = 2

[byzantine]
count = 1
attack = "gaussian"
params = { sigma = 0.5 }

[defense]  # neighbor-level evidence: whole-round loss hooks and verdicts, across processes too
name = "sentinel"
params = { granularity = "neighbor" }

[eval]
every = 2
byzantine = true  # compare the Byzantine peer's evaluation too

[runtime]  # one peer computing at a time, the heap released every round: the same numbers
compute_slots = 1
release_memory = "round"
"""


#: a graph that changes every round: each peer pushes to 2 random others (in-degrees vary)
DYNAMIC = """
name = "equivalence-dynamic"
seed = 12
nodes = 6
rounds = 3

[topology]
kind = "regular"
degree = 3
dynamic = "el_local"
s = 2

[data]
dataset = "synthetic"
synthetic_size = 300

[model]
name = "logreg"

[train]
local_steps = 2

[chunks]
count = 4
per_neighbor = 2

[byzantine]
count = 1
attack = "alie"
params = { z = 1.0 }

[eval]
every = 2
byzantine = true
"""

#: churn on a static ring: node 2 away in round 2, a seeded peer away in round 3 (rate 0.2
#: of 6, windows of 2 rounds); the Byzantine peer runs a rushing ALIE
CHURN = (
    DYNAMIC.replace('name = "equivalence-dynamic"', 'name = "equivalence-churn"')
    .replace('dynamic = "el_local"\ns = 2', 'kind = "ring"')
    .replace('kind = "regular"\ndegree = 3\n', "")
    + "\n[churn]\naway = [[2, 2, 2]]\nrate = 0.2\nevery = 2\n"
)

#: a new peer and a crash on the same ring: node 3 joins in round 3 with the mean of its
#: neighbors' models (byzemu launch starts its process when round 2 starts, after round 1
#: ran: it registers late), node 5's process exits when round 3 starts
JOIN = CHURN.replace('name = "equivalence-churn"', 'name = "equivalence-join"').replace(
    "away = [[2, 2, 2]]\nrate = 0.2\nevery = 2\n", 'join = [[3, 3]]\njoin_model = "average"\ncrash = [[5, 3]]\n'
)

#: a returning peer: node 4's process ends after round 1, a new one returns in round 3
#: from node 4's checkpoint of round 1
REJOIN = (
    CHURN.replace('name = "equivalence-churn"', 'name = "equivalence-rejoin"')
    .replace("away = [[2, 2, 2]]\nrate = 0.2\nevery = 2\n", "leave = [[4, 2, 3]]\n")
    .replace("[eval]", "[runtime]\ncheckpoint_every = 1\n\n[eval]")
)

CONFIGS = {
    "static": (CONFIG, "byzantine:gaussian"),
    "dynamic": (DYNAMIC, "byzantine:alie"),
    "churn": (CHURN, "byzantine:alie"),
    "join": (JOIN, "byzantine:alie"),
    "rejoin": (REJOIN, "byzantine:alie"),
}


@dataclass
class Runs:
    mp: Path
    ref: Path
    role: str  #: the Byzantine peer's role label


@pytest.fixture(scope="module", params=list(CONFIGS))
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """One real local cluster of a config (one process per peer, started from this process
    through ``api.launch``, what ``byzemu launch`` runs: the forkserver is reused across the
    configs) and the reference run of it."""
    text, role = CONFIGS[request.param]
    tmp = tmp_path_factory.mktemp(f"equivalence-{request.param}")
    cfg_path = tmp / "eq.toml"
    cfg_path.write_text(text)
    mp_dir, ref_dir = tmp / "mp", tmp / "ref"
    api.launch(config_mod.load(cfg_path), mp_dir)
    run_reference(config_mod.load(cfg_path), ref_dir)
    return Runs(mp_dir, ref_dir, role)


def test_multiprocess_run_is_bit_identical_to_reference(runs: Runs) -> None:
    mp_rounds, ref_rounds = read_rounds(runs.mp), read_rounds(runs.ref)
    assert [r["round"] for r in mp_rounds] == [1, 2, 3]
    for mp_rec, ref_rec in zip(mp_rounds, ref_rounds):
        for node in map(str, range(6)):
            mp_peer, ref_peer = mp_rec["peers"][node], ref_rec["peers"][node]
            status = (
                "away" if int(node) in mp_rec.get("away", ()) else "failed" if int(node) in mp_rec["failed"] else "ok"
            )
            assert mp_peer["status"] == ref_peer["status"] == status
            # digest = SHA-256 of the float32 parameters: equal digests, equal models
            assert mp_peer.get("metrics") == ref_peer.get("metrics"), (mp_rec["round"], node)
    # evaluation rounds 2 and 3 carry accuracy; a Byzantine peer is in the mix
    assert "test_accuracy" in mp_rounds[1]["peers"]["0"]["metrics"]
    assert "test_accuracy" not in mp_rounds[0]["peers"]["0"]["metrics"]
    roles = [p["role"] for p in mp_rounds[0]["peers"].values()]
    assert roles.count(runs.role) == 1
    # the graph each round used is recorded, the same by both drivers (absent when static)
    graphs = [r.get("graph") for r in mp_rounds]
    assert graphs == [r.get("graph") for r in ref_rounds]
    # join: the ring without node 3 twice; rejoin: the ring, without node 4, the ring again
    changes = 2 if "join" in str(runs.mp) else 3
    assert graphs == [None] * 3 if runs.role == "byzantine:gaussian" else len({str(g) for g in graphs}) == changes
    if "churn" in str(runs.mp):  # who took part: all, then node 2 away, then the seeded one
        away = [r["away"] for r in mp_rounds]
        assert away == [r["away"] for r in ref_rounds] and away[:2] == [[], [2]] and len(away[2]) == 1
    summary = json.loads((runs.mp / "summary.json").read_text())
    if "-join" in str(runs.mp):  # node 3 is new in round 3, node 5 crashed in round 3
        assert [r["away"] for r in mp_rounds] == [[3], [3], []]
        assert [r["failed"] for r in mp_rounds] == [r["failed"] for r in ref_rounds] == [[], [], [5]]
        assert mp_rounds[2]["peers"]["3"]["status"] == "ok"
        # its process registered after round 1, while round 2 ran
        assert [(r["node"], r["round"]) for r in summary["late_registrations"]] == [(3, 2)]
    if "rejoin" in str(runs.mp):  # node 4 left after round 1 and came back in round 3
        assert [r["away"] for r in mp_rounds] == [[], [4], []] and summary["failed_peers"] == []
        assert [(r["node"], r["round"]) for r in summary["late_registrations"]] == [(4, 2)]
    # one traffic format: the reference counts the same messages and bytes (per run: a
    # peer may count an early next-round message in the round it arrived)
    for key in ("sent_msgs", "sent_bytes", "sent_payload_bytes", "recv_msgs", "recv_bytes"):
        for node in map(str, range(6)):
            mp_total = sum(r["peers"][node].get("traffic", {}).get(key, 0) for r in mp_rounds)
            assert mp_total == sum(r["peers"][node].get("traffic", {}).get(key, 0) for r in ref_rounds), (key, node)
    mp_summary = json.loads((runs.mp / "summary.json").read_text())
    ref_summary = json.loads((runs.ref / "summary.json").read_text())
    assert mp_summary["final_accuracy"] == ref_summary["final_accuracy"]


def test_multiprocess_run_uses_one_process_per_peer(runs: Runs) -> None:
    nodes = json.loads((runs.mp / "topology.json").read_text())["nodes"]
    pids = {n["pid"] for n in nodes}
    assert len(pids) == 6
    assert os.getpid() not in pids
    assert len({n["data_addr"] for n in nodes}) == 6
