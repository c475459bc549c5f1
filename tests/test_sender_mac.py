"""Sender MACs on the data plane (``runtime.sender_mac``; docs/PROTOCOL.md, *Sender MAC*).

Unit tests of protocol/mac.py against the spec's formulas, computed here with hmac and
struct; then one real cluster: a scripted peer (tests/support/harness.py, which signs and
checks tags as the spec says) and two byzemu peers, where the scripted peer forges a
neighbor's ``src``, sends an untagged message and a message tagged under a wrong key: the
receiver drops each as ``bad_mac`` and accepts the valid one behind them."""

from __future__ import annotations

import hashlib
import hmac
import struct

import numpy as np
import pytest

from protocol import mac
from protocol import messages as m
from protocol.codec import ProtocolError, decode, encode
from tests.support.harness import Cluster, ScriptedPeer, read_results, write_config
from tests.support.runs import small_config

SECRET = bytes(range(32))


def _assign(mac_map: dict[str, object]) -> m.Message:
    return m.Message(m.ASSIGN, -1, 0, {"node": 0, "num_nodes": 3, "mac": mac_map})


def _keys_of_node(node: int) -> mac.LinkKeys:
    maps = mac.assignment_keys(SECRET, {0: {1, 2}, 1: {0, 2}, 2: {0, 1}})
    keys = mac.LinkKeys.from_assign(m.Message(m.ASSIGN, -1, 0, {"node": node, "num_nodes": 3, "mac": maps[node]}))
    assert keys is not None
    return keys


def test_link_key_is_hmac_of_the_secret_over_the_directed_link() -> None:
    expected = hmac.new(SECRET, b"byzemu-link" + struct.pack("<qq", 1, 0), hashlib.sha256).digest()

    assert mac.link_key(SECRET, 1, 0) == expected
    assert mac.link_key(SECRET, 0, 1) != expected


def test_tag_covers_each_frame_with_its_length() -> None:
    key = b"k" * 32
    by_hand = hmac.new(key, struct.pack("<Q", 3) + b"abc" + struct.pack("<Q", 1) + b"d", hashlib.sha256).digest()

    assert mac.tag(key, [b"abc", b"d"]) == by_hand
    assert mac.tag(key, [b"ab", b"cd"]) != by_hand  # moved frame boundary, same bytes


def test_each_node_gets_only_the_keys_of_its_own_links() -> None:
    maps = mac.assignment_keys(SECRET, {0: {1}, 1: {0}})

    assert maps[0] == {
        "peers": [{"id": 1, "send": mac.link_key(SECRET, 0, 1).hex(), "recv": mac.link_key(SECRET, 1, 0).hex()}]
    }
    assert maps[1]["peers"][0]["send"] == maps[0]["peers"][0]["recv"]


def test_a_signed_message_opens_at_its_receiver() -> None:
    sender, receiver = _keys_of_node(1), _keys_of_node(0)
    frames = encode(m.chunk(src=1, round_=3, chunks={0: np.ones(5, "<f4")}))

    msg = receiver.open(sender.sign(0, frames), lambda body: decode(body, allowed=m.DATA_PLANE))

    assert (msg.src, msg.round, msg["chunks"]) == (1, 3, [0])


@pytest.mark.parametrize(
    ("forge", "detail"),
    [
        ("src", "tag does not verify for claimed src 2"),  # node 1 signs a message claiming node 2
        ("untagged", "last frame of 20 bytes is not a 32-byte tag"),
        ("stranger", "no link key for claimed src 5"),
    ],
)
def test_forged_or_untagged_messages_are_bad_mac(forge: str, detail: str) -> None:
    sender, receiver = _keys_of_node(1), _keys_of_node(0)
    src = {"src": 2, "untagged": 1, "stranger": 5}[forge]
    frames = encode(m.chunk(src=src, round_=3, chunks={0: np.ones(5, "<f4")}))
    wire = frames if forge == "untagged" else sender.sign(0, frames)

    with pytest.raises(ProtocolError) as err:
        receiver.open(wire, lambda body: decode(body, allowed=m.DATA_PLANE))

    assert (err.value.reason, err.value.detail) == ("bad_mac", detail)


@pytest.mark.parametrize(
    "entry",
    [
        {"id": 0, "send": "00" * 32, "recv": "00" * 32},  # itself
        {"id": 1, "send": "AB" * 32, "recv": "00" * 32},  # upper case
        {"id": 1, "send": "00" * 31, "recv": "00" * 32},  # short
        {"id": 3, "send": "00" * 32, "recv": "00" * 32},  # out of range
    ],
)
def test_a_malformed_mac_entry_is_bad_assignment(entry: dict[str, object]) -> None:
    with pytest.raises(ProtocolError) as err:
        mac.LinkKeys.from_assign(_assign({"peers": [entry]}))

    assert err.value.reason == "bad_assignment"


@pytest.mark.cluster
def test_a_receiver_drops_forged_and_untagged_messages_as_bad_mac(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("mac")
    cfg = write_config(
        tmp,
        small_config(
            "mac",
            seed=3,
            nodes=3,
            rounds=1,
            topology={"kind": "complete"},
            chunks={"count": 4, "per_neighbor": 2},
            runtime={"register_timeout": 120.0, "round_timeout": 20.0, "chunk_timeout": 10.0, "sender_mac": True},
        ),
    )
    with Cluster(cfg, tmp / "run", peers=2) as cluster:
        cluster.start()
        cluster.wait_listening()
        with ScriptedPeer(cluster.address) as sp:
            sp.register()
            sp.accept_assignment(timeout=150)
            target, other = sp.neighbor_ids
            sp.ready()
            sp.expect("round_start", round_=1, timeout=20)
            chunk = {0: np.zeros(sp.chunk_sizes[0], "<f4"), 1: np.zeros(sp.chunk_sizes[1], "<f4")}
            sp.send_raw(target, sp.chunk_frames(1, chunk, src=other))  # forged src, signed with our key
            sp.send_raw(target, sp.chunk_frames(1, chunk), mac=b"")  # no tag
            sp.send_raw(target, sp.chunk_frames(1, chunk), mac=b"\x01" * 32)  # a key we do not hold
            for j in (target, other):
                sp.send_chunks(1, j, chunk)  # valid, behind the bad ones on the same connection
            got = sp.recv_chunks(1, timeout=15)  # the harness checks the byzemu peers' tags
            sp.round_done(1, metrics={"chunks_received": 4, "senders": 2, "digest": "0" * 16})
            sp.expect("stop", timeout=20)
        codes = cluster.wait(90)
    results = read_results(tmp / "run")

    assert codes == (0, 0) and sorted(got) == [target, other]
    assert results.peer(1, target)["traffic"]["drops_total"] == {"bad_mac": 3}
    assert results.peer(1, target)["metrics"]["senders"] == 2
    assert results.peer(1, other)["traffic"]["drops_total"] == {}
    assert results.peer(1, other)["metrics"]["senders"] == 2
