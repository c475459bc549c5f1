"""No message is ever lost without being counted, around round 1 (docs/PROTOCOL.md,
*No silent loss*; DESIGN.md, *Planes*).

A scripted peer (tests/support/harness.py, raw frames) is node 0 of a 3-node complete graph whose
other nodes are real ``byzemu peer`` processes. From the moment its ``assign`` arrives
until ``round_start(1)`` -- while the real peers are still being assigned, setting up,
answering ``ready`` and starting round 1 -- it keeps sending round-1 ``chunk`` messages to
both real peers, then one more the instant ``round_start(1)`` arrives, and one in round 2.
Each real peer must account for every one of them: the first round-1 message is used
(``senders == 2`` in round 1), every later one is counted as a drop (``duplicate``, or
``stale_round`` once round 1 is aggregated), and nothing else is missing or extra.

A second run changes the graph under the scripted peer (a schedule file): a chunk it sends
to a peer that no longer takes chunks from it is counted (``not_round_neighbor``), and one
sent as the next round starts, to a peer that will take it, is kept and used.

Before the fix a peer replaced its data socket after ``assign`` (and with CURVE connected
only at round 1): what reached the old socket vanished without a count.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.harness import Cluster, Results, ScriptedPeer, read_results, write_config
from tests.support.runs import small_config

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

ROUNDS = 2
CHUNKS = 4
REAL = (1, 2)  # the scripted peer registers first: node 0
PRE_READY_S = 1.0  # how long it keeps sending after assign before answering ready
EVERY_S = 0.01  # one message to each real peer this often, from assign to round_start(1)
MAX_SENDS = 400  # per real peer, so a slow machine cannot fill its queues


def config(local_steps: int, curve: bool) -> str:
    return small_config(
        "no-silent-loss",
        seed=3,
        nodes=3,
        rounds=ROUNDS,
        topology={"kind": "complete"},
        data={"synthetic_size": 300},
        train={"local_steps": local_steps},
        chunks={"count": CHUNKS, "per_neighbor": 2},
        eval={"every": ROUNDS},
        runtime={
            "register_timeout": 120.0,
            "round_timeout": 60.0,
            "chunk_timeout": 30.0,
            "curve": "on" if curve else "off",
        },
    )


@dataclass
class Outcome:
    sent: Counter[int]  # real peer -> chunk messages the scripted peer sent it (both rounds)
    codes: tuple[int | None, int | None]
    results: Results
    logs: str


def run_window(tmp: Path, *, local_steps: int, curve: bool) -> Outcome:
    cfg = write_config(tmp, config(local_steps, curve))
    sent: Counter[int] = Counter()
    with Cluster(cfg, tmp / "run", peers=len(REAL)) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        with ScriptedPeer(cluster.address, coordinator_key=cluster.coordinator_key) as sp:
            sp.register()
            cluster.start_peers()  # after our register: we are node 0
            sp.accept_assignment(timeout=150)
            assert sp.node == 0 and sp.neighbor_ids == list(REAL), cluster.logs()

            def burst(round_: int) -> None:
                for j in REAL:
                    sp.send_chunks(round_, j, {c: np.full(sp.chunk_sizes[c], 0.5, "<f4") for c in (0, 1)})
                    sent[j] += 1

            start = time.monotonic()
            while time.monotonic() - start < PRE_READY_S and sent[REAL[0]] < MAX_SENDS // 2:
                burst(1)  # the real peers are being assigned and set up meanwhile
                sp.pump(EVERY_S)
            sp.ready()
            deadline = time.monotonic() + 60
            while not any(msg.kind == "round_start" for msg in sp._pending):
                assert time.monotonic() < deadline, cluster.logs()
                if sent[REAL[0]] < MAX_SENDS:
                    burst(1)  # the real peers answer ready and (training off) start round 1 at once
                sp.pump(EVERY_S)
            sp.expect("round_start", round_=1)
            burst(1)  # the instant round 1 starts
            for t in range(1, ROUNDS + 1):
                if t > 1:
                    sp.expect("round_start", round_=t, timeout=60)
                    burst(t)
                sp.recv_chunks(t, timeout=60)
                sp.round_done(t, metrics={"train_loss": 1.0, "chunks_received": 4, "senders": 2, "digest": "0" * 16})
            sp.expect("stop", timeout=60)
        codes = cluster.wait(90)
        return Outcome(sent, codes, read_results(tmp / "run"), cluster.logs())


#: each window once: with training (round 1 starts seconds after ``ready``) over CURVE,
#: whose sockets were the ones that connected late, and without training (round 1 starts
#: the instant every peer is ready) over plain sockets
VARIANTS: dict[str, dict[str, Any]] = {
    "training_curve": dict(local_steps=2, curve=True),
    "no_training": dict(local_steps=0, curve=False),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    with ThreadPoolExecutor(len(VARIANTS)) as pool:
        futures = {name: pool.submit(run_window, tmp_path_factory.mktemp(name), **kw) for name, kw in VARIANTS.items()}
        return {name: f.result(timeout=500) for name, f in futures.items()}


def _accounted(outcome: Outcome, node: int) -> tuple[int, dict[str, int]]:
    """(chunk messages ``node`` delivered over the run, its drops by reason at the end)."""
    delivered = sum(outcome.results.peer(t, node)["traffic"]["recv_msgs"] for t in range(1, ROUNDS + 1))
    return delivered, outcome.results.peer(ROUNDS, node)["traffic"]["drops_total"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_early_chunk_is_delivered_or_counted(outcomes: dict[str, Outcome], variant: str) -> None:
    outcome = outcomes[variant]
    assert outcome.codes == (0, 0), outcome.logs
    for j in REAL:
        delivered, drops = _accounted(outcome, j)
        # delivered: one message per round from each of its two neighbors (us and the other real peer)
        assert delivered == 2 * ROUNDS, (j, delivered, drops, outcome.logs)
        # every other message we sent it is a counted drop, and nothing else is
        assert set(drops) <= {"duplicate", "stale_round"}, (j, drops)
        assert sum(drops.values()) == outcome.sent[j] - ROUNDS, (j, outcome.sent[j], drops, outcome.logs)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_first_early_chunk_counts_in_round_one(outcomes: dict[str, Outcome], variant: str) -> None:
    outcome = outcomes[variant]
    for j in REAL:
        metrics = outcome.results.peer(1, j)["metrics"]
        assert metrics["senders"] == 2 and metrics["chunks_received"] == 2 * 2, (j, metrics)


# ----------------------------------------------------------------------------- graph changes

#: round 1 complete; round 2 only 1-2 (the scripted node 0 is nobody's neighbor); round 3
#: complete again (docs/PROTOCOL.md, *Graph changes and churn*)
SCHEDULE = "round 1\n0 1\n0 2\n1 2\nround 2\n1 2\nround 3\n0 1\n0 2\n1 2\n"


def test_a_chunk_to_a_former_neighbor_is_counted_and_one_to_the_next_rounds_is_kept(tmp_path: Path) -> None:
    """Node 0 (scripted) keeps sending in round 2, when the graph has cut it off: each real
    peer counts that chunk as ``not_round_neighbor``. Node 0 sends its round-3 chunks the
    instant ``round_start(3)`` reaches it, when a real peer may not have read its own yet:
    ``round_start(2)`` told them round 3's senders, so they keep the chunk and use it. Every
    chunk node 0 sent is delivered or counted; nothing else is dropped."""
    schedule = tmp_path / "graphs.txt"
    schedule.write_text(SCHEDULE)
    text = small_config(
        "graph-change",
        seed=3,
        nodes=3,
        rounds=3,
        topology={"kind": "complete", "dynamic": "schedule", "schedule": str(schedule)},
        data={"synthetic_size": 300},
        train={"local_steps": 0},
        chunks={"count": CHUNKS, "per_neighbor": 2},
        runtime={"round_timeout": 60.0, "chunk_timeout": 30.0, "curve": "off"},
    )
    with Cluster(write_config(tmp_path, text), tmp_path / "run", peers=len(REAL)) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        with ScriptedPeer(cluster.address) as sp:
            sp.register()
            cluster.start_peers()
            msg = sp.accept_assignment(timeout=150)
            payload = {c: np.full(sp.chunk_sizes[c], 0.5, "<f4") for c in (0, 1)}
            assert sp.node == 0 and msg["receive_from"] == list(REAL), cluster.logs()
            sp.ready()
            graphs = []
            for t in (1, 2, 3):
                start = sp.expect("round_start", round_=t, timeout=60)
                graphs.append(start["graph"])
                for j in REAL:
                    sp.send_chunks(t, j, payload)  # in round 2 to peers that no longer take them
                if t != 2:
                    sp.recv_chunks(t, timeout=60)
                sp.round_done(t, metrics={"train_loss": 1.0, "chunks_received": 4, "senders": 2, "digest": "0" * 16})
            sp.expect("stop", timeout=60)
        codes = cluster.wait(90)
        results = read_results(tmp_path / "run")
    assert codes == (0, 0), cluster.logs()
    assert graphs == [
        {"send_to": [1, 2], "receive_from": [1, 2], "next_receive_from": []},
        {"send_to": [], "receive_from": [], "next_receive_from": [1, 2]},
        {"send_to": [1, 2], "receive_from": [1, 2], "next_receive_from": []},
    ]
    for j in REAL:
        senders = [results.peer(t, j)["metrics"]["senders"] for t in (1, 2, 3)]
        delivered = sum(results.peer(t, j)["traffic"]["recv_msgs"] for t in (1, 2, 3))
        assert senders == [2, 1, 2], (j, senders, cluster.logs())
        # from node 0: rounds 1 and 3; from the other real peer: rounds 1, 2 and 3
        assert delivered == 5, (j, delivered)
        assert results.peer(3, j)["traffic"]["drops_total"] == {"not_round_neighbor": 1}
