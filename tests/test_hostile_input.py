"""Hostile input against live processes over real sockets (docs/PROTOCOL.md, *Validation
and drops*): nothing crashes, every bad message is dropped and counted under its reason,
and the run's models are exactly those of the same run without the hostile messages.

Cluster: 4 nodes on a ring 0-1-2-3-0; node 0 is the scripted peer (tests/support/harness.py), 1-3
are real ``byzemu peer`` processes. The scripted peer attacks its neighbor 1 (whose other
neighbor is 2; node 3 is not a neighbor of 1) and the coordinator during round 1.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

from tests.support.harness import Cluster, Results, ScriptedPeer, encode, header, read_results, write_config
from tests.support.runs import small_config

#: every test here starts real byzemu processes
pytestmark = pytest.mark.cluster

ROUNDS = 2
CHUNKS = 4
MAX_MESSAGE_BYTES = 65536
SCRIPTED, TARGET, TARGET_OTHER, STRANGER = 0, 1, 2, 3  # STRANGER: not a neighbor of TARGET
#: one frame of this size goes to TARGET and one to the coordinator: far over both limits
HUGE = 48 << 20

CONFIG = small_config(
    "hostile",
    seed=9,
    rounds=ROUNDS,
    data={"synthetic_size": 400},
    train={"local_steps": 2},
    chunks={"count": CHUNKS, "per_neighbor": 2},
    runtime={
        "register_timeout": 120.0,
        "round_timeout": 20.0,
        "chunk_timeout": 10.0,
        "max_message_bytes": MAX_MESSAGE_BYTES,
    },
)

#: what the target peer must have counted after the attack (each sent once, see attack_peer)
TARGET_DROPS = {
    "undecodable": 1,
    "bad_header": 1,
    "bad_version": 1,
    "bad_kind": 1,
    "unexpected_kind": 1,
    "bad_field": 1,
    "bad_frames": 1,
    "bad_dtype": 1,
    "oversized": 1,
    "connection_dropped": 1,
    "not_neighbor": 1,
    "sender_mismatch": 1,
    "bad_chunks": 1,
    "bad_chunk_index": 2,
    "bad_chunk_size": 1,
    "future_round": 1,
    "stale_round": 1,
    "duplicate": 1,
}

#: TARGET_DROPS sent over extra connections, logged as they arrive (``connection_dropped``
#: is counted when the peer next reads its socket's events)
VIA_EXTRA_SOCKETS = [
    "undecodable",
    "bad_header",
    "bad_version",
    "bad_kind",
    "unexpected_kind",
    "bad_field",
    "bad_frames",
    "bad_dtype",
    "oversized",
    "not_neighbor",
]

#: what the coordinator must have counted (see attack_coordinator)
COORDINATOR_DROPS = {
    "undecodable": 1,
    "bad_header": 1,
    "bad_version": 1,
    "bad_kind": 1,
    "unknown_sender": 1,
    "unexpected_kind": 2,
    "oversized": 1,
    "connection_dropped": 1,
    "sender_mismatch": 1,
    "stale_round": 1,
    "bad_report": 4,
}

#: COORDINATOR_DROPS sent over a fresh connection, logged as they arrive
COORDINATOR_VIA_FRESH = [
    "undecodable",
    "bad_header",
    "bad_version",
    "bad_kind",
    "unknown_sender",
    "unexpected_kind",
    "oversized",
]

#: the drop reasons PROTOCOL.md documents (its *Validation and drops* table)
DOCUMENTED_REASONS = set(
    re.findall(r"^\| `(\w+)` \|", (Path(__file__).parents[1] / "docs" / "PROTOCOL.md").read_text(), re.M)
)


def indices(round_: int, neighbor: int) -> list[int]:
    return sorted({(round_ + neighbor) % CHUNKS, (round_ + neighbor + 1) % CHUNKS})


def payload(sp: ScriptedPeer, round_: int, neighbor: int) -> dict[int, np.ndarray]:
    """The scripted peer's (deterministic, constant) chunks for ``neighbor`` in ``round_``."""
    return {c: np.full(sp.chunk_sizes[c], 0.01 * (c + 1) + 0.001 * round_, "<f4") for c in indices(round_, neighbor)}


# ----------------------------------------------------------------------------- attacks


