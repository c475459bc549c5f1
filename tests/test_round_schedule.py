"""The round schedule (peer/rounds.py), the inbox (peer/inbox.py) and the traffic counters
(peer/traffic.py), in process: what a node sends and awaits, in which order, what it
accepts, and what both drivers report. Expected values follow docs/PROTOCOL.md (*Round
order with a rushing attacker*, *round_done*) for a ring of 4 with 2 Byzantine peers in
oracle mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coordinator.plan import build_plan
from launch.run.reference import MemoryNetwork
from peer import data as datasets
from peer.core import NodeCore
from peer.data import test_subset
from peer.inbox import Inbox
from peer.rounds import Await, Send, round_steps
from peer.traffic import Traffic
from protocol import config as config_mod
from protocol import messages as m
from protocol.codec import ProtocolError
from tests.support.runs import small_config

CONFIG = small_config(
    "run",
    seed=3,
    chunks={"count": 4, "per_neighbor": 1},
    byzantine={"count": 2, "attack": "alie", "knowledge": "oracle"},
    eval={"every": 2},
)

TRAFFIC_KEYS = {
    "sent_msgs",
    "sent_bytes",
    "sent_payload_bytes",
    "recv_msgs",
    "recv_bytes",
    "dropped",
    "drops_total",
    "late_from",
}


@pytest.fixture(scope="module")
def cores_factory(tmp_path_factory: pytest.TempPathFactory):
    path = Path(tmp_path_factory.mktemp("cfg")) / "ring.toml"
    path.write_text(CONFIG)
    cfg = config_mod.load(path)
    plan = build_plan(cfg)
    train = datasets.load("synthetic", None, train=True, synthetic_size=200, seed=cfg.seed)
    test = test_subset(datasets.load("synthetic", None, train=False, synthetic_size=200, seed=cfg.seed), 0)

    def make() -> list[NodeCore]:
        return [NodeCore(plan.assignment(i), train_data=train, test_set=test) for i in range(cfg.nodes)]

    return make


def _roles(cores: list[NodeCore]) -> tuple[list[NodeCore], list[NodeCore]]:
    honest = [c for c in cores if not c.assignment.role.byzantine]
    byzantine = [c for c in cores if c.assignment.role.byzantine]
    return honest, byzantine


def test_an_honest_node_sends_its_oracle_model_and_chunks_before_it_waits(cores_factory) -> None:
    cores = cores_factory()
    honest, byzantine = _roles(cores)
    node = honest[0]
    steps = round_steps(node, Inbox(node), 1)

    seen = []
    step = next(steps)
    while isinstance(step, Send):
        seen.append((step.message.kind, step.to))
        step = next(steps)

    # one oracle model to each Byzantine peer, then one chunk message per ring neighbor
    assert seen == [("oracle", b.node) for b in byzantine] + [("chunk", j) for j in sorted(node.neighbors)]
    assert step == Await(m.CHUNK, frozenset(node.neighbors))


def test_a_rushing_node_waits_for_honest_chunks_before_it_sends_anything(cores_factory) -> None:
    cores = cores_factory()
    _, byzantine = _roles(cores)
    node = byzantine[0]
    honest_neighbors = frozenset(j for j in node.neighbors if j != byzantine[1].node)

    first = next(round_steps(node, Inbox(node), 1))

    assert first == Await(m.CHUNK, honest_neighbors)


def test_a_rushing_node_shares_its_view_and_sends_chunks_only_after_every_wait(cores_factory) -> None:
    cores = cores_factory()
    honest, byzantine = _roles(cores)
    log: list[tuple[int, str, int]] = []  # (sender, kind, receiver) in delivery order

    class Logged(MemoryNetwork):
        def _deliver(self, src: int, step: Send) -> None:
            log.append((src, step.message.kind, step.to))
            super()._deliver(src, step)

    Logged(cores).run_round(1)

    for b in byzantine:
        other = next(x.node for x in byzantine if x is not b)
        collude = log.index((b.node, "collude", other))
        # before it shares: every honest neighbor's chunk and every honest model reached it
        for j in b.neighbors:
            if j != other:
                assert log.index((j, "chunk", b.node)) < collude
        for h in honest:
            assert log.index((h.node, "oracle", b.node)) < collude
        # its own chunks go out only after its colluder's view came in
        shared = log.index((other, "collude", b.node))
        assert all(log.index((b.node, "chunk", j)) > shared for j in b.neighbors)


def test_both_drivers_count_every_message_of_the_round_in_one_format(cores_factory) -> None:
    network = MemoryNetwork(cores_factory())
    network.run_round(1)

    reports = {node: t.take() for node, t in network.traffic.items()}

    honest, byzantine = _roles(list(network.cores.values()))
    for r in reports.values():
        assert set(r) == TRAFFIC_KEYS
        assert r["dropped"] == 0 and r["drops_total"] == {}
    # honest: 2 oracle models + 2 chunk messages out, 2 chunk messages in;
    # Byzantine: 1 collusion view + 2 chunk messages out, 2 chunks + 2 models + 1 view in
    assert [reports[c.node]["sent_msgs"] for c in honest] == [4, 4]
    assert [reports[c.node]["recv_msgs"] for c in honest] == [2, 2]
    assert [reports[c.node]["sent_msgs"] for c in byzantine] == [3, 3]
    assert [reports[c.node]["recv_msgs"] for c in byzantine] == [5, 5]
    assert sum(r["sent_bytes"] for r in reports.values()) == sum(r["recv_bytes"] for r in reports.values())


def test_the_counters_start_again_after_each_report(cores_factory) -> None:
    network = MemoryNetwork(cores_factory())
    network.run_round(1)
    network.traffic[0].take()

    again = network.traffic[0].take()

    assert again["sent_msgs"] == again["recv_msgs"] == again["sent_bytes"] == 0


def _chunk(core: NodeCore, src: int, round_: int) -> m.Message:
    lo, hi = core.bounds[0]
    return m.chunk(src=src, round_=round_, chunks={0: np.zeros(hi - lo, dtype=np.float32)})


@pytest.mark.parametrize(
    ("started", "aggregated", "round_", "reason"),
    [(3, 3, 2, "stale_round"), (3, 3, 3, "late"), (3, 2, 5, "future_round")],
)
def test_the_inbox_refuses_rounds_outside_its_window(
    cores_factory, started: int, aggregated: int, round_: int, reason: str
) -> None:
    core = cores_factory()[0]
    inbox = Inbox(core, started=aggregated)
    inbox.start(started)

    with pytest.raises(ProtocolError) as err:
        inbox.accept(_chunk(core, core.neighbors[0], round_))

    assert err.value.reason == reason


def test_the_inbox_keeps_a_next_round_message_and_refuses_a_second_one(cores_factory) -> None:
    core = cores_factory()[0]
    inbox = Inbox(core)
    inbox.start(1)
    sender = core.neighbors[0]
    inbox.accept(_chunk(core, sender, 2))  # round 2 arrives while round 1 runs

    with pytest.raises(ProtocolError) as err:
        inbox.accept(_chunk(core, sender, 2))

    assert err.value.reason == "duplicate"
    assert set(inbox.arrived(m.CHUNK, 2)) == {sender}
    assert inbox.missing(m.CHUNK, 2, frozenset(core.neighbors)) == set(core.neighbors) - {sender}


def test_closing_a_round_forgets_it_and_makes_it_stale(cores_factory) -> None:
    core = cores_factory()[0]
    inbox = Inbox(core)
    inbox.start(1)
    inbox.accept(_chunk(core, core.neighbors[0], 1))

    inbox.close(1)

    assert inbox.arrived(m.CHUNK, 1) == {}
    with pytest.raises(ProtocolError) as err:
        inbox.accept(_chunk(core, core.neighbors[0], 1))  # it was aggregated: a copy
    assert err.value.reason == "duplicate"
    with pytest.raises(ProtocolError) as err:
        inbox.accept(_chunk(core, core.neighbors[1], 1))  # it missed the round
    assert err.value.reason == "late"


def test_a_chunk_after_the_deadline_is_late_and_counted_per_sender(cores_factory) -> None:
    core = cores_factory()[0]
    traffic = Traffic(node=core.node)
    inbox = Inbox(core, traffic=traffic)
    inbox.start(1)
    inbox.close(1)  # the deadline passed: round 1 aggregated without the neighbors' chunks
    inbox.start(2)
    first, second = core.neighbors[:2]

    reasons = []
    for sender in (first, second, first):
        with pytest.raises(ProtocolError) as err:
            inbox.accept(_chunk(core, sender, 1))
        reasons.append(err.value.reason)

    assert reasons == ["late", "late", "duplicate"]
    assert traffic.take()["late_from"] == {str(first): 1, str(second): 1}
    assert traffic.take()["late_from"] == {}
