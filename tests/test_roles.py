"""Tests for coordinator.roles."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from coordinator.roles import PLACEMENTS, RolesError, choose_byzantine, dominate

# --- random ----------------------------------------------------------------


def test_random_count_picks_that_many_distinct_ids_in_range() -> None:
    ids = choose_byzantine(16, seed=0, count=5)

    assert len(set(ids)) == 5 and all(0 <= v < 16 for v in ids)


def test_random_result_is_sorted_plain_ints() -> None:
    ids = choose_byzantine(16, seed=0, count=5)

    assert ids == sorted(ids) and all(type(v) is int for v in ids)


def test_random_matches_default_rng_choice() -> None:
    expected = sorted(np.random.default_rng(42).choice(10, size=3, replace=False).tolist())

    assert choose_byzantine(10, seed=42, count=3) == expected


def test_random_fraction_quarter_of_sixteen_is_four() -> None:
    assert len(choose_byzantine(16, seed=0, fraction=0.25)) == 4


def test_random_fraction_rounds_half_up() -> None:
    # 0.25 * 10 = 2.5 -> 3 (Python's round would give 2).
    assert len(choose_byzantine(10, seed=0, fraction=0.25)) == 3


def test_random_fraction_rounds_below_half_down() -> None:
    # 0.2 * 12 = 2.4 -> 2.
    assert len(choose_byzantine(12, seed=0, fraction=0.2)) == 2


def test_neither_count_nor_fraction_means_no_byzantine() -> None:
    assert choose_byzantine(8, seed=0) == []


def test_tiny_fraction_rounding_to_zero_means_no_byzantine() -> None:
    assert choose_byzantine(4, seed=0, fraction=0.1) == []


def test_random_same_seed_gives_same_ids() -> None:
    assert choose_byzantine(32, seed=5, count=8) == choose_byzantine(32, seed=5, count=8)


def test_random_different_seed_gives_different_ids() -> None:
    assert choose_byzantine(32, seed=5, count=8) != choose_byzantine(32, seed=6, count=8)


def test_random_count_of_n_minus_one_leaves_one_honest() -> None:
    assert len(choose_byzantine(16, seed=0, count=15)) == 15


def test_random_count_equal_to_n_is_rejected() -> None:
    with pytest.raises(
        RolesError,
        match=r"byzantine\.count=16 must be less than nodes=16: at least one honest peer",
    ):
        choose_byzantine(16, seed=0, count=16)


def test_random_fraction_giving_all_nodes_is_rejected() -> None:
    # 0.97 * 16 = 15.52 -> 16.
    with pytest.raises(RolesError, match=r"byzantine\.fraction=0\.97 gives 16 Byzantine peers"):
        choose_byzantine(16, seed=0, fraction=0.97)


def test_random_with_nodes_listed_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"only used with byzantine\.placement=explicit"):
        choose_byzantine(8, seed=0, count=2, nodes=[1, 2])


# --- explicit --------------------------------------------------------------


def test_explicit_returns_the_nodes_sorted() -> None:
    assert choose_byzantine(8, seed=0, nodes=[5, 1, 3], placement="explicit") == [1, 3, 5]


def test_explicit_ignores_the_seed() -> None:
    a = choose_byzantine(8, seed=0, nodes=[2, 4], placement="explicit")
    b = choose_byzantine(8, seed=1, nodes=[2, 4], placement="explicit")

    assert a == b == [2, 4]


def test_explicit_accepts_numpy_ints() -> None:
    ids = choose_byzantine(8, seed=0, nodes=np.array([6, 0]), placement="explicit")  # type: ignore[arg-type]

    assert ids == [0, 6] and all(type(v) is int for v in ids)


def test_explicit_empty_list_means_no_byzantine() -> None:
    assert choose_byzantine(8, seed=0, placement="explicit") == []


def test_explicit_with_matching_count_is_accepted() -> None:
    assert choose_byzantine(8, seed=0, count=2, nodes=[0, 7], placement="explicit") == [0, 7]


def test_explicit_with_mismatched_count_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"byzantine\.count=3 disagrees with the 2 ids"):
        choose_byzantine(8, seed=0, count=3, nodes=[0, 7], placement="explicit")


def test_explicit_with_matching_fraction_is_accepted() -> None:
    assert choose_byzantine(8, seed=0, fraction=0.25, nodes=[1, 2], placement="explicit") == [1, 2]


def test_explicit_with_mismatched_fraction_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"byzantine\.fraction=0\.5 with nodes=8 disagrees"):
        choose_byzantine(8, seed=0, fraction=0.5, nodes=[1, 2], placement="explicit")


def test_explicit_out_of_range_id_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"entry 8 is outside 0\.\.7"):
        choose_byzantine(8, seed=0, nodes=[1, 8], placement="explicit")


def test_explicit_negative_id_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"entry -1 is outside 0\.\.7"):
        choose_byzantine(8, seed=0, nodes=[-1], placement="explicit")


@pytest.mark.parametrize("bad", [1.0, "1", True])
def test_explicit_non_integer_id_is_rejected(bad: object) -> None:
    with pytest.raises(RolesError, match="is not an integer node id"):
        choose_byzantine(8, seed=0, nodes=[bad], placement="explicit")  # type: ignore[list-item]


def test_explicit_duplicate_id_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"lists \[3\] more than once"):
        choose_byzantine(8, seed=0, nodes=[3, 1, 3], placement="explicit")


def test_explicit_all_nodes_is_rejected() -> None:
    with pytest.raises(RolesError, match="at least one honest peer is needed"):
        choose_byzantine(3, seed=0, nodes=[0, 1, 2], placement="explicit")


# --- general errors --------------------------------------------------------


def test_negative_count_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"byzantine\.count=-1 must be >= 0"):
        choose_byzantine(8, seed=0, count=-1)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_fraction_outside_zero_one_is_rejected(fraction: float) -> None:
    with pytest.raises(RolesError, match=r"byzantine\.fraction=.* must be in \[0, 1\)"):
        choose_byzantine(8, seed=0, fraction=fraction)


def test_count_and_fraction_together_are_rejected() -> None:
    with pytest.raises(RolesError, match="are both set; set only one of them"):
        choose_byzantine(8, seed=0, count=2, fraction=0.25)


def test_unknown_placement_lists_the_valid_ones() -> None:
    with pytest.raises(RolesError, match="choose one of " + ", ".join(PLACEMENTS)):
        choose_byzantine(8, seed=0, count=2, placement="hubs")


def test_zero_nodes_is_rejected() -> None:
    with pytest.raises(RolesError, match="nodes=0 must be at least 1"):
        choose_byzantine(0, seed=0)


def test_roles_error_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError) as info:
        choose_byzantine(16, seed=0, count=16)

    assert isinstance(info.value, RolesError) and "\n" not in str(info.value)


# --- dominating --------------------------------------------------------------


def _ring(n: int) -> nx.Graph:
    return nx.cycle_graph(n)


def test_dominating_takes_neighbors_of_target_first() -> None:
    graph = nx.random_regular_graph(3, 16, seed=0)
    ids, added = dominate(graph, seed=0, count=2, target=5)

    assert set(ids) < set(graph.neighbors(5)) and len(ids) == 2 and added == []


def test_dominating_attaches_extra_byzantine_peers_to_target() -> None:
    # Ring: peer 0 has neighbors 1 and 9; 4 Byzantine = both neighbors + 2 attached.
    ids, added = dominate(_ring(10), seed=3, count=4, target=0)

    assert {1, 9} <= set(ids) and len(ids) == 4 and 0 not in ids
    assert added == sorted((0, v) for v in set(ids) - {1, 9})


def test_dominating_byzantine_are_the_majority_after_attaching() -> None:
    graph = _ring(10)
    ids, added = dominate(graph, seed=1, count=5, target=4)
    graph.add_edges_from(added)
    around = set(graph.neighbors(4))

    assert around == set(ids)


def test_dominating_not_a_majority_is_rejected_with_the_needed_count() -> None:
    graph = nx.complete_graph(8)  # target has 7 neighbors: 4 needed
    with pytest.raises(RolesError, match=r"raise byzantine.count to at least 4"):
        dominate(graph, seed=0, count=3, target=0)


def test_dominating_target_outside_the_graph_is_rejected() -> None:
    with pytest.raises(RolesError, match=r"byzantine.target 12 is outside 0..9"):
        dominate(_ring(10), seed=0, count=2, target=12)


def test_dominating_through_choose_byzantine_is_seeded() -> None:
    graph = _ring(12)
    a = choose_byzantine(12, seed=7, count=3, placement="dominating", graph=graph, target=6)
    b = choose_byzantine(12, seed=7, count=3, placement="dominating", graph=graph, target=6)

    assert a == b and {5, 7} <= set(a) and 6 not in a


def test_dominating_plan_adds_the_edges_and_surrounds_the_target() -> None:
    from coordinator.plan import build_plan
    from protocol.config import from_dict

    cfg = from_dict(
        {
            "nodes": 10,
            "rounds": 1,
            "topology": {"kind": "ring"},
            "data": {"dataset": "synthetic", "synthetic_size": 200},
            "model": {"name": "logreg"},
            "byzantine": {"count": 4, "placement": "dominating", "target": 2, "attack": "gaussian"},
        }
    )
    plan = build_plan(cfg)
    around = set(plan.graph.neighbors(2))

    assert around == set(plan.byzantine) and len(around) == 4


# --- honest_connected -------------------------------------------------------------


def test_honest_connected_keeps_the_honest_peers_a_connected_block_of_a_path() -> None:
    # path 0-1-2-3-4 with 2 Byzantine: the honest triple must be contiguous, so the
    # Byzantine pair is {3, 4}, {0, 4} or {0, 1}
    for seed in range(10):
        ids = choose_byzantine(5, seed=seed, count=2, placement="honest_connected", graph=nx.path_graph(5))

        assert ids in ([3, 4], [0, 4], [0, 1])


def test_honest_connected_holds_where_random_placement_breaks_it() -> None:
    # 10 peers, 4-regular, 60 % Byzantine (DFL-Dual's default): with seed 1 the random
    # placement leaves an honest peer with no honest neighbor; honest_connected never does
    graph = nx.random_regular_graph(4, 10, seed=1)

    def connected(ids: list[int]) -> bool:
        return nx.is_connected(graph.subgraph(sorted(set(range(10)) - set(ids))))

    broken = [s for s in range(20) if not connected(choose_byzantine(10, seed=s, count=6))]
    assert broken  # random placement disconnects the honest peers for some seeds

    for seed in broken:
        ids = choose_byzantine(10, seed=seed, count=6, placement="honest_connected", graph=graph)

        assert len(ids) == 6 and connected(ids)


def test_honest_connected_with_one_honest_peer_is_an_error_naming_the_limit() -> None:
    with pytest.raises(RolesError, match="use at most 3 Byzantine peers"):
        choose_byzantine(5, seed=0, count=4, placement="honest_connected", graph=nx.path_graph(5))
