"""Tests for coordinator.topology."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from coordinator.topology import (
    TOPOLOGIES,
    TopologyError,
    build_topology,
    graph_to_json,
    neighbors_of,
)


def _edges(g: nx.Graph) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in g.edges()}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edges.txt"
    path.write_text(text)
    return path


# --- ring / complete -------------------------------------------------------


def test_ring_of_five_has_the_cycle_edges() -> None:
    g = build_topology("ring", 5, seed=0)

    assert _edges(g) == {(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)}


def test_complete_on_four_nodes_has_all_six_pairs() -> None:
    g = build_topology("complete", 4, seed=0)

    assert _edges(g) == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}


def test_complete_on_two_nodes_is_one_edge() -> None:
    g = build_topology("complete", 2, seed=0)

    assert _edges(g) == {(0, 1)}


def test_nodes_are_plain_ints_zero_to_n_minus_one() -> None:
    g = build_topology("erdos_renyi", 10, seed=3, p=0.5)

    assert list(g.nodes()) == list(range(10))
    assert all(type(v) is int for v in g.nodes())


def test_ring_with_two_nodes_is_rejected() -> None:
    with pytest.raises(TopologyError, match="ring needs nodes >= 3"):
        build_topology("ring", 2, seed=0)


# --- regular ---------------------------------------------------------------


def test_regular_gives_every_node_the_degree() -> None:
    g = build_topology("regular", 16, seed=1, degree=3)

    assert sorted(d for _, d in g.degree()) == [3] * 16


def test_regular_is_connected_with_sixteen_nodes() -> None:
    g = build_topology("regular", 16, seed=1, degree=3)

    assert nx.is_connected(g) and g.number_of_nodes() == 16


def test_regular_degree_two_comes_out_as_one_cycle() -> None:
    g = build_topology("regular", 12, seed=5, degree=2)

    assert nx.is_connected(g) and g.number_of_edges() == 12


@pytest.mark.parametrize(("kind", "nodes", "params"), [("regular", 16, {"degree": 3}), ("erdos_renyi", 20, {"p": 0.3})])
def test_same_seed_gives_same_graph_and_another_seed_another(kind: str, nodes: int, params: dict[str, Any]) -> None:
    a = build_topology(kind, nodes, seed=7, **params)
    again = build_topology(kind, nodes, seed=7, **params)
    other = build_topology(kind, nodes, seed=8, **params)

    assert _edges(a) == _edges(again)
    assert _edges(a) != _edges(other)


def test_regular_with_odd_degree_sum_is_rejected() -> None:
    with pytest.raises(TopologyError, match=r"topology\.degree=3 is impossible with nodes=5"):
        build_topology("regular", 5, seed=0, degree=3)


def test_regular_with_degree_equal_to_n_is_rejected() -> None:
    with pytest.raises(TopologyError, match=r"topology\.degree=4 is impossible with nodes=4"):
        build_topology("regular", 4, seed=0, degree=4)


def test_regular_with_degree_zero_is_rejected() -> None:
    with pytest.raises(TopologyError, match=r"topology\.degree=0 is impossible"):
        build_topology("regular", 4, seed=0, degree=0)


def test_regular_with_degree_one_and_many_nodes_is_rejected() -> None:
    with pytest.raises(TopologyError, match="can never be connected"):
        build_topology("regular", 6, seed=0, degree=1)


def test_regular_with_degree_one_on_two_nodes_is_one_edge() -> None:
    g = build_topology("regular", 2, seed=0, degree=1)

    assert _edges(g) == {(0, 1)}


# --- erdos_renyi -----------------------------------------------------------


def test_erdos_renyi_is_connected() -> None:
    g = build_topology("erdos_renyi", 20, seed=2, p=0.2)

    assert nx.is_connected(g) and g.number_of_nodes() == 20


def test_erdos_renyi_with_p_one_is_complete() -> None:
    g = build_topology("erdos_renyi", 5, seed=2, p=1.0)

    assert g.number_of_edges() == 10


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5])
def test_erdos_renyi_with_p_outside_range_is_rejected(p: float) -> None:
    with pytest.raises(TopologyError, match=r"topology\.p=.* must be in \(0, 1\]"):
        build_topology("erdos_renyi", 10, seed=0, p=p)


def test_erdos_renyi_that_never_connects_is_rejected() -> None:
    with pytest.raises(TopologyError, match=r"never connected in 5 tries; raise topology\.p"):
        build_topology("erdos_renyi", 50, seed=0, p=0.001, max_tries=5)


# --- small_world -----------------------------------------------------------


def test_small_world_without_rewiring_is_the_ring_lattice() -> None:
    g = build_topology("small_world", 6, seed=0, k=2, rewire=0.0)

    assert _edges(g) == {(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5)}


def test_small_world_keeps_n_times_k_over_two_edges() -> None:
    g = build_topology("small_world", 20, seed=3, k=4, rewire=0.3)

    assert g.number_of_edges() == 40 and nx.is_connected(g)


def test_small_world_same_seed_gives_same_graph() -> None:
    a = build_topology("small_world", 20, seed=3, k=4, rewire=0.3)
    b = build_topology("small_world", 20, seed=3, k=4, rewire=0.3)

    assert _edges(a) == _edges(b)


def test_small_world_different_seed_gives_different_graph() -> None:
    a = build_topology("small_world", 20, seed=3, k=4, rewire=0.3)
    b = build_topology("small_world", 20, seed=4, k=4, rewire=0.3)

    assert _edges(a) != _edges(b)


@pytest.mark.parametrize("k", [0, 3, 6, 8])
def test_small_world_with_bad_k_is_rejected(k: int) -> None:
    with pytest.raises(TopologyError, match=rf"topology\.k={k} is invalid with nodes=6"):
        build_topology("small_world", 6, seed=0, k=k)


@pytest.mark.parametrize("rewire", [-0.1, 1.1])
def test_small_world_with_rewire_outside_range_is_rejected(rewire: float) -> None:
    with pytest.raises(TopologyError, match=r"topology\.rewire=.* must be in \[0, 1\]"):
        build_topology("small_world", 10, seed=0, k=4, rewire=rewire)


# --- edge_list -------------------------------------------------------------


def test_edge_list_reads_edges_and_skips_comments_and_blanks(tmp_path: Path) -> None:
    path = _write(tmp_path, "# a path\n0 1\n\n1 2  # middle\n2 3\n")

    g = build_topology("edge_list", 4, seed=0, edge_list=path)

    assert _edges(g) == {(0, 1), (1, 2), (2, 3)}


def test_edge_list_accepts_a_string_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "1 0\n")

    g = build_topology("edge_list", 2, seed=0, edge_list=str(path))

    assert _edges(g) == {(0, 1)}


def test_edge_list_without_a_file_is_rejected() -> None:
    with pytest.raises(TopologyError, match=r"set topology\.edge_list"):
        build_topology("edge_list", 4, seed=0)


def test_edge_list_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read topology.edge_list"):
        build_topology("edge_list", 4, seed=0, edge_list=tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("text", "nodes", "message"),
    [
        ("0 1\n1 two\n", 3, r"{name}:2: expected two node ids"),
        ("0 1 2\n", 3, r"{name}:1: expected two node ids"),
        ("0 1\n1 2\n2 3\n", 3, r"{name}:3: node id 3 is outside 0\.\.2"),
        ("0 1\n1 1\n", 2, r"{name}:2: self-loop 1-1"),
        ("0 1\n1 2\n", 4, r"nodes \[3\] appear in no edge"),
        ("0 1\n2 3\n", 4, "2 disconnected parts"),
    ],
    ids=["bad-line", "three-fields", "node-out-of-range", "self-loop", "isolated-node", "disconnected"],
)
def test_edge_list_error_names_the_problem(tmp_path: Path, text: str, nodes: int, message: str) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(TopologyError, match=message.format(name=path.name)):
        build_topology("edge_list", nodes, seed=0, edge_list=path)


# --- general errors --------------------------------------------------------


def test_unknown_kind_lists_the_valid_kinds() -> None:
    with pytest.raises(TopologyError, match="choose one of " + ", ".join(TOPOLOGIES)):
        build_topology("star", 5, seed=0)


def test_fewer_than_two_nodes_is_rejected() -> None:
    with pytest.raises(TopologyError, match="nodes=1 is too few"):
        build_topology("complete", 1, seed=0)


def test_max_tries_below_one_is_rejected() -> None:
    with pytest.raises(TopologyError, match=r"topology\.max_tries=0 must be at least 1"):
        build_topology("regular", 8, seed=0, max_tries=0)


def test_error_messages_are_one_line() -> None:
    with pytest.raises(TopologyError) as info:
        build_topology("regular", 5, seed=0, degree=3)

    assert "\n" not in str(info.value)


def test_topology_error_is_a_value_error() -> None:
    assert issubclass(TopologyError, ValueError)


# --- helpers ---------------------------------------------------------------


def test_graph_to_json_sorts_nodes_and_orients_edges() -> None:
    g = nx.Graph()
    g.add_edges_from([(2, 0), (1, 0), (2, 1)])

    data = graph_to_json(g)

    assert data == {"nodes": [0, 1, 2], "edges": [[0, 1], [0, 2], [1, 2]]}


def test_graph_to_json_of_a_ring() -> None:
    g = build_topology("ring", 4, seed=0)

    assert graph_to_json(g)["edges"] == [[0, 1], [0, 3], [1, 2], [2, 3]]


def test_neighbors_of_is_sorted() -> None:
    g = build_topology("ring", 5, seed=0)

    assert neighbors_of(g, 0) == [1, 4]


def test_neighbors_of_unknown_node_is_rejected() -> None:
    g = build_topology("ring", 5, seed=0)

    with pytest.raises(TopologyError, match="node 9 is not in the topology"):
        neighbors_of(g, 9)
