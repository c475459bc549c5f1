"""Identity on the data plane with ZeroMQ CURVE (``runtime.curve``; docs/FAILURES.md,
*Identity*): same models as without it, a peer's key only speaks in that peer's name, an
unknown key delivers nothing, and a bad setting is one error line.

The scenario runs on real processes and sockets: 4 nodes on a ring 0-1-2-3-0, node 0 the
scripted peer (tests/support/harness.py), 1-3 real ``byzemu peer`` processes. The scripted peer
holds node 0's issued key pair and, during round 1, tries to speak as node 2 to node 1 (a
neighbor of both), and connects with a key nobody issued.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zmq
from click.testing import CliRunner

from launch import api
from launch.cli import main
from launch.run.reference import run_reference
from peer.auth import ZapHandler
from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig
from tests.support.harness import Cluster, Results, ScriptedPeer, read_results, read_rounds, write_config
from tests.support.runs import small_config

# ----------------------------------------------------------------------------- (a) same models

EQUIVALENCE = small_config(
    "curve-equivalence",
    seed=4,
    nodes=5,
    data={"synthetic_size": 400},
    train={"local_steps": 2},
    chunks={"count": 4, "per_neighbor": 2},
    byzantine={"count": 2, "attack": "alie", "knowledge": "oracle"},
    runtime={"register_timeout": 120.0, "round_timeout": 20.0, "chunk_timeout": 10.0},
)


@pytest.mark.cluster
def test_curve_run_is_bit_identical_to_reference(tmp_path: Path) -> None:
    """Chunk, collude and oracle messages (every link kind) all travel over CURVE."""
    cfg_path = write_config(tmp_path, EQUIVALENCE)
    run_dir, ref_dir = tmp_path / "curve", tmp_path / "ref"

    # a real local cluster started from this process (what `byzemu launch --set runtime.curve=on` runs)
    api.launch(config_mod.load(cfg_path, ["runtime.curve=on"]), run_dir)
    run_reference(config_mod.load(cfg_path), ref_dir)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["curve"] is True
    assert json.loads((ref_dir / "summary.json").read_text())["curve"] is False
    curve_rounds, ref_rounds = read_rounds(run_dir), read_rounds(ref_dir)
    assert [r["round"] for r in curve_rounds] == [1, 2]
    for rec, ref in zip(curve_rounds, ref_rounds):
        for node in map(str, range(5)):
            peer = rec["peers"][node]
            assert peer["status"] == "ok"
            assert peer["metrics"] == ref["peers"][node]["metrics"], (rec["round"], node)
            assert peer["traffic"]["drops_total"] == {}, (rec["round"], node)


# ----------------------------------------------------------------------------- (b), (c) identity

ROUNDS = 2
CHUNKS = 4
SCRIPTED, TARGET, TARGET_OTHER, STRANGER = 0, 1, 2, 3  # TARGET's neighbors: SCRIPTED, TARGET_OTHER

IDENTITY = small_config(
    "curve-identity",
    seed=9,
    rounds=ROUNDS,
    data={"synthetic_size": 400},
    train={"local_steps": 2},
    chunks={"count": CHUNKS, "per_neighbor": 2},
    runtime={"register_timeout": 120.0, "round_timeout": 20.0, "chunk_timeout": 10.0},
)


def payload(sp: ScriptedPeer, round_: int, neighbor: int) -> dict[int, np.ndarray]:
    """The scripted peer's (deterministic) chunks for ``neighbor`` in ``round_``."""
    idx = {(round_ + neighbor) % CHUNKS, (round_ + neighbor + 1) % CHUNKS}
    return {c: np.full(sp.chunk_sizes[c], 0.01 * (c + 1) + 0.001 * round_, "<f4") for c in sorted(idx)}


def impersonate(sp: ScriptedPeer) -> list[zmq.Socket]:
    """With node 0's own key pair, claim to be node 2 towards node 1 (2 messages), and try
    to reach node 1 with a key nobody issued and without CURVE (nothing may arrive).
    Returns the extra sockets, kept open until the run ends: closing an established one
    mid-run would count as a ``connection_dropped``."""
    addr = sp.neighbors[TARGET]
    good = {0: np.full(sp.chunk_sizes[0], 7.0, "<f4")}
    # a second connection with our key that also claims node 2's routing id
    spoof = sp.dealer(addr, routing_id=str(TARGET_OTHER).encode(), curve=sp.curve_client(TARGET))
    spoof.send_multipart(sp.chunk_frames(1, good, src=TARGET_OTHER))  # key_mismatch
    sp.send_raw(TARGET, sp.chunk_frames(1, good, src=TARGET_OTHER))  # key_mismatch, our own connection
    public, secret = zmq.curve_keypair()
    unknown = {"public": public, "secret": secret, "server": sp.peer_keys[TARGET].encode()}
    foreign = sp.dealer(addr, curve=unknown)
    foreign.send_multipart(sp.chunk_frames(1, good, src=STRANGER))  # unknown_key
    plain = sp.dealer(addr, routing_id=str(STRANGER).encode())
    plain.send_multipart(sp.chunk_frames(1, good, src=STRANGER))
    return [spoof, foreign, plain]


