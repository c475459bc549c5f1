"""A scripted peer (plain pyzmq + msgpack, see tests/support/harness.py) joins a real cluster:
it registers, receives its assignment, exchanges chunks with two real peers and reports
rounds; every test below checks one part of that single run against docs/PROTOCOL.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.support.harness import Cluster, Message, Results, ScriptedPeer, read_results, write_config
from tests.support.runs import small_config

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

ROUNDS = 2
CHUNKS = 4
PER_NEIGHBOR = 2
SAMPLES = 300
LOGREG_PARAMS = 784 * 10 + 10

CONFIG = small_config(
    "harness",
    seed=5,
    nodes=3,
    rounds=ROUNDS,
    topology={"kind": "complete"},
    data={"synthetic_size": SAMPLES},
    train={"local_steps": 2},
    chunks={"count": CHUNKS, "per_neighbor": PER_NEIGHBOR},
    runtime={"register_timeout": 120.0, "round_timeout": 20.0, "chunk_timeout": 10.0},
)

#: what the scripted peer reports in every round_done (recorded verbatim by the coordinator)
SCRIPTED_METRICS = {
    "train_loss": 0.5,
    "chunks_received": 4,
    "senders": 2,
    "digest": "0123456789abcdef",
    "test_accuracy": 0.123,
    "test_loss": 2.25,
}
SCRIPTED_TRAFFIC = {
    "sent_msgs": 2,
    "sent_bytes": 1,
    "recv_msgs": 2,
    "recv_bytes": 2,
    "dropped": 0,
    "drops_total": {},
}


def payload(round_: int, index: int, size: int) -> np.ndarray:
    """Deterministic chunk content the scripted peer sends (a constant vector)."""
    return np.full(size, 0.001 * (10 * round_ + index), dtype="<f4")


@dataclass
class Run:
    node: int
    assign: Message
    round_starts: list[Message]
    received: dict[int, dict[int, Message]]  # round -> sender -> chunk message
    sent: dict[int, dict[int, list[int]]]  # round -> neighbor -> chunk indices
    stop: Message
    codes: tuple[int | None, int | None]
    results: Results
    logs: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("harness")
    cfg = write_config(tmp, CONFIG)
    with Cluster(cfg, tmp / "run", peers=2) as cluster:
        cluster.start()
        cluster.wait_listening()
        with ScriptedPeer(cluster.address) as sp:
            sp.register(host="scripted-host")
            assign = sp.accept_assignment(timeout=150)
            sp.ready()
            starts: list[Message] = []
            received: dict[int, dict[int, Message]] = {}
            sent: dict[int, dict[int, list[int]]] = {}
            for t in range(1, ROUNDS + 1):
                starts.append(sp.expect("round_start", timeout=20))
                sent[t] = {}
                for pos, j in enumerate(sp.neighbor_ids):
                    indices = [(t + pos * PER_NEIGHBOR + k) % CHUNKS for k in range(PER_NEIGHBOR)]
                    sp.send_chunks(t, j, {c: payload(t, c, sp.chunk_sizes[c]) for c in indices})
                    sent[t][j] = sorted(indices)
                received[t] = sp.recv_chunks(t, timeout=15)
                sp.round_done(t, metrics=SCRIPTED_METRICS, traffic=SCRIPTED_TRAFFIC)
            stop = sp.expect("stop", timeout=20)
        codes = cluster.wait(90)
        logs = cluster.logs()
    return Run(assign["node"], assign, starts, received, sent, stop, codes, read_results(tmp / "run"), logs)


# ----------------------------------------------------------------------------- assign


def test_assign_header(run: Run) -> None:
    h = run.assign.header
    assert h["v"] == 1 and h["kind"] == "assign" and h["src"] == -1 and h["round"] == 0
    assert 0 <= h["node"] <= 2
    assert h["num_nodes"] == 3
    assert h["role"] == {"byzantine": False, "attack": "", "params": {}}
    assert h["config"]["nodes"] == 3 and h["config"]["rounds"] == ROUNDS


def test_assign_neighbors(run: Run) -> None:
    neighbors = run.assign["neighbors"]
    ids = [n["id"] for n in neighbors]
    assert ids == sorted(set(range(3)) - {run.node})  # complete graph, sorted by id
    for n in neighbors:
        assert n["addr"].startswith("tcp://127.0.0.1:")
        assert int(n["addr"].rsplit(":", 1)[1]) > 0


def test_assign_chunk_sizes(run: Run) -> None:
    sizes = run.assign["chunk_sizes"]
    assert len(sizes) == CHUNKS
    assert all(isinstance(s, int) and s > 0 for s in sizes)
    assert sum(sizes) == LOGREG_PARAMS
    assert max(sizes) - min(sizes) <= 1


def test_assign_shard_frame(run: Run) -> None:
    assert run.assign["frames"] == [{"dtype": "<i8", "shape": [run.assign.arrays[0].size]}]
    (shard,) = run.assign.arrays
    assert shard.dtype == np.dtype("<i8") and shard.ndim == 1
    assert SAMPLES // 3 - 10 <= shard.size <= SAMPLES // 3 + 10
    assert np.all(np.diff(shard) > 0)  # ascending, no repeats
    assert shard.min() >= 0 and shard.max() < SAMPLES


def test_assign_model_layout_and_initial_digest(run: Run) -> None:
    model = run.assign["model"]
    # logreg = Flatten, Linear(784, 10): weight then bias, in flattening order
    assert model["layout"] == [{"name": "1.weight", "shape": [10, 784]}, {"name": "1.bias", "shape": [10]}]
    assert sum(int(np.prod(p["shape"])) for p in model["layout"]) == LOGREG_PARAMS
    assert len(model["init_digest"]) == 16 and model["init_digest"] == model["init_digest"].lower()
    assert len(run.assign.arrays) == 1  # the initial vector only on request (want_init)


# ----------------------------------------------------------------------------- rounds


def test_round_starts_in_order(run: Run) -> None:
    assert [m.round for m in run.round_starts] == list(range(1, ROUNDS + 1))
    for m in run.round_starts:
        assert m["failed"] == []
        assert m["deadline"] == pytest.approx(20.0)
        assert m["frames"] == []


def test_chunks_from_real_neighbors(run: Run) -> None:
    sizes = run.assign["chunk_sizes"]
    for t in range(1, ROUNDS + 1):
        assert sorted(run.received[t]) == sorted(set(range(3)) - {run.node})
        for sender, msg in run.received[t].items():
            assert msg.routing_id == str(sender).encode()
            assert msg.src == sender and msg.round == t and msg.kind == "chunk"
            chunks = msg["chunks"]
            assert len(chunks) == PER_NEIGHBOR == len(set(chunks))
            assert all(0 <= c < CHUNKS for c in chunks)
            for c, spec, array in zip(chunks, msg["frames"], msg.arrays):
                assert spec == {"dtype": "<f4", "shape": [sizes[c]]}
                assert array.dtype == np.dtype("<f4") and array.shape == (sizes[c],)
                assert np.all(np.isfinite(array))


def test_stop_finished(run: Run) -> None:
    assert run.stop["reason"] == "finished"
    assert run.codes == (0, 0), run.logs


# ----------------------------------------------------------------------------- results


def test_rounds_jsonl_records_scripted_metrics(run: Run) -> None:
    assert [r["round"] for r in run.results.rounds] == list(range(1, ROUNDS + 1))
    for t in range(1, ROUNDS + 1):
        entry = run.results.peer(t, run.node)
        assert entry["status"] == "ok" and entry["role"] == "honest"
        assert entry["metrics"] == SCRIPTED_METRICS
        assert entry["traffic"] == SCRIPTED_TRAFFIC
        honest = run.results.rounds[t - 1]["honest"]["test_accuracy"]
        assert honest["n"] == 3 and honest["worst"] <= 0.123


def test_real_peers_count_scripted_chunks(run: Run) -> None:
    real = sorted(set(range(3)) - {run.node})
    for t in range(1, ROUNDS + 1):
        for i in real:
            entry = run.results.peer(t, i)
            assert entry["status"] == "ok", entry
            # PER_NEIGHBOR chunks from the scripted peer + PER_NEIGHBOR from the other real peer
            assert entry["metrics"]["chunks_received"] == 2 * PER_NEIGHBOR
            assert entry["metrics"]["senders"] == 2
            assert len(entry["metrics"]["digest"]) == 16
            traffic = entry["traffic"]
            assert traffic["sent_msgs"] == 2 and traffic["recv_msgs"] == 2
            assert traffic["dropped"] == 0 and traffic["drops_total"] == {}
            assert set(entry["timing"]) >= {"train_s", "aggregate_s", "exchange_s", "round_s", "eval_s"}
    assert run.results.rounds[-1]["coordinator_drops"] == {}


def test_summary_and_topology(run: Run) -> None:
    summary = run.results.summary
    assert summary is not None
    assert summary["rounds_completed"] == ROUNDS and summary["failed_peers"] == []
    topo = run.results.topology
    assert topo is not None
    nodes: list[dict[str, Any]] = topo["nodes"]
    assert [n["id"] for n in nodes] == [0, 1, 2]
    assert len({n["pid"] for n in nodes}) == 3
    me = nodes[run.node]
    assert me["host"] == "scripted-host"
    assert me["neighbors"] == [n["id"] for n in run.assign["neighbors"]]
    assert me["shard_size"] == run.assign.arrays[0].size