def attack_peer(sp: ScriptedPeer) -> list[zmq.Socket]:
    """Every bad data-plane message of TARGET_DROPS, sent to TARGET while it is in round 1
    and waiting for our round-1 chunk (so round-window checks are deterministic). Returns
    the extra sockets, to be kept open: closing one mid-run is a ``connection_dropped``."""
    addr = sp.neighbors[TARGET]
    size0 = sp.chunk_sizes[0]
    good = np.zeros(size0, "<f4")

    # decoding/structure, from a connection with an auto-generated routing id
    anon = sp.dealer(addr)
    anon.send_multipart([b"\xc1\xc1 not msgpack"])  # undecodable
    anon.send_multipart([msgpack.packb([1, "chunk"])])  # bad_header
    anon.send_multipart(encode({**header("chunk", SCRIPTED, 1, chunks=[0]), "v": 2}, [good]))  # bad_version
    anon.send_multipart(encode(header("gossip", SCRIPTED, 1), []))  # bad_kind
    anon.send_multipart(encode(header("register", -1, data_addr="tcp://x:1", host="h", pid=1)))  # unexpected_kind
    anon.send_multipart(encode({**header("chunk", SCRIPTED, 1, chunks=[0]), "src": "zero"}, [good]))  # bad_field
    two_specs = [{"dtype": "<f4", "shape": [size0]}] * 2
    anon.send_multipart(encode(header("chunk", SCRIPTED, 1, chunks=[0], frames=two_specs), [good]))  # bad_frames
    anon.send_multipart(encode(header("chunk", SCRIPTED, 1, chunks=[0]), [good.view("<i4")]))  # bad_dtype
    big = np.zeros(MAX_MESSAGE_BYTES // 4 + 16, "<f4")  # over the message limit, under the frame limit
    anon.send_multipart(encode(header("chunk", SCRIPTED, 1, chunks=[0]), [big]))  # oversized

    # one frame far over the socket's frame limit: libzmq closes the connection after the
    # frame's length, before reading (or allocating) the body
    huge = sp.dealer(addr)
    huge.send_multipart(
        encode(header("chunk", SCRIPTED, 1, chunks=[0]), [np.zeros(HUGE // 4, "<f4")])
    )  # connection_dropped

    # a well-formed chunk from a real node that is not TARGET's neighbor
    stranger = sp.dealer(addr, routing_id=str(STRANGER).encode())
    stranger.send_multipart(sp.chunk_frames(1, {0: good}, src=STRANGER))  # not_neighbor

    # over our own connection to TARGET (routing id "0"); FIFO with our real chunks
    sp.send_raw(TARGET, sp.chunk_frames(1, {0: good}, src=TARGET_OTHER))  # sender_mismatch
    sp.send_raw(TARGET, encode(header("chunk", SCRIPTED, 1, chunks=[0, 0]), [good, good]))  # bad_chunks
    sp.send_raw(TARGET, encode(header("chunk", SCRIPTED, 1, chunks=[CHUNKS + 3]), [good]))  # bad_chunk_index
    sp.send_raw(TARGET, encode(header("chunk", SCRIPTED, 1, chunks=[[0]]), [good]))  # bad_chunk_index
    sp.send_raw(TARGET, sp.chunk_frames(1, {0: good[:-1]}))  # bad_chunk_size
    sp.send_raw(TARGET, sp.chunk_frames(50, {0: good}))  # future_round
    sp.send_raw(TARGET, sp.chunk_frames(0, {0: good}))  # stale_round
    # our real round-2 chunk, early (TARGET buffers it: it is in round 1), then again
    sp.send_chunks(2, TARGET, payload(sp, 2, TARGET))
    sp.send_chunks(2, TARGET, payload(sp, 2, TARGET))  # duplicate
    return [anon, huge, stranger]


def attack_coordinator(sp: ScriptedPeer, address: str) -> list[zmq.Socket]:
    """Every bad control-plane message of COORDINATOR_DROPS, sent during round 1; returns
    the extra sockets (see :func:`attack_peer`)."""
    fresh = sp.dealer(address)  # never registered
    fresh.send_multipart([b"\xc1 garbage"])  # undecodable
    fresh.send_multipart([msgpack.packb("round_done")])  # bad_header
    fresh.send_multipart(encode({**header("ready", 0), "v": 2}))  # bad_version
    fresh.send_multipart(encode(header("hello", 0)))  # bad_kind
    fresh.send_multipart(encode(header("ready", 0)))  # unknown_sender
    fresh.send_multipart(encode(header("chunk", 0, 1, chunks=[0]), [np.zeros(4, "<f4")]))  # unexpected_kind
    fresh.send_multipart(
        encode(header("register", -1, data_addr="tcp://127.0.0.1:9", host="h", pid=1))
    )  # unexpected_kind
    three_mib = np.zeros((3 << 20) // 8, "<f8")  # each frame under 4 MiB, together over it
    fresh.send_multipart(encode(header("ready", 0), [three_mib, three_mib]))  # oversized
    huge = sp.dealer(address)
    huge.send_multipart(encode(header("ready", 0), [np.zeros(HUGE // 8, "<f8")]))  # connection_dropped

    # over our own registered control connection, before our real round_done(1)
    ok = {"train_loss": 0.0, "chunks_received": 0, "senders": 0, "digest": "0" * 16}
    sp.round_done(1, metrics=ok, src=TARGET)  # sender_mismatch
    sp.round_done(9, metrics=ok)  # stale_round
    sp.round_done(1, metrics={**ok, "blob": b"\x00\x01"})  # bad_report: JSON cannot record bytes
    sp.round_done(1, metrics={**ok, "digest": "F" * 16})  # bad_report: upper-case digest
    sp.round_done(1, metrics={**ok, "senders": -1})  # bad_report: a negative count
    sp.round_done(1, metrics={**ok, "train_loss": "low"})  # bad_report: a loss that is no number
    return [fresh, huge]


# ----------------------------------------------------------------------------- scenario


@dataclass
class Outcome:
    node: int
    stop_reason: str
    codes: tuple[int | None, int | None]
    results: Results
    logs: str
    #: growth of peak RSS (VmHWM, bytes) over the attack: process name -> bytes
    peak_growth: dict[str, int]


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (``VmHWM``), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1)) * 1024


def watched_pids(cluster: Cluster, run_dir: Path) -> dict[str, int]:
    """The coordinator's pid and TARGET's (from topology.json, written at the assignment)."""
    assert cluster.coordinator is not None
    nodes = json.loads((run_dir / "topology.json").read_text())["nodes"]
    return {"coordinator": cluster.coordinator.pid, "target": nodes[TARGET]["pid"]}


def run_scenario(tmp: Path, *, hostile: bool) -> Outcome:
    """One 4-node run; with ``hostile`` the scripted peer attacks during round 1."""
    cfg = write_config(tmp, CONFIG)
    with Cluster(cfg, tmp / "run", peers=3) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        with ScriptedPeer(cluster.address) as sp:
            extra: list[zmq.Socket] = []  # open until the run ends (closed with sp)
            sp.register()
            cluster.start_peers()  # after our register: we are node 0 in both runs
            sp.accept_assignment(timeout=150)
            assert sp.node == SCRIPTED and sp.neighbor_ids == [1, 3], cluster.logs()
            sp.ready()
            for t in range(1, ROUNDS + 1):
                sp.expect("round_start", round_=t, timeout=20)
                sp.send_chunks(t, STRANGER, payload(sp, t, STRANGER))
                if t == 1:
                    # TARGET sent us its round-1 chunk: it is in round 1, waiting for ours
                    sp.recv_chunks(1, senders=[TARGET])
                    pids = watched_pids(cluster, tmp / "run")
                    before = {name: peak_rss(pid) for name, pid in pids.items()}
                    if hostile:
                        extra.extend(attack_peer(sp) + attack_coordinator(sp, cluster.address))
                        # what the extra sockets sent (not ordered with our own
                        # connection's messages) is dropped while TARGET is in round 1
                        cluster.wait_log(
                            "peers.log", [f"peer {TARGET} dropped a message ({r}, #" for r in VIA_EXTRA_SOCKETS]
                        )
                        cluster.wait_log(
                            "coordinator.log", [f"coordinator dropped a message ({r}, #" for r in COORDINATOR_VIA_FRESH]
                        )
                    growth = {name: peak_rss(pid) - before[name] for name, pid in pids.items()}
                if not (hostile and t == 2):  # the hostile run sent its round-2 chunk early
                    sp.send_chunks(t, TARGET, payload(sp, t, TARGET))
                sp.recv_chunks(t)
                sp.round_done(
                    t,
                    metrics={
                        "train_loss": 1.0,
                        "chunks_received": 4,
                        "senders": 2,
                        "digest": "f" * 16,
                        "test_accuracy": 0.5,
                        "test_loss": 1.0,
                    },
                )
            stop = sp.expect("stop", timeout=20)
        codes = cluster.wait(90)
        return Outcome(sp.node, stop["reason"], codes, read_results(tmp / "run"), cluster.logs(), growth)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The hostile and the clean run, side by side (they share nothing but the config)."""
    dirs = {name: tmp_path_factory.mktemp(name) for name in ("hostile", "clean")}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_scenario, d, hostile=name == "hostile") for name, d in dirs.items()}
        return {name: f.result(timeout=400) for name, f in futures.items()}


def test_runs_complete(outcomes: dict[str, Outcome]) -> None:
    for name, o in outcomes.items():
        assert o.codes == (0, 0), f"{name}:\n{o.logs}"
        assert o.stop_reason == "finished"
        assert [r["round"] for r in o.results.rounds] == list(range(1, ROUNDS + 1))
        for record in o.results.rounds:
            assert record["failed"] == []
            assert {k: p["status"] for k, p in record["peers"].items()} == dict.fromkeys("0123", "ok")
        assert o.results.summary is not None and o.results.summary["failed_peers"] == []


def test_target_counts_every_bad_message_by_reason(outcomes: dict[str, Outcome]) -> None:
    res = outcomes["hostile"].results
    traffic = [res.peer(t, TARGET)["traffic"] for t in range(1, ROUNDS + 1)]
    assert traffic[-1]["drops_total"] == TARGET_DROPS
    assert sum(t["dropped"] for t in traffic) == sum(TARGET_DROPS.values())
    assert set(TARGET_DROPS) <= DOCUMENTED_REASONS
    # accepted: 2 per round, plus our early round-2 chunk counted when it arrived in round 1
    assert [t["recv_msgs"] for t in traffic] == [3, 1]
    for node in (TARGET_OTHER, STRANGER):
        assert res.peer(ROUNDS, node)["traffic"]["drops_total"] == {}


def test_coordinator_counts_every_bad_message_by_reason(outcomes: dict[str, Outcome]) -> None:
    res = outcomes["hostile"].results
    assert res.rounds[-1]["coordinator_drops"] == COORDINATOR_DROPS
    assert res.summary is not None and res.summary["coordinator_drops"] == COORDINATOR_DROPS
    assert set(COORDINATOR_DROPS) <= DOCUMENTED_REASONS
    # the rejected round_done(1) did not replace the real one
    assert res.peer(1, SCRIPTED)["metrics"]["digest"] == "f" * 16


def test_frame_limit_bounds_memory(outcomes: dict[str, Outcome]) -> None:
    """A frame of HUGE bytes is refused from its length: neither the target peer's nor the
    coordinator's peak memory grows by anything near its size (without ZMQ_MAXMSGSIZE both
    buffer the whole frame before the codec's size check drops it)."""
    for name in ("target", "coordinator"):
        assert outcomes["hostile"].peak_growth[name] < HUGE // 4, outcomes["hostile"].peak_growth


def test_clean_run_drops_nothing(outcomes: dict[str, Outcome]) -> None:
    res = outcomes["clean"].results
    assert res.rounds[-1]["coordinator_drops"] == {}
    for t in range(1, ROUNDS + 1):
        for node in (TARGET, TARGET_OTHER, STRANGER):
            assert res.peer(t, node)["traffic"]["dropped"] == 0


def test_hostile_run_is_unaffected(outcomes: dict[str, Outcome]) -> None:
    hostile, clean = outcomes["hostile"].results, outcomes["clean"].results
    for t in range(1, ROUNDS + 1):
        for node in (TARGET, TARGET_OTHER, STRANGER):
            h, c = hostile.peer(t, node)["metrics"], clean.peer(t, node)["metrics"]
            assert h["digest"] == c["digest"], (t, node)
            assert h == c  # loss, accuracy, chunk counts too
            assert h["chunks_received"] == 4 and h["senders"] == 2


# ----------------------------------------------------------------------------- property


FUZZ_CONFIG = small_config(
    "fuzz",
    seed=3,
    nodes=3,
    rounds=3,
    topology={"kind": "complete"},
    data={"synthetic_size": 300},
    chunks={"count": 4, "per_neighbor": 2},
    eval={"every": 2},
    runtime={"register_timeout": 120.0, "round_timeout": 20.0, "chunk_timeout": 10.0},
)


def regressions(node: int, peer_size: int) -> tuple[list[list[bytes]], list[list[bytes]], list[list[bytes]]]:
    """Messages that once crashed a receiver or were wrongly accepted (v=True, v=1.0), as
    three lists: to a peer anonymously, to a peer over the scripted peer's own connection,
    and to the coordinator over the registered control connection."""
    vec = np.zeros(peer_size, "<f4")
    anon = [
        [msgpack.packb({"v": 1, "kind": [], "src": 0, "round": 1})],  # unhashable kind
        encode(header("chunk", node, 1, chunks=[0], frames=[{"dtype": [], "shape": [peer_size]}]), [vec]),
        [
            msgpack.packb({**header("chunk", node, 1, chunks=[0]), "frames": [{"dtype": "<f4", "shape": [2**62, 4]}]}),
            b"",
        ],
        encode({**header("chunk", node, 1, chunks=[0]), "v": True}, [vec]),
        encode({**header("chunk", node, 1, chunks=[0]), "v": 1.0}, [vec]),
    ]
    own = [
        encode(header("chunk", node, 1, chunks=[[0]]), [vec]),  # unhashable chunk index
        encode(header("chunk", node, 1, chunks=[{"c": 0}]), [vec]),
    ]
    deep: Any = 1
    for _ in range(40):
        deep = {"d": deep}
    ok = {"train_loss": 0.0, "chunks_received": 0, "senders": 0, "digest": "0" * 16}
    timing = {"train_s": 0.0}
    control = [
        encode(header("round_done", node, 1, metrics={**ok, "b": b"\x00"}, traffic={}, timing=timing)),
        encode(header("round_done", node, 1, metrics={**ok, b"key": 1}, traffic={}, timing=timing)),
        encode(header("round_done", node, 1, metrics={**ok, "deep": deep}, traffic={}, timing=timing)),
        encode(header("round_done", node, 1, metrics=ok, traffic={"x": msgpack.ExtType(5, b"e")}, timing=timing)),
    ]
    return anon, own, control


@dataclass
class FuzzLog:
    """What the fuzzing scripted peer sent, for the accounting checks."""

    node: int
    real: list[int]
    to_peer: dict[int, int]  # real peer -> messages sent to its data socket
    to_coordinator: int  # messages sent to the coordinator (all of them invalid there)
    own_regressions: int  # messages per peer whose chunk index is not an int


def fuzz_live_cluster(cluster: Cluster, sp: ScriptedPeer) -> FuzzLog:
    """During round 1: known past crashers, then 30 hypothesis examples (random frames or
    mutated valid messages) to the real peers' data sockets and the coordinator; then
    finish the run normally. Fails as soon as a process dies."""
    from collections import Counter

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    sp.register(data_addr="localhost:5555")  # not connectable: neighbors must carry on
    sp.accept_assignment(timeout=150)
    sp.ready()
    sp.expect("round_start", round_=1, timeout=20)
    node, real = sp._id(), sp.neighbor_ids
    size0 = sp.chunk_sizes[0]

    anon = {j: sp.dealer(sp.neighbors[j]) for j in real}
    fresh = sp.dealer(cluster.address)
    to_peer: Counter[int] = Counter()
    to_coordinator = 0
    sent_log: list[tuple[Any, list[bytes]]] = []

    def send(target: tuple[str, int | None], frames: list[bytes]) -> None:
        nonlocal to_coordinator
        sent_log.append((target, frames))
        via, j = target
        if via == "coordinator":  # a connection that never registered
            fresh.send_multipart(frames)
            to_coordinator += 1
        elif via == "control":  # our registered control connection
            sp.ctrl.send_multipart(frames)
            to_coordinator += 1
        else:  # a real peer's data socket, anonymously or over our own connection to it
            assert j is not None
            (anon[j] if via == "anon" else sp.out[j]).send_multipart(frames)
            to_peer[j] += 1

    def check_alive() -> None:
        assert cluster.alive(), f"a process died; last messages sent: {sent_log[-5:]}\n{cluster.logs()}"

    reg_anon, reg_own, reg_control = regressions(node, size0)
    for j in real:
        for frames in reg_anon:
            send(("anon", j), frames)
        for frames in reg_own:
            send(("own", j), frames)
    for frames in reg_control:
        send(("control", None), frames)

    values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats()
        | st.text(max_size=6)
        | st.binary(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=6,
    )
    chunk = encode(header("chunk", node, 1, chunks=[0]), [np.arange(size0, dtype="<f4")])
    done = encode(header("round_done", node, 1, metrics={"train_loss": 0.5}, traffic={}, timing={}))
    templates = {"data": (msgpack.unpackb(chunk[0]), chunk[1:]), "control": (msgpack.unpackb(done[0]), [])}

    @st.composite
    def mutated(draw: Any, plane: str) -> list[bytes]:
        """A valid message of ``plane`` with 1-3 header keys replaced or removed, and its
        array frames kept, removed, doubled or shortened by one byte."""
        head, arrays = dict(templates[plane][0]), templates[plane][1]
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(sorted(head) + ["extra"]))
            if draw(st.booleans()):
                head[key] = draw(values)
            else:
                head.pop(key, None)
        arrays = draw(st.sampled_from([arrays, [], arrays * 2, [a[:-1] for a in arrays]]))
        return [msgpack.packb(head, use_bin_type=True), *arrays]

    raw = st.lists(st.binary(max_size=48), min_size=1, max_size=3)
    message = st.one_of(
        st.tuples(st.tuples(st.sampled_from(["anon", "own"]), st.sampled_from(real)), raw | mutated("data")),
        st.tuples(st.just(("coordinator", None)), raw | mutated("control")),
    )

    # one live cluster for all examples: no shrinking (state is shared), reproducible draws
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(message)
    def fuzz(target_frames: tuple[Any, list[bytes]]) -> None:
        send(*target_frames)
        time.sleep(0.003)
        check_alive()

    fuzz()
    check_alive()

    # three rounds: what the fuzz sent (over connections not ordered with ours) is taken
    # and counted while the peers go through rounds 1 and 2, before round 3's report
    for t in (1, 2, 3):
        if t > 1:
            sp.expect("round_start", round_=t, timeout=20)
        sp.round_done(t, metrics={"train_loss": 0.5, "chunks_received": 0, "senders": 0, "digest": "0" * 16})
    assert sp.expect("stop", timeout=20)["reason"] == "finished"
    return FuzzLog(node, real, dict(to_peer), to_coordinator, len(reg_own))


def test_random_and_mutated_frames_never_crash(tmp_path: Path) -> None:
    """Random byte frames and mutations of valid messages, sent to live peers' data sockets
    and to the coordinator, are each dropped (or, if they happen to be valid, accepted)
    and counted; every process survives and the run finishes. The scripted peer also
    advertises a data address that cannot be connected to ("host:port" without tcp://):
    its neighbors log it and carry on without it."""
    pytest.importorskip("hypothesis")
    cfg = write_config(tmp_path, FUZZ_CONFIG)
    with Cluster(cfg, tmp_path / "run", peers=2) as cluster:
        cluster.start()
        cluster.wait_listening()
        with ScriptedPeer(cluster.address) as sp:
            log = fuzz_live_cluster(cluster, sp)
        codes = cluster.wait(90)
        logs = cluster.logs()

    assert codes == (0, 0), logs
    assert "cannot connect to neighbor" in logs
    res = read_results(tmp_path / "run")
    assert [r["round"] for r in res.rounds] == [1, 2, 3]
    for record in res.rounds:
        assert record["failed"] == []
        assert all(p["status"] == "ok" for p in record["peers"].values())
    for j in log.real:
        traffic = [res.peer(t, j)["traffic"] for t in (1, 2, 3)]
        drops = traffic[-1]["drops_total"]
        assert set(drops) <= DOCUMENTED_REASONS
        # every message that reached j was accepted or dropped: ours + one per round from
        # the other real peer (j does not wait for us: our address was unusable)
        assert sum(drops.values()) + sum(t["recv_msgs"] for t in traffic) == log.to_peer[j] + 3
        assert drops.get("bad_chunk_index", 0) >= log.own_regressions
    coordinator_drops = res.rounds[-1]["coordinator_drops"]
    assert set(coordinator_drops) <= DOCUMENTED_REASONS
    assert sum(coordinator_drops.values()) == log.to_coordinator  # none of it was accepted