@dataclass
class Outcome:
    codes: tuple[int | None, int | None]
    results: Results
    logs: str


def run_identity(tmp: Path, *, curve: bool, hostile: bool) -> Outcome:
    cfg = write_config(tmp, IDENTITY + f'curve = "{"on" if curve else "off"}"\n')
    with Cluster(cfg, tmp / "run", peers=3) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        assert (cluster.coordinator_key is not None) == curve, cluster.logs()
        with ScriptedPeer(cluster.address, coordinator_key=cluster.coordinator_key) as sp:
            extra: list[zmq.Socket] = []  # open until the run ends (closed with sp)
            sp.register()
            cluster.start_peers()  # after our register: we are node 0
            sp.accept_assignment(timeout=150)
            assert sp.node == SCRIPTED and sp.neighbor_ids == [1, 3], cluster.logs()
            assert (sp.curve is not None) == curve
            sp.ready()
            for t in range(1, ROUNDS + 1):
                sp.expect("round_start", round_=t, timeout=20)
                sp.send_chunks(t, STRANGER, payload(sp, t, STRANGER))
                if t == 1 and hostile:
                    sp.recv_chunks(1, senders=[TARGET])  # TARGET is in round 1, waiting for us
                    extra.extend(impersonate(sp))
                    # the spoofed chunks and the refused handshake reach TARGET in round 1
                    cluster.wait_log(
                        "peers.log",
                        [
                            f"peer {TARGET} dropped a message (key_mismatch, #2)",
                            f"peer {TARGET} refused a connection (unknown_key, #1)",
                        ],
                    )
                sp.send_chunks(t, TARGET, payload(sp, t, TARGET))
                sp.recv_chunks(t)
                sp.round_done(t, metrics={"train_loss": 1.0, "chunks_received": 4, "senders": 2, "digest": "f" * 16})
            sp.expect("stop", timeout=20)
        codes = cluster.wait(90)
        return Outcome(codes, read_results(tmp / "run"), cluster.logs())


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The attacked CURVE run and a clean run without CURVE, side by side."""
    runs = {"attacked": dict(curve=True, hostile=True), "plain": dict(curve=False, hostile=False)}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_identity, tmp_path_factory.mktemp(name), **kw) for name, kw in runs.items()}
        return {name: f.result(timeout=400) for name, f in futures.items()}


@pytest.mark.cluster
def test_a_key_speaks_only_for_its_owner(identity: dict[str, Outcome]) -> None:
    attacked = identity["attacked"]
    assert attacked.codes == (0, 0), attacked.logs
    assert attacked.results.summary is not None and attacked.results.summary["curve"] is True
    drops = attacked.results.peer(ROUNDS, TARGET)["traffic"]["drops_total"]
    assert drops["key_mismatch"] == 2
    assert "key_mismatch" in attacked.logs and "claims src 2" in attacked.logs
    for node in (TARGET_OTHER, STRANGER):
        assert attacked.results.peer(ROUNDS, node)["traffic"]["drops_total"] == {}


@pytest.mark.cluster
def test_an_unknown_key_delivers_nothing(identity: dict[str, Outcome]) -> None:
    res = identity["attacked"].results
    traffic = [res.peer(t, TARGET)["traffic"] for t in range(1, ROUNDS + 1)]
    drops = traffic[-1]["drops_total"]
    assert drops.get("unknown_key", 0) >= 1  # refused at the handshake, counted by reason
    assert set(drops) == {"key_mismatch", "unknown_key"}  # the plain client: not even a handshake
    assert sum(t["dropped"] for t in traffic) == sum(drops.values())
    assert [t["recv_msgs"] for t in traffic] == [2, 2]  # only the real neighbors' chunks


@pytest.mark.cluster
def test_attacked_curve_run_equals_clean_plain_run(identity: dict[str, Outcome]) -> None:
    attacked, plain = identity["attacked"].results, identity["plain"].results
    assert identity["plain"].codes == (0, 0), identity["plain"].logs
    assert plain.summary is not None and plain.summary["curve"] is False
    for t in range(1, ROUNDS + 1):
        for node in (TARGET, TARGET_OTHER, STRANGER):
            a, p = attacked.peer(t, node)["metrics"], plain.peer(t, node)["metrics"]
            assert a == p, (t, node)  # digests (models), losses, accuracies, chunk counts
            assert a["chunks_received"] == 4 and a["senders"] == 2


# ----------------------------------------------------------------------------- (d) config


def test_bad_curve_value_is_one_error_line(tmp_path: Path) -> None:
    # through the click entry point in this process (tests/test_cli_errors.py runs the
    # console script itself on bad input)
    cfg = write_config(tmp_path, IDENTITY)

    result = CliRunner().invoke(main, ["validate", str(cfg), "--set", "runtime.curve=maybe"])

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr == "error: runtime.curve='maybe': valid values are auto, on, off\n"


@pytest.mark.parametrize(
    ("curve", "control", "bind_host", "on"),
    [
        ("auto", "tcp://127.0.0.1:*", "127.0.0.1", False),  # byzemu launch, default
        ("auto", "tcp://127.0.0.1:*", "0.0.0.0", True),  # launch with peers reachable from outside
        ("auto", "tcp://0.0.0.0:5555", "127.0.0.1", True),  # byzemu coordinator for other hosts
        ("auto", "tcp://[::1]:5555", "localhost", False),
        ("auto", "tcp://coord.example:5555", "127.0.0.1", True),
        ("on", "tcp://127.0.0.1:*", "127.0.0.1", True),
        ("off", "tcp://0.0.0.0:5555", "0.0.0.0", False),
    ],
)
def test_auto_means_on_when_any_socket_leaves_loopback(curve: str, control: str, bind_host: str, on: bool) -> None:
    cfg = config_mod.from_dict({"runtime": {"curve": curve, "bind_host": bind_host}})
    assert cfg.runtime.curve_on(control) is on


def test_curve_must_be_a_known_mode() -> None:
    with pytest.raises(ConfigError, match=r"^runtime\.curve='yes': valid values are auto, on, off$"):
        config_mod.from_dict({"runtime": {"curve": "yes"}})
    assert RunConfig().runtime.curve == "auto"


# ----------------------------------------------------------------------------- ZAP handler


def test_zap_handler_names_the_key_owner_and_refuses_others() -> None:
    known, _ = zmq.curve_keypair()
    other, _ = zmq.curve_keypair()
    ctx = zmq.Context()
    try:
        zap = ZapHandler(ctx, {known.decode(): 5}, owner=1)
        raw = zmq.utils.z85.decode
        request = [b"1.0", b"r1", b"", b"127.0.0.1", b"", b"CURVE"]

        ok = zap.reply([*request, raw(known)])
        refused = zap.reply([*request, raw(other)])
        plain = zap.reply([b"1.0", b"r2", b"", b"127.0.0.1", b"", b"NULL"])

        assert ok == [b"1.0", b"r1", b"200", b"OK", b"5", b""]
        assert refused[:3] == [b"1.0", b"r1", b"400"] and refused[4] == b""
        assert plain[:3] == [b"1.0", b"r2", b"400"]
        assert zap.refused == 2
    finally:
        ctx.term()  # ends the handler's thread, which closes its socket


def test_zap_handler_holds_a_handshake_until_the_assignment_then_admits_it() -> None:
    client_public, client_secret = zmq.curve_keypair()
    server_public, server_secret = zmq.curve_keypair()
    ctx = zmq.Context()
    own: list[zmq.Socket] = []  # this thread's sockets; the handler's is its thread's to close
    try:
        zap = ZapHandler(ctx, None, owner=1)  # the peer's own assign has not arrived yet
        server = ctx.socket(zmq.ROUTER)
        own.append(server)
        server.curve_server, server.curve_secretkey = True, server_secret
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = ctx.socket(zmq.DEALER)
        own.append(client)
        client.curve_publickey, client.curve_secretkey, client.curve_serverkey = (
            client_public,
            client_secret,
            server_public,
        )
        client.connect(f"tcp://127.0.0.1:{port}")
        client.send(b"early")  # a neighbor that was assigned first sends at once

        held = server.poll(500)  # nothing is delivered while the handshake waits
        zap.admit({client_public.decode(): 7}, owner=1)
        arrived = server.poll(10_000)
        routing_id, frame = server.recv_multipart(copy=False)

        assert not held and arrived
        assert frame.bytes == b"early" and frame.get("User-Id") == "7"
        assert zap.refused == 0
    finally:
        # not ctx.destroy(): it would close the handler's socket from this thread while the
        # handler polls it (zmq_close is not thread-safe; a worker crashed on it once)
        for sock in own:
            sock.close(linger=0)
        ctx.term()  # ends the handler's thread, which closes its socket
