"""Delay and loss without netem, without processes: the netfilter rules, the
nfnetlink_queue messages (bytes derived by hand from the kernel's uapi headers) and the
delay loop's draws. The real-namespace tests are in tests/test_network_links.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from launch.net.delayer import LinkDelay
from launch.net.netfilter import Incoming, delay_spec, ingress_rules
from launch.net.nfqueue import NF_ACCEPT, NF_DROP, parse_packets, verdict_message
from protocol import config as config_mod
from protocol.errors import ConfigError
from protocol.network_config import Link


def test_ingress_rules_drop_then_queue_each_senders_packets_on_its_own_queue() -> None:
    rules = ingress_rules(
        [
            Incoming(4, "10.78.0.14", Link(delay_ms=100.0)),
            Incoming(2, "10.78.0.12", Link(delay_ms=20.0, jitter_ms=5.0, loss_pct=2.5)),
            Incoming(7, "10.78.0.17", Link(loss_pct=50.0)),  # loss only: dropped or passed, never held
            Incoming(9, "10.78.0.19", Link(rate_mbit=5.0)),  # the rate is tc's: no rule here
        ]
    )
    assert rules.splitlines() == [
        "*raw",
        ":PREROUTING ACCEPT [0:0]",
        "-A PREROUTING -s 10.78.0.12/32 -m statistic --mode random --probability 0.02500000 -j DROP",
        "-A PREROUTING -s 10.78.0.12/32 -j NFQUEUE --queue-num 2",
        "-A PREROUTING -s 10.78.0.14/32 -j NFQUEUE --queue-num 4",
        "-A PREROUTING -s 10.78.0.17/32 -m statistic --mode random --probability 0.50000000 -j DROP",
        "COMMIT",
    ]


def test_the_delay_spec_lists_only_links_whose_packets_are_held() -> None:
    spec = delay_spec(
        7,
        {
            0: ("ns0", [Incoming(1, "a1", Link(delay_ms=10.0, jitter_ms=2.0)), Incoming(2, "a2", Link(loss_pct=1.0))]),
            1: ("ns1", [Incoming(0, "a0", Link(rate_mbit=1.0))]),
        },
    )
    assert spec == {
        "seed": 7,
        "receivers": [
            {"ns": "ns0", "node": 0, "links": {"1": {"delay_ms": 10.0, "jitter_ms": 2.0, "reorder_pct": 0.0}}}
        ],
    }


def test_a_verdict_is_one_nfnetlink_message_with_the_queue_big_endian() -> None:
    msg = verdict_message(3, 0x01020304, NF_ACCEPT)
    # nlmsghdr (host order): len 32 = 16 + nfgenmsg 4 + attr 12, type (NFNL_SUBSYS_QUEUE 3 << 8) | VERDICT 1,
    # flags NLM_F_REQUEST; nfgenmsg: AF_UNSPEC, v0, res_id 3 (big-endian); NFQA_VERDICT_HDR (2): verdict 1, id
    expected = (
        struct.pack("=IHHII", 32, 0x0301, 1, 0, 0)
        + bytes([0, 0, 0, 3])
        + struct.pack("=HH", 12, 2)
        + bytes([0, 0, 0, 1, 1, 2, 3, 4])
    )
    assert msg == expected
    assert verdict_message(0, 1, NF_DROP)[-8:] == bytes([0, 0, 0, 0, 0, 0, 0, 1])


def _attr(kind: int, value: bytes) -> bytes:
    body = struct.pack("=HH", 4 + len(value), kind) + value
    return body + b"\0" * (-len(body) % 4)


def test_packets_are_read_by_queue_and_id_and_refused_verdicts_are_counted() -> None:
    # Arrange: a packet message of queue 5 (a mark attribute before its header), then the
    # kernel's error for a verdict it refused (ENOENT: no such packet id)
    body = bytes([2, 0, 0, 5]) + _attr(3, struct.pack(">I", 9)) + _attr(1, struct.pack(">IHB", 42, 0x0800, 0))
    packet = struct.pack("=IHHII", 16 + len(body), 0x0300, 0, 0, 0) + body
    error = struct.pack("=IHHII", 36, 2, 0, 0, 0) + struct.pack("=i", -2) + bytes(16)
    errors: list[int] = []

    # Act
    got = list(parse_packets(packet + error, errors))

    # Assert
    assert got == [(5, 42)]
    assert errors == [2]


def test_a_link_holds_each_packet_its_delay_within_the_jitter_seeded_per_link() -> None:
    def draws(delay: float, jitter: float, reorder: float, seed: int, n: int = 5000) -> np.ndarray:
        link = LinkDelay(delay, jitter, reorder, np.random.default_rng([seed, 1, 0, 1]))
        return np.array([link.draw() for _ in range(n)])

    steady = draws(0.05, 0.0, 0.0, 1)
    jittered = draws(0.05, 0.01, 0.0, 1)
    reordered = draws(0.05, 0.0, 0.25, 1)

    assert (steady == 0.05).all()  # no jitter: every packet the same hold, so arrival order is kept
    assert jittered.min() >= 0.04 and jittered.max() < 0.06  # uniform on [D - J, D + J)
    assert abs(jittered.mean() - 0.05) < 0.0005  # sd of the mean: 0.01 / sqrt(3 * 5000) = 0.00008
    assert 0.22 < (reordered == 0.0).mean() < 0.28  # 25 % skip the delay (sd 0.006)
    assert np.array_equal(jittered, draws(0.05, 0.01, 0.0, 1))
    assert not np.array_equal(jittered, draws(0.05, 0.01, 0.0, 2))


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"apply_with": "tc"}, "network.apply_with='tc': valid values are auto, netem, netfilter"),
        (
            {"apply_with": "netfilter", "duplicate_pct": 1.0},
            'network.duplicate_pct: only netem duplicates packets; set network.apply_with = "auto" or "netem"',
        ),
    ],
)
def test_a_bad_mechanism_fails_with_one_line(network: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_mod.from_dict({"network": network})
    assert message in str(err.value)
