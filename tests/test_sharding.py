"""Tests for coordinator.sharding."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.sharding import SPLITS, ShardingError, label_histogram, make_shards


def _labels(num_classes: int, per_class: int) -> np.ndarray:
    """Labels 0,0,...,1,1,...: ``per_class`` samples of each class."""
    return np.repeat(np.arange(num_classes), per_class)


def _is_partition(shards: list[np.ndarray], size: int) -> bool:
    joined = np.concatenate(shards)
    return len(joined) == size and np.array_equal(np.sort(joined), np.arange(size))


# --- iid -------------------------------------------------------------------


def test_iid_gives_each_of_four_nodes_25_of_100() -> None:
    shards = make_shards(_labels(10, 10), 4, split="iid", seed=0)

    assert [len(s) for s in shards] == [25, 25, 25, 25]


def test_iid_partitions_the_index_set() -> None:
    shards = make_shards(_labels(10, 10), 4, split="iid", seed=0)

    assert _is_partition(shards, 100)


def test_iid_uneven_sizes_differ_by_at_most_one() -> None:
    shards = make_shards(_labels(2, 5), 3, split="iid", seed=0)

    assert [len(s) for s in shards] == [4, 3, 3]


def test_iid_shards_are_sorted_int64() -> None:
    shards = make_shards(_labels(10, 10), 4, split="iid", seed=0)

    assert all(s.dtype == np.int64 and np.all(np.diff(s) > 0) for s in shards)


def test_iid_one_node_gets_everything() -> None:
    shards = make_shards(_labels(3, 2), 1, split="iid", seed=0)

    assert shards[0].tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("labels", "nodes", "split"),
    [(_labels(10, 10), 4, "iid"), (_labels(10, 50), 5, "dirichlet"), (_labels(10, 20), 5, "shards")],
)
def test_same_seed_gives_same_shards_and_another_seed_other_shards(labels: np.ndarray, nodes: int, split: str) -> None:
    a = make_shards(labels, nodes, split=split, seed=3)
    again = make_shards(labels, nodes, split=split, seed=3)
    other = make_shards(labels, nodes, split=split, seed=4)

    assert all(np.array_equal(x, y) for x, y in zip(a, again))
    assert not all(np.array_equal(x, y) for x, y in zip(a, other))


# --- dirichlet -------------------------------------------------------------


def test_dirichlet_partitions_the_index_set() -> None:
    shards = make_shards(_labels(10, 50), 5, split="dirichlet", seed=0, alpha=0.5)

    assert _is_partition(shards, 500)


def test_dirichlet_gives_every_node_min_samples() -> None:
    shards = make_shards(_labels(10, 50), 5, split="dirichlet", seed=0, alpha=0.5, min_samples=20)

    assert min(len(s) for s in shards) >= 20


def test_dirichlet_small_alpha_is_more_skewed_than_large_alpha() -> None:
    labels = _labels(10, 100)

    def classes_per_node(alpha: float) -> float:
        shards = make_shards(labels, 5, split="dirichlet", seed=1, alpha=alpha)
        return float(np.mean([len(np.unique(labels[s])) for s in shards]))

    assert classes_per_node(0.05) < classes_per_node(100.0) == 10.0


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_dirichlet_with_bad_alpha_is_rejected(alpha: float) -> None:
    with pytest.raises(ShardingError, match=r"data\.alpha=.* must be > 0"):
        make_shards(_labels(2, 5), 2, split="dirichlet", seed=0, alpha=alpha)


def test_dirichlet_impossible_min_samples_is_rejected() -> None:
    with pytest.raises(ShardingError, match=r"data\.min_samples=6 is impossible with nodes=2"):
        make_shards(_labels(2, 5), 2, split="dirichlet", seed=0, min_samples=6)


def test_dirichlet_that_never_meets_min_samples_is_rejected() -> None:
    # 10 samples over 2 nodes with tiny alpha: nearly always one node gets all.
    with pytest.raises(ShardingError, match="never gave every node 5 samples in 1000 tries"):
        make_shards(_labels(1, 10), 2, split="dirichlet", seed=0, alpha=1e-4, min_samples=5)


# --- shards (pathological) -------------------------------------------------


def test_shards_give_each_node_two_whole_classes() -> None:
    # 4 classes x 10 samples, 2 nodes x 2 shards: each shard is exactly one class.
    labels = _labels(4, 10)

    shards = make_shards(labels, 2, split="shards", seed=0, shards_per_node=2)

    assert sorted(label_histogram(labels, s, 4).count(10) for s in shards) == [2, 2]


def test_shards_partition_the_index_set() -> None:
    shards = make_shards(_labels(10, 20), 5, split="shards", seed=0, shards_per_node=2)

    assert _is_partition(shards, 200)


def test_shards_node_sizes_are_shards_per_node_times_shard_size() -> None:
    shards = make_shards(_labels(10, 20), 5, split="shards", seed=0, shards_per_node=2)

    assert [len(s) for s in shards] == [40, 40, 40, 40, 40]


def test_shards_per_node_below_one_is_rejected() -> None:
    with pytest.raises(ShardingError, match=r"data\.shards_per_node=0 must be at least 1"):
        make_shards(_labels(2, 5), 2, split="shards", seed=0, shards_per_node=0)


def test_more_shards_than_samples_is_rejected() -> None:
    with pytest.raises(ShardingError, match="12 shards exceed the 10 training samples"):
        make_shards(_labels(2, 5), 4, split="shards", seed=0, shards_per_node=3)


# --- samples_per_node ------------------------------------------------------


def test_samples_per_node_caps_each_node() -> None:
    shards = make_shards(_labels(10, 10), 4, split="iid", seed=0, samples_per_node=10)

    assert [len(s) for s in shards] == [10, 10, 10, 10]


def test_samples_per_node_keeps_a_subset_of_the_uncapped_shard() -> None:
    full = make_shards(_labels(10, 10), 4, split="iid", seed=0)
    capped = make_shards(_labels(10, 10), 4, split="iid", seed=0, samples_per_node=10)

    assert all(np.isin(c, f).all() for c, f in zip(capped, full))


def test_samples_per_node_above_shard_size_keeps_everything() -> None:
    shards = make_shards(_labels(10, 10), 4, split="iid", seed=0, samples_per_node=30)

    assert [len(s) for s in shards] == [25, 25, 25, 25]


def test_negative_samples_per_node_is_rejected() -> None:
    with pytest.raises(ShardingError, match=r"data\.samples_per_node=-1 must be >= 0"):
        make_shards(_labels(2, 5), 2, split="iid", seed=0, samples_per_node=-1)


# --- general errors --------------------------------------------------------


def test_unknown_split_lists_the_valid_splits() -> None:
    with pytest.raises(ShardingError, match="choose one of " + ", ".join(SPLITS)):
        make_shards(_labels(2, 5), 2, split="zipf", seed=0)


def test_more_nodes_than_samples_is_rejected() -> None:
    with pytest.raises(ShardingError, match="nodes=11 exceeds the 10 training samples"):
        make_shards(_labels(2, 5), 11, split="iid", seed=0)


def test_zero_nodes_is_rejected() -> None:
    with pytest.raises(ShardingError, match="nodes=0 must be at least 1"):
        make_shards(_labels(2, 5), 0, split="iid", seed=0)


def test_non_integer_labels_are_rejected() -> None:
    with pytest.raises(ShardingError, match="labels must be a 1-D integer array"):
        make_shards(np.zeros(10), 2, split="iid", seed=0)


def test_two_dimensional_labels_are_rejected() -> None:
    with pytest.raises(ShardingError, match=r"got shape \(2, 5\)"):
        make_shards(np.zeros((2, 5), dtype=int), 2, split="iid", seed=0)


def test_sharding_error_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError) as info:
        make_shards(_labels(2, 5), 11, split="iid", seed=0)

    assert isinstance(info.value, ShardingError) and "\n" not in str(info.value)


# --- label_histogram -------------------------------------------------------


def test_label_histogram_counts_each_class() -> None:
    labels = np.array([0, 1, 1, 2, 2, 2])

    assert label_histogram(labels, np.array([1, 3, 4, 5]), 4) == [0, 1, 3, 0]


def test_label_histogram_of_empty_shard_is_zeros() -> None:
    assert label_histogram(np.array([0, 1]), np.array([], dtype=np.int64), 3) == [0, 0, 0]


def test_label_histogram_with_too_few_classes_is_rejected() -> None:
    with pytest.raises(ShardingError, match=r"labels outside 0\.\.1"):
        label_histogram(np.array([0, 1, 2]), np.array([0, 2]), 2)


# --- fltrust (Cao et al. 2021 sample-allocation bias) ------------------------


def test_fltrust_partitions_the_index_set() -> None:
    labels = _labels(10, 200)
    shards = make_shards(labels, 10, split="fltrust", seed=0, p=0.8)

    assert _is_partition(shards, len(labels))


def test_fltrust_p_is_the_home_group_share() -> None:
    # 10 nodes, 10 classes: node i is group i and class i's home; with p = 0.8 about
    # 80 % of every class lands on its home node, the rest spreads evenly.
    labels = _labels(10, 2000)
    shards = make_shards(labels, 10, split="fltrust", seed=3, p=0.8)

    home_share = [float(np.mean(labels[s] == i)) for i, s in enumerate(shards)]
    # Node i holds ~1600 home samples and ~9 * 2000 * 0.2 / 9 = 400 others.
    assert all(0.77 < share < 0.83 for share in home_share)


def test_fltrust_p_one_gives_each_group_only_its_home_classes() -> None:
    # 4 nodes, 10 classes: groups = 4, class l's home is group l mod 4.
    labels = _labels(10, 50)
    shards = make_shards(labels, 4, split="fltrust", seed=1, p=1.0)

    assert [sorted(set(labels[s].tolist())) for s in shards] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]


def test_fltrust_two_nodes_per_group_share_the_home_classes() -> None:
    # 20 nodes, 10 classes: nodes g and g + 10 form group g.
    labels = _labels(10, 400)
    shards = make_shards(labels, 20, split="fltrust", seed=2, p=1.0)

    assert set(labels[shards[3]].tolist()) == {3} == set(labels[shards[13]].tolist())
    assert abs(len(shards[3]) - len(shards[13])) < 80


def test_fltrust_same_seed_same_shards_and_seed_matters() -> None:
    labels = _labels(10, 100)
    a = make_shards(labels, 10, split="fltrust", seed=4, p=0.5)
    b = make_shards(labels, 10, split="fltrust", seed=4, p=0.5)
    c = make_shards(labels, 10, split="fltrust", seed=5, p=0.5)

    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_fltrust_bad_p_is_rejected(p: float) -> None:
    with pytest.raises(ShardingError, match=r"data\.p="):
        make_shards(_labels(10, 10), 4, split="fltrust", seed=0, p=p)
