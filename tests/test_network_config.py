"""``[network]``: config checks, per-link resolution and the tc rules (no processes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launch.net.links import resolve_links
from launch.net.shaper import egress_commands, netem_args
from protocol import config as config_mod
from protocol.errors import ConfigError
from protocol.network_config import PROFILES, Link, NetworkConfig, check_network, shaped

EDGES = [(0, 1), (1, 2), (2, 3), (0, 3)]


def _cfg(**network: object) -> NetworkConfig:
    return config_mod.from_dict({"network": network}).network


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"profile": "satellite"}, "network.profile='satellite': valid profiles are lan, wan, mobile"),
        ({"profile": "wan", "delay_ms": 5.0}, "network.delay_ms: set either network.profile='wan' or the link fields"),
        ({"delay_ms": 5.0, "jitter_ms": 6.0}, "network.jitter_ms=6.0: must not exceed delay_ms=5.0"),
        ({"loss_pct": 101.0}, "network.loss_pct=101.0: a percentage, must be in [0, 100]"),
        ({"rate_mbit": -1.0}, "network.rate_mbit=-1.0: must be >= 0"),
        ({"reorder_pct": 5.0}, "network.reorder_pct=5.0: reordering needs a delay_ms > 0"),
        ({"links": "mix"}, 'network.links = "mix" needs network.mix'),
        ({"links": "mix", "mix": {"lan": 1, "fiber": 1}}, "network.mix.fiber: unknown profile"),
        ({"links": "mix", "mix": {"lan": -1}}, "network.mix.lan=-1: a weight must be a number >= 0"),
        ({"links": "file"}, 'network.links = "file" needs network.link_file'),
        ({"mix": {"lan": 1}}, 'network.mix is used only with network.links = "mix"'),
        ({"links": "star"}, "network.links='star': valid values are default, mix, file"),
    ],
)
def test_bad_network_fields_fail_with_one_line_naming_the_field(network: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(**network)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_an_empty_section_leaves_the_run_on_the_loopback() -> None:
    assert not shaped(NetworkConfig())
    assert shaped(NetworkConfig(rate_mbit=10.0))
    assert shaped(NetworkConfig(isolate=True))
    assert shaped(_cfg(profile="lan"))


def test_a_profile_is_the_default_link_of_every_edge() -> None:
    links = resolve_links(_cfg(profile="wan"), EDGES, seed=0, nodes=4)
    assert links == {e: Link(delay_ms=20.0, rate_mbit=10.24) for e in EDGES}


def test_mix_draws_one_profile_per_edge_from_the_seed() -> None:
    net = _cfg(links="mix", mix={"lan": 1, "mobile": 1}, rate_mbit=5.0)
    edges = [(i, i + 1) for i in range(200)]
    a = resolve_links(net, edges, seed=3, nodes=201)
    assert a == resolve_links(net, edges, seed=3, nodes=201)  # same seed, same links
    assert a != resolve_links(net, edges, seed=4, nodes=201)
    assert set(a.values()) == {PROFILES["lan"], PROFILES["mobile"]}
    share = sum(link == PROFILES["lan"] for link in a.values()) / len(a)
    assert 0.4 < share < 0.6  # weights 1:1 over 200 draws (binomial sd 0.035)


def test_a_link_file_overrides_the_links_it_lists(tmp_path: Path) -> None:
    path = tmp_path / "links.csv"
    path.write_text("# per-link values\nu,v,rate_mbit,delay_ms\n1,0,2.5,0\n3,2,100,10\n")
    links = resolve_links(_cfg(links="file", link_file=str(path), rate_mbit=50.0), EDGES, seed=0, nodes=4)
    assert links[(0, 1)] == Link(rate_mbit=2.5)
    assert links[(2, 3)] == Link(rate_mbit=100.0, delay_ms=10.0)
    assert links[(1, 2)] == links[(0, 3)] == Link(rate_mbit=50.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,rate_mbit\n", "the header must be u,v followed by link fields"),
        ("u,v,speed\n", "unknown column 'speed'"),
        ("u,v,rate_mbit\n0,2,5\n", "link 0,2 is not an edge of the graph"),
        ("u,v,rate_mbit\n0,9,5\n", "row 2: 0,9 is not a link between two of the 4 nodes"),
        ("u,v,rate_mbit\n0,1,fast\n", "row 2: ids must be integers and link values numbers"),
        ("u,v,rate_mbit\n0,1,5\n1,0,6\n", "row 3: link 0,1 is listed twice"),
        ("u,v,loss_pct\n0,1,200\n", "loss_pct=200.0: a percentage"),
    ],
)
def test_a_bad_link_file_fails_with_the_file_and_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "links.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve_links(_cfg(links="file", link_file=str(path)), EDGES, seed=0, nodes=4)
    assert message in str(err.value)


def test_egress_rules_give_each_neighbour_a_class_filter_and_netem_leaf() -> None:
    cmds = egress_commands(
        {
            1: ("10.78.0.11", Link(rate_mbit=8.0)),
            5: ("10.78.0.15", Link(delay_ms=50.0, jitter_ms=5.0, loss_pct=1.0)),
            7: ("10.78.0.17", Link()),  # ideal: no rule, its packets leave unshaped
        }
    )
    assert cmds == [
        "qdisc add dev eth0 root handle 1: htb default 0",
        "class add dev eth0 parent 1: classid 1:b htb rate 8.0mbit ceil 8.0mbit",
        "filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.78.0.11/32 flowid 1:b",
        "class add dev eth0 parent 1: classid 1:f htb rate 100000.0mbit ceil 100000.0mbit",
        "qdisc add dev eth0 parent 1:f handle f: netem delay 50.0ms 5.0ms loss 1.0%",
        "filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.78.0.15/32 flowid 1:f",
    ]
    assert (
        netem_args(Link(delay_ms=1.0, reorder_pct=25.0, duplicate_pct=1.0))
        == "delay 1.0ms reorder 25.0% duplicate 1.0%"
    )


def test_check_network_accepts_every_profile() -> None:
    for name in PROFILES:
        check_network(NetworkConfig(profile=name))


def test_a_shaped_run_is_refused_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from launch.net.namespaces import NetworkError
    from launch.net.session import preflight

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetworkError) as err:
        preflight()
    assert str(err.value).startswith("network: link conditions need root")


def test_link_counters_and_rtts_are_read_from_tc_and_ss_output() -> None:
    from launch.net.stats import class_counters, connection_retrans, connection_rtts

    tc = (
        "class htb 1:b root prio 0 rate 8Mbit ceil 8Mbit burst 1600b cburst 1600b \n"
        " Sent 107010 bytes 76 pkt (dropped 0, overlimits 12 requeues 0) \n"
        " backlog 0b 0p requeues 0\n"
        "class htb 1:c root prio 0 rate 8Mbit ceil 8Mbit burst 1600b cburst 1600b \n"
        " Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) \n"
    )
    ss = (
        "0      0      10.78.3.10:40112 10.78.3.11:37019\n"
        "\t cubic wscale:7,7 rto:252 rtt:48.832/12.1 ato:40 mss:1448 retrans:0/17 bytes_retrans:24616\n"
        "0      0      10.78.3.10:40113 10.78.3.1:5555\n"
        "\t cubic wscale:7,7 rto:204 rtt:0.05/0.025 mss:1448\n"
    )
    assert class_counters(tc) == {"1:b": (107010, 76), "1:c": (0, 0)}
    assert connection_rtts(ss) == {("10.78.3.10", "10.78.3.11:37019"): 48.832, ("10.78.3.10", "10.78.3.1:5555"): 0.05}
    assert connection_retrans(ss) == {("10.78.3.10", "10.78.3.11:37019"): 17, ("10.78.3.10", "10.78.3.1:5555"): 0}
