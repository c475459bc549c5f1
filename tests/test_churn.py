"""Churn (coordinator/churn.py, ``[churn]``), in process: who is away in which round,
how the round's graph and a peer's ``round_start`` follow, the one-line errors, and a
reference run whose records say who took part. The cluster runs churn bit-identically to
the reference in tests/test_reference_equivalence.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.churn import ChurnError, Presence
from coordinator.dynamics import GraphSchedule
from coordinator.plan import build_plan
from coordinator.topology import build_topology
from launch.run.reference import MemoryNetwork, run_reference
from peer.core import NodeCore, model_digest
from protocol import config as config_mod
from protocol import messages as m
from protocol.codec import ProtocolError
from protocol.config import ConfigError, RunConfig
from tests.support.runs import small_config, synthetic_sets


def _cfg(nodes: int = 10, rounds: int = 30, **churn: Any) -> RunConfig:
    return config_mod.from_dict({"nodes": nodes, "rounds": rounds, "seed": 2, "churn": churn})


def test_rate_churn_sends_a_fresh_tenth_away_in_every_window_but_the_first() -> None:
    presence = Presence(_cfg(rate=0.1, every=10))

    windows = [presence.away(t) for t in (1, 10, 11, 20, 21, 30)]

    assert windows[0] == windows[1] == frozenset()  # rounds 1..10: everyone
    assert len(windows[2]) == 1 and windows[2] == windows[3]  # 10 % of 10 peers, for the whole window
    assert len(windows[4]) == 1 and windows[4] == windows[5]
    assert presence.away(11) == Presence(_cfg(rate=0.1, every=10)).away(11)  # seeded


def test_explicit_absences_add_to_the_rate_and_a_peer_comes_back_in_its_next_round() -> None:
    presence = Presence(_cfg(rounds=6, away=[[3, 2, 4]]))

    assert [3 in presence.away(t) for t in range(1, 7)] == [False, True, True, True, False, False]
    assert presence.next_round(3, 1) == 5 and presence.next_round(3, 5) == 6 and presence.next_round(3, 6) is None
    assert presence.present(2) == frozenset(range(10)) - {3}


def test_the_round_graph_leaves_the_away_out_and_tells_a_leaver_its_return() -> None:
    cfg = _cfg(nodes=8, rounds=6, away=[[0, 2, 3]])
    sched = GraphSchedule(cfg, build_topology("regular", 8, seed=2, degree=3), [])

    round2 = sched.round(2)
    before = sched.view(0, 1)

    assert sched.dynamic and round2.send_to[0] == () and round2.receive_from[0] == ()
    assert all(0 not in round2.receive_from[j] for j in range(8))
    assert (before.next_round, before.next_receive_from) == (4, sched.round(4).receive_from[0])
    assert sched.view(1, 2).present == tuple(range(1, 8))


@pytest.mark.parametrize(
    ("churn", "message"),
    [
        ({"away": [[12, 1, 2]]}, "churn.away entry [12, 1, 2]: node 12 does not exist (nodes 0..9)"),
        ({"away": [[1, 4, 2]]}, "rounds must satisfy 1 <= first <= last <= rounds=30"),
        ({"away": [[1, 2]]}, "expected [node, first round away, last round away]"),
        ({"rate": 1.0}, "churn.rate=1.0: must be in [0, 1)"),
        ({"join": [[10, 3]]}, "churn.join entry [10, 3]: node 10 does not exist (nodes 0..9)"),
        ({"join": [[1, 31]]}, "churn.join entry [1, 31]: round 31 is outside 1..rounds=30"),
        ({"crash": [[1, 0]]}, "churn.crash entry [1, 0]: round 0 is outside 1..rounds=30"),
        ({"join": [[1, 5]], "crash": [[1, 5]]}, "node 1 joins in round 5, so it can crash only after it"),
        ({"join_model": "best"}, "churn.join_model='best': valid values are neighbor, average"),
    ],
)
def test_a_bad_churn_entry_is_one_config_error(churn: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(**churn)

    assert message in str(err.value)


def test_a_churn_schedule_that_empties_a_round_is_refused() -> None:
    away = [[j, 3, 4] for j in range(9)]

    with pytest.raises(ChurnError) as err:
        Presence(_cfg(away=away))

    assert str(err.value).startswith("churn leaves 1 peer(s) in round 3: a round needs at least 2")


def test_joins_and_crashes_that_empty_a_round_are_refused() -> None:
    # 3 peers: node 2 is new from round 4 and node 0 crashes in round 2, so rounds 2 and 3 hold node 1 alone
    with pytest.raises(ChurnError) as err:
        Presence(_cfg(nodes=3, rounds=5, join=[[2, 4]], crash=[[0, 2]]))

    assert str(err.value).startswith("churn leaves 1 peer(s) in round 2: a round needs at least 2")
    assert "churn.join or churn.crash" in str(err.value)


def test_a_reference_run_records_who_was_away_and_a_returning_peer_goes_on_from_its_own_state(
    tmp_path: Path,
) -> None:
    text = small_config("churn", seed=1, nodes=4, rounds=4, churn={"away": [[1, 2, 3]]}, eval={"every": 1})
    path = tmp_path / "churn.toml"
    path.write_text(text)

    run_reference(config_mod.load(path), tmp_path / "run")

    records = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert [r["away"] for r in records] == [[], [1], [1], []]
    status = [r["peers"]["1"]["status"] for r in records]
    assert status == ["ok", "away", "away", "ok"]
    assert "metrics" not in records[1]["peers"]["1"] and records[3]["peers"]["1"]["metrics"]["senders"] == 2
    assert all(e["status"] == "ok" for r in records for n, e in r["peers"].items() if n != "1")


def test_an_away_node_keeps_its_model_and_counters_until_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "churn.toml"
    path.write_text(small_config("churn", seed=1, nodes=4, rounds=4, churn={"away": [[1, 2, 3]]}))
    cfg = config_mod.load(path)
    plan = build_plan(cfg)
    train, test = synthetic_sets(cfg)
    net = MemoryNetwork([NodeCore(plan.assignment(i), train_data=train, test_set=test) for i in range(4)], plan.rounds)

    first = net.run_round(1)
    away = [net.run_round(t) for t in (2, 3)]
    kept = model_digest(net.cores[1].vector)
    back = net.run_round(4)

    assert all(1 not in r for r in away)  # no result, no round while away
    assert kept == first[1].metrics["digest"]  # the model it left with is the one it returns with
    assert back[1].metrics["digest"] != kept and net.inboxes[1].aggregated == 4
    assert back[1].metrics["senders"] == len(plan.rounds.round(4).receive_from[1])


def _network(tmp_path: Path, nodes: int = 5, **churn: Any) -> tuple[MemoryNetwork, Any]:
    path = tmp_path / "join.toml"
    topology = {"kind": "regular", "degree": 2}
    path.write_text(small_config("join", seed=3, nodes=nodes, rounds=4, topology=topology, churn=churn))
    plan = build_plan(config_mod.load(path))
    train, test = synthetic_sets(plan.config)
    cores = [NodeCore(plan.assignment(i), train_data=train, test_set=test) for i in range(nodes)]
    return MemoryNetwork(cores, plan.rounds), plan


@pytest.mark.parametrize("join_model", ["neighbor", "average"])
def test_a_new_peer_starts_from_its_senders_current_model_in_its_join_round(tmp_path: Path, join_model: str) -> None:
    net, plan = _network(tmp_path, join=[[2, 3]], join_model=join_model)
    senders = plan.rounds.round(3).receive_from[2]
    sources = plan.assignment(2).join_from

    before = [net.run_round(t) for t in (1, 2)]
    current = {j: net.cores[j].vector.copy() for j in senders}  # their models when round 3 starts
    third = net.run_round(3)

    assert all(2 not in r for r in before) and 2 in third  # not in the run before round 3
    assert plan.assignment(2).first_round == 3 and len(senders) == 2
    assert sources == ([min(senders)] if join_model == "neighbor" else list(senders))
    expected = np.stack([current[j] for j in sources]).mean(axis=0, dtype=np.float32)
    # the model it trained from in round 3 (vector_before) is its sources' model, not the initial one
    assert np.array_equal(net.cores[2].vector_before, expected)
    assert model_digest(expected) != model_digest(NodeCore(plan.assignment(2), **_sets(plan)).vector)


def _sets(plan: Any) -> dict[str, Any]:
    train, test = synthetic_sets(plan.config)
    return {"train_data": train, "test_set": test}


def test_a_new_peer_accepts_a_model_only_from_its_sources_in_its_join_round(tmp_path: Path) -> None:
    net, plan = _network(tmp_path, join=[[2, 3]])
    inbox, (source,) = net.inboxes[2], plan.assignment(2).join_from
    other = next(j for j in range(5) if j not in (2, source))
    vector = net.cores[source].vector

    refused = []
    for msg in (
        m.model(src=other, round_=3, vector=vector),  # not a source
        m.model(src=source, round_=2, vector=vector),  # not its join round
        m.model(src=source, round_=3, vector=vector[:-1]),  # not a whole model
    ):
        with pytest.raises(ProtocolError) as err:
            inbox.accept(msg)
        refused.append(err.value.reason)
    inbox.accept(m.model(src=source, round_=3, vector=vector))

    assert refused == ["not_round_neighbor", "not_round_neighbor", "bad_chunk_size"]
    assert list(inbox.arrived(m.MODEL, 3)) == [source]


def test_a_crashed_peer_leaves_every_graph_from_its_crash_round_and_is_failed_in_the_records(
    tmp_path: Path,
) -> None:
    sched = GraphSchedule(_cfg(nodes=6, rounds=4, crash=[[1, 3]]), build_topology("ring", 6, seed=2), [])
    presence = sched.presence

    assert [sorted(presence.gone(t)) for t in (2, 3, 4)] == [[], [1], [1]]
    assert presence.crashing(3) == {1} and presence.crashing(4) == frozenset() and presence.away(3) == frozenset()
    assert 1 in sched.round(2).receive_from[0] and all(1 not in sched.round(3).receive_from[j] for j in range(6))
    assert presence.next_round(1, 2) is None and sched.view(0, 3).present == (0, 2, 3, 4, 5)

    path = tmp_path / "crash.toml"
    path.write_text(small_config("crash", seed=1, nodes=4, rounds=4, churn={"crash": [[1, 3]]}))
    run_reference(config_mod.load(path), tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()]
    assert [r["peers"]["1"]["status"] for r in records] == ["ok", "ok", "failed", "failed"]
    assert [r["failed"] for r in records] == [[], [], [1], [1]] and [r["away"] for r in records] == [[]] * 4
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["failed_peers"] == [1]


def _leave_cfg(leave: list[list[int]], *, nodes: int = 6, rounds: int = 6, every: int = 2) -> RunConfig:
    return config_mod.from_dict(
        {
            "nodes": nodes,
            "rounds": rounds,
            "seed": 2,
            "runtime": {"checkpoint_every": every},
            "churn": {"leave": leave},
        }
    )


@pytest.mark.parametrize(
    ("leave", "every", "message"),
    [
        ([[7, 2, 4]], 1, "churn.leave entry [7, 2, 4]: node 7 does not exist (nodes 0..5); fix the node id"),
        ([[1, 4, 4]], 1, "churn.leave entry [1, 4, 4]: rounds must satisfy 2 <= leave < return <= rounds=6"),
        ([[1, 3]], 1, "churn.leave entry [1, 3]: expected [node, leave round, return round]"),
        ([[1, 2, 4]], 0, "node 1 has no checkpoint before round 2 to return from (runtime.checkpoint_every=0)"),
        ([[1, 3, 5]], 4, "node 1 has no checkpoint before round 3 to return from (runtime.checkpoint_every=4)"),
    ],
)
def test_a_bad_leave_entry_is_one_churn_error(leave: list[list[int]], every: int, message: str) -> None:
    with pytest.raises(ChurnError) as err:
        Presence(_leave_cfg(leave, every=every))

    assert message in str(err.value) and "\n" not in str(err.value)


def test_leaves_that_empty_a_round_are_refused() -> None:
    with pytest.raises(ChurnError) as err:
        Presence(_leave_cfg([[0, 2, 4], [1, 3, 5]], nodes=3, every=1))

    assert str(err.value).startswith("churn leaves 1 peer(s) in round 3: a round needs at least 2")


def test_a_returning_peer_is_away_between_its_rounds_and_returns_from_its_last_checkpoint_round() -> None:
    presence = Presence(_leave_cfg([[1, 4, 6]], every=2))

    assert [1 in presence.away(t) for t in range(1, 7)] == [False, False, False, True, True, False]
    assert presence.checkpoint_round(1) == 2  # round 3 ran after it: its work is lost on return
    assert presence.slots() == {1: 6} and presence.returning(6) == {1}


def test_the_reference_restores_a_returning_peer_to_its_checkpoint_round_not_its_leave_round(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rejoin.toml"
    runtime = {"checkpoint_every": 2}
    path.write_text(small_config("rejoin", seed=1, nodes=4, rounds=6, runtime=runtime, churn={"leave": [[1, 4, 6]]}))
    cfg = config_mod.load(path)
    plan = build_plan(cfg)
    train, test = synthetic_sets(cfg)
    net = MemoryNetwork([NodeCore(plan.assignment(i), train_data=train, test_set=test) for i in range(4)], plan.rounds)

    results = [net.run_round(t) for t in range(1, 7)]

    digests = [r[1].metrics["digest"] if 1 in r else None for r in results]
    assert digests[3:5] == [None, None] and digests[2] != digests[1]
    # round 6 trained from its state after round 2 (its checkpoint), not after round 3
    assert model_digest(net.cores[1].vector_before) == digests[1]


def test_a_pending_slot_is_postponed_and_its_next_round_graph_takes_it_in() -> None:
    cfg = _cfg(nodes=6, rounds=8, join=[[2, 3]])
    sched = GraphSchedule(cfg, build_topology("ring", 6, seed=2), [])

    sched.presence.postpone(2, 5)

    assert [2 in sched.presence.away(t) for t in (3, 4, 5)] == [True, True, False]
    assert sched.presence.slots() == {2: 5} and sched.presence.joining(5) == {2}
    assert sched.round(4).receive_from[2] == () and sched.round(5).receive_from[2] == (1, 3)
    assert sched.view(1, 5).welcome == (2,)


def test_a_byzantine_slot_with_links_from_the_assignment_is_refused_in_one_line(tmp_path: Path) -> None:
    from coordinator.joins import SlotError
    from coordinator.results import ResultsWriter
    from coordinator.server import Coordinator

    path = tmp_path / "slot.toml"
    byzantine = {"placement": "explicit", "nodes": [1, 3], "attack": "alie", "params": {"z": 1.0}}  # linked
    path.write_text(small_config("slot", seed=1, rounds=3, byzantine=byzantine, churn={"join": [[3, 2]]}))
    cfg = config_mod.load(path)

    results = ResultsWriter(tmp_path / "run", cfg, mode="multiprocess")

    with pytest.raises(SlotError) as err:
        Coordinator(build_plan(cfg), bind="tcp://127.0.0.1:*", results=results)

    assert str(err.value).startswith("churn: node 3 is Byzantine and joins or returns late")
