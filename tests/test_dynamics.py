"""Graphs that change between rounds (coordinator/dynamics.py, ``topology.dynamic``), in
process: each kind's graphs, their seeding by (seed, epoch), what a peer is told per round
(``round_start`` → ``graph``), what its inbox accepts, and the one-line errors of bad input.
The cluster runs them in tests/test_reference_equivalence.py and tests/test_no_silent_loss.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.dynamics import GraphSchedule
from coordinator.plan import build_plan
from coordinator.topology import TopologyError, build_topology
from launch.run.reference import MemoryNetwork
from peer.core import NodeCore
from peer.inbox import Inbox
from peer.rounds import enter_round
from protocol import config as config_mod
from protocol import graph as graph_mod
from protocol import messages as m
from protocol.codec import ProtocolError
from protocol.config import ConfigError, RunConfig
from tests.support.runs import small_config, synthetic_sets


def _cfg(nodes: int = 8, rounds: int = 6, **topology: Any) -> RunConfig:
    return config_mod.from_dict(
        {"nodes": nodes, "rounds": rounds, "seed": 4, "topology": {"kind": "regular", "degree": 3, **topology}}
    )


def _schedule(cfg: RunConfig, byzantine: list[int] | None = None) -> GraphSchedule:
    t = cfg.topology
    first = build_topology(t.kind, cfg.nodes, seed=cfg.seed, degree=t.degree)
    return GraphSchedule(cfg, first, byzantine or [])


def test_el_oracle_draws_a_fresh_s_regular_graph_every_round() -> None:
    sched = _schedule(_cfg(dynamic="el_oracle", s=3))

    graphs = [sched.round(t) for t in range(1, 5)]

    for g in graphs:  # each peer sends to and receives from exactly s = 3 others
        assert all(len(g.send_to[i]) == 3 and g.send_to[i] == g.receive_from[i] for i in range(8))
    assert len({g.edges for g in graphs}) == 4  # four rounds, four graphs
    assert [g.edges for g in graphs] == [_schedule(_cfg(dynamic="el_oracle", s=3)).round(t).edges for t in range(1, 5)]


def test_el_local_pushes_to_s_others_and_in_degrees_vary() -> None:
    sched = _schedule(_cfg(dynamic="el_local", s=2))

    g = sched.round(1)

    assert all(len(g.send_to[i]) == 2 and i not in g.send_to[i] for i in range(8))
    assert sorted((u, v) for v in range(8) for u in g.receive_from[v]) == list(g.edges)
    assert len({len(g.receive_from[i]) for t in range(1, 4) for i in range(8)}) > 1  # directed: in-degree varies
    assert sched.directed and [u for u, _ in sched.edges_json(1)].count(0) == 2


def test_resample_keeps_the_plans_graph_for_the_first_epoch_then_redraws_every_k_rounds() -> None:
    cfg = _cfg(dynamic="resample", every=3)
    sched = _schedule(cfg)
    first = build_topology("regular", 8, seed=cfg.seed, degree=3)

    epochs = [sched.round(t).edges for t in range(1, 7)]

    assert sorted(tuple(e) for e in sched.edges_json(1)) == sorted(first.edges())
    assert epochs[0] == epochs[1] == epochs[2] != epochs[3] == epochs[4] == epochs[5]
    assert all(len(sched.round(4).send_to[i]) == 3 for i in range(8))  # the same kind: 3-regular


def test_a_peer_is_told_this_rounds_graph_the_next_rounds_senders_and_its_targets_neighborhoods() -> None:
    sched = _schedule(_cfg(rounds=3, dynamic="el_local", s=2), byzantine=[5])

    view, last = sched.view(5, 2), sched.view(5, 3)

    assert view.next_receive_from == sched.round(3).receive_from[5] and last.next_receive_from == ()
    for j in view.send_to:  # n_j = j's in-degree in round 2, f_j = the Byzantine among its senders
        senders = sched.round(2).receive_from[j]
        assert view.neighborhoods[j] == (len(senders), int(5 in senders))
    back = graph_mod.from_fields(view.to_fields(), node=5, num_nodes=8)
    assert back == view
    assert sched.view(0, 2).neighborhoods == {}  # honest peers get none


def test_a_schedule_file_gives_each_block_to_its_rounds(tmp_path: Path) -> None:
    path = tmp_path / "graphs.txt"
    path.write_text("round 1\n0 1\n1 2\n2 3\n3 0\nround 3  # a star\n0 1\n0 2\n0 3\n")
    sched = _schedule(_cfg(nodes=4, dynamic="schedule", schedule=str(path)))

    assert sched.edges_json(1) == sched.edges_json(2) == [[0, 1], [0, 3], [1, 2], [2, 3]]
    assert sched.edges_json(3) == sched.edges_json(6) == [[0, 1], [0, 2], [0, 3]]
    assert sched.round(3).receive_from[1] == (0,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("round 1\n0 1\n1 7\n", "graphs.txt:3: node id 7 is outside 0..3 (nodes=4)"),
        ("round 2\n0 1\n", "graphs.txt:1: round 2 must be 1 (the first block)"),
        ("round 1\n0 1\nround 1\n1 2\n", "graphs.txt:3: round 1 must be above round 1"),
        ("0 1\n", "graphs.txt:1: an edge before the first 'round 1' line"),
    ],
)
def test_a_bad_schedule_file_is_one_line_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "graphs.txt"
    path.write_text(text)

    with pytest.raises(TopologyError) as err:
        _schedule(_cfg(nodes=4, dynamic="schedule", schedule=str(path)))

    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("topology", "message"),
    [
        ({"dynamic": "el_oracle", "s": 8}, "topology.s=8: a peer sends to s others, so 1 <= s < nodes=8"),
        ({"dynamic": "el_local", "s": 0}, "topology.s=0"),
        ({"dynamic": "sometimes"}, "topology.dynamic='sometimes': choose one of static, resample"),
        ({"dynamic": "schedule"}, "topology.dynamic=schedule needs a file"),
        ({"dynamic": "resample", "every": 0}, "topology.every=0: must be >= 1"),
    ],
)
def test_bad_dynamic_settings_are_one_config_error(topology: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(**topology)

    assert message in str(err.value)


def test_el_oracle_with_odd_nodes_times_s_is_refused_at_plan_time() -> None:
    with pytest.raises(TopologyError, match="needs nodes \\* s even"):
        _schedule(_cfg(nodes=7, kind="ring", dynamic="el_oracle", s=3))


# ----------------------------------------------------------------------------- the node's side

CONFIG = small_config(
    "dyn", seed=3, nodes=5, rounds=3, topology={"dynamic": "el_local", "s": 2}, chunks={"count": 4, "per_neighbor": 1}
)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[MemoryNetwork, GraphSchedule]:
    path = Path(tmp_path_factory.mktemp("cfg")) / "dyn.toml"
    path.write_text(CONFIG)
    cfg = config_mod.load(path)
    plan = build_plan(cfg)
    train, test = synthetic_sets(cfg)
    cores = [NodeCore(plan.assignment(i), train_data=train, test_set=test) for i in range(cfg.nodes)]
    return MemoryNetwork(cores, plan.rounds), plan.rounds


def _chunk(core: NodeCore, src: int, round_: int) -> m.Message:
    lo, hi = core.bounds[0]
    return m.chunk(src=src, round_=round_, chunks={0: np.zeros(hi - lo, dtype=np.float32)})


def test_a_chunk_from_a_peer_that_does_not_send_to_this_one_in_its_round_is_not_round_neighbor(network) -> None:
    net, sched = network
    node = 0
    core = net.cores[node]
    inbox = Inbox(core)
    enter_round(core, inbox, 1, sched.view(node, 1))
    now, following = set(sched.round(1).receive_from[node]), set(sched.round(2).receive_from[node])
    stranger = min(set(range(1, 5)) - following)
    sender = min(following)

    inbox.accept(_chunk(core, sender, 2))  # an early round-2 chunk from a round-2 sender
    with pytest.raises(ProtocolError) as err:
        inbox.accept(_chunk(core, stranger, 2))

    assert err.value.reason == "not_round_neighbor"
    assert set(inbox.arrived(m.CHUNK, 2)) == {sender}
    assert core.receive_from == sorted(now) and core.neighbors == list(sched.round(1).send_to[node])


def test_a_chunk_after_the_deadline_is_late_only_from_a_sender_of_its_round(network) -> None:
    net, sched = network
    everyone = set(net.cores)
    # round 2 (round 1 is the plan's graph): a node that some peer does not send to
    node = min(n for n in everyone if everyone - {n} - set(sched.round(2).receive_from[n]))
    core = net.cores[node]
    inbox = Inbox(core)
    for t in (1, 2):
        enter_round(core, inbox, t, sched.view(node, t))
    senders = set(sched.round(2).receive_from[node])
    stranger = min(everyone - {node} - senders)
    inbox.close(2)  # round 2 aggregated with none of its chunks in

    reasons = []
    for src in (min(senders), stranger):
        with pytest.raises(ProtocolError) as err:
            inbox.accept(_chunk(core, src, 2))
        reasons.append(err.value.reason)

    assert reasons == ["late", "not_round_neighbor"]


def test_the_round_graph_of_the_assignment_and_of_each_round_drive_what_a_node_awaits(network) -> None:
    net, sched = network

    results = net.run_round(1)

    for node, r in results.items():  # every chunk a peer awaited came from the round's senders
        assert r.metrics["senders"] == len(sched.round(1).receive_from[node])
        assert net.cores[node].assignment.receive_from == list(sched.round(1).receive_from[node])
