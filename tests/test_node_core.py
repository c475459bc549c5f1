"""Tests for peer.core.NodeCore (I/O free) on a tiny synthetic run: 3 peers, complete graph,
logistic regression (784*10 + 10 = 7850 parameters) cut into 8 chunks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from coordinator.plan import Plan, build_plan
from peer import data as datasets
from peer.chunking import flatten
from peer.core import NodeCore, Payloads, model_digest
from peer.data import test_subset as first_test_samples
from protocol.assignment import Role
from protocol.codec import ProtocolError
from protocol.config import RunConfig, from_dict

# 7850 = 8 * 981 + 2: the first two chunks get one extra element.
SIZES = [982, 982, 981, 981, 981, 981, 981, 981]
K = 4


@pytest.fixture(scope="module")
def cfg() -> RunConfig:
    return from_dict(
        {
            "name": "core-test",
            "seed": 5,
            "nodes": 3,
            "rounds": 3,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "root": "", "synthetic_size": 60, "test_samples": 40},
            "model": {"name": "logreg"},
            "train": {"local_steps": 2, "batch_size": 8, "lr": 0.1},
            "chunks": {"count": 8, "per_neighbor": K},
            "eval": {"every": 5},
        }
    )


@pytest.fixture(scope="module")
def plan(cfg: RunConfig) -> Plan:
    return build_plan(cfg)


@pytest.fixture(scope="module")
def data(cfg: RunConfig):
    d = cfg.data
    train = datasets.load(d.dataset, None, train=True, synthetic_size=d.synthetic_size, seed=cfg.seed)
    test = datasets.load(d.dataset, None, train=False, synthetic_size=d.synthetic_size, seed=cfg.seed)
    return train, first_test_samples(test, d.test_samples)


@pytest.fixture
def make_core(plan: Plan, data):
    train, test_set = data

    def make(node: int, **changes) -> NodeCore:
        assignment = dataclasses.replace(plan.assignment(node), **changes)
        return NodeCore(assignment, train_data=train, test_set=test_set)

    return make


def _run_round(cores: list[NodeCore], round_: int) -> list[str]:
    """One round with full delivery; returns each core's digest."""
    outgoing = {core.node: core.begin_round(round_) for core in cores}
    results = []
    for core in cores:
        received: Payloads = {j: outgoing[j][core.node] for j in outgoing if core.node in outgoing[j]}
        results.append(core.end_round(round_, received).metrics["digest"])
    return results


# ----------------------------------------------------------------------------- setup


def test_core_keeps_no_reference_to_the_whole_split(plan: Plan, cfg: RunConfig) -> None:
    """A peer drops the preloaded splits once its core is built (peer/runtime.py), which
    unmaps them only if the core holds its shard, not the split it was cut from."""
    import gc
    import weakref

    d = cfg.data
    # a copy of the split object: the module's fixture and the data cache keep the original
    train = dataclasses.replace(
        datasets.load(d.dataset, None, train=True, synthetic_size=d.synthetic_size, seed=cfg.seed)
    )
    test = datasets.load(d.dataset, None, train=False, synthetic_size=d.synthetic_size, seed=cfg.seed)
    images = weakref.ref(train)
    core = NodeCore(plan.assignment(0), train_data=train, test_set=first_test_samples(test, d.test_samples))
    del train
    gc.collect()
    assert images() is None
    assert core.trainer.images.shape[0] == len(plan.assignment(0).shard)


def test_plan_chunk_sizes_match_hand_computed_bounds(plan: Plan) -> None:
    assert plan.chunk_sizes == SIZES


def test_core_bounds_match_the_plan(make_core) -> None:
    core = make_core(0)

    assert [hi - lo for lo, hi in core.bounds] == SIZES and core.vector.size == 7850


def test_assigned_chunk_sizes_that_disagree_with_the_model_are_rejected(make_core) -> None:
    with pytest.raises(ValueError, match="differ"):
        make_core(0, chunk_sizes=[7850 // 2, 7850 // 2])


# ----------------------------------------------------------------------------- begin_round


def test_begin_round_sends_only_to_neighbors(make_core) -> None:
    core = make_core(1)

    out = core.begin_round(1)

    assert sorted(out) == [0, 2]


def test_begin_round_sends_per_neighbor_distinct_chunks(make_core) -> None:
    # policy random: node 0's neighbors 1 and 2 take consecutive windows of K = 4 entries of
    # one permutation of the C = 8 indices, so 2 * 4 = 8 entries: the two windows are
    # disjoint and together hold every index once
    out = make_core(0).begin_round(1)

    first, second = (sorted(out[j]) for j in (1, 2))
    assert len(first) == len(second) == K
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(8))


def test_begin_round_payloads_have_the_chunk_sizes_and_float32(make_core) -> None:
    out = make_core(0).begin_round(1)

    for payload in out.values():
        for c, vec in payload.items():
            assert vec.dtype == np.float32 and vec.shape == (SIZES[c],)


def test_honest_payloads_are_the_trained_chunks(make_core) -> None:
    core = make_core(2)

    out = core.begin_round(1)

    for payload in out.values():
        for c, vec in payload.items():
            lo, hi = core.bounds[c]
            assert np.array_equal(vec, core.vector[lo:hi])


def test_begin_round_trains_the_model(make_core) -> None:
    core = make_core(0)
    before = core.vector.copy()

    core.begin_round(1)

    assert not np.array_equal(core.vector, before)
    assert np.array_equal(flatten(core.model), core.vector)


def test_payloads_cannot_change_the_vector(make_core) -> None:
    # honest payloads are read-only views of the vector (no per-chunk copy)
    core = make_core(0)
    out = core.begin_round(1)
    c, vec = next(iter(out[1].items()))
    lo = core.bounds[c][0]
    original = core.vector[lo]

    with pytest.raises(ValueError):
        vec[0] = original + 1000.0

    assert core.vector[lo] == original


def test_byzantine_gaussian_core_sends_noise_of_the_right_sizes(make_core) -> None:
    core = make_core(0, role=Role(True, "gaussian", {"sigma": 1.0}))

    out = core.begin_round(1)

    for payload in out.values():
        for c, vec in payload.items():
            lo, hi = core.bounds[c]
            assert vec.shape == (SIZES[c],) and not np.array_equal(vec, core.vector[lo:hi])


# ----------------------------------------------------------------------------- end_round


def test_end_round_without_payloads_keeps_the_trained_vector(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    trained = core.vector.copy()

    result = core.end_round(1, {})

    assert np.array_equal(core.vector, trained)
    assert result.metrics["digest"] == model_digest(trained)
    assert (result.metrics["chunks_received"], result.metrics["senders"]) == (0, 0)


def test_end_round_with_copies_of_own_chunks_leaves_vector_unchanged(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    trained = core.vector.copy()
    # One sender per chunk index, so each chunk is (x + x) / 2 = x exactly.
    received = {1: {c: core.chunk(c) for c in range(4)}, 2: {c: core.chunk(c) for c in range(4, 8)}}

    result = core.end_round(1, received)

    assert np.array_equal(core.vector, trained)
    assert (result.metrics["chunks_received"], result.metrics["senders"]) == (8, 2)


def test_end_round_averages_a_received_zero_chunk_with_own(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    trained = core.vector.copy()
    lo, hi = core.bounds[3]

    core.end_round(1, {2: {3: np.zeros(hi - lo, np.float32)}})

    # uniform CDL average of own x and 0 is x / 2 (exact in float32); other chunks untouched
    assert np.array_equal(core.vector[lo:hi], trained[lo:hi] / 2)
    assert np.array_equal(np.delete(core.vector, np.s_[lo:hi]), np.delete(trained, np.s_[lo:hi]))


def test_end_round_loads_the_aggregate_into_the_model(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    lo, hi = core.bounds[0]

    core.end_round(1, {1: {0: np.zeros(hi - lo, np.float32)}})

    assert np.array_equal(flatten(core.model), core.vector)


def test_end_round_does_not_modify_received_arrays(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    payload = np.full(SIZES[5], 3.0, np.float32)

    core.end_round(1, {1: {5: payload}})

    assert np.all(payload == 3.0)


def test_evaluation_only_in_eval_rounds(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    first = core.end_round(1, {})
    core.begin_round(3)
    last = core.end_round(3, {})  # rounds = 3: the last round is always evaluated

    assert "test_accuracy" not in first.metrics
    assert 0.0 <= last.metrics["test_accuracy"] <= 1.0 and "eval_s" in last.timing


def _eval_metrics(make_core, cfg: RunConfig, node: int, **changes) -> dict:
    core = make_core(node, **changes)
    core.begin_round(3)
    return core.end_round(3, {}).metrics  # rounds = 3: evaluated


def test_byzantine_peer_skips_evaluation_by_default(make_core, cfg: RunConfig) -> None:
    metrics = _eval_metrics(make_core, cfg, 0, role=Role(True, "gaussian", {"sigma": 1.0}))

    assert "test_accuracy" not in metrics and "test_loss" not in metrics


def test_byzantine_peer_evaluates_when_eval_byzantine_is_set(make_core, cfg: RunConfig) -> None:
    asked = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, byzantine=True))

    metrics = _eval_metrics(make_core, cfg, 0, role=Role(True, "gaussian", {"sigma": 1.0}), config=asked)

    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_byzantine_peer_evaluates_when_its_defense_uses_evaluations(make_core, cfg: RunConfig) -> None:
    """loss_threshold lowers its threshold from evaluations: skipping them would change
    the Byzantine peer's model, so it evaluates whatever eval.byzantine says."""
    ltd = dataclasses.replace(cfg, defense=dataclasses.replace(cfg.defense, name="loss_threshold"))

    metrics = _eval_metrics(make_core, cfg, 0, role=Role(True, "gaussian", {"sigma": 1.0}), config=ltd)

    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    # and its round record carries the threshold used (theta0 = 0.1 before any drop)
    assert metrics["theta"] == pytest.approx(0.1)
    assert 0 <= metrics["lt_accepted"] <= metrics["lt_compared"]


# ----------------------------------------------------------------------------- check_payload


def _good(core: NodeCore, indices: list[int]) -> list[np.ndarray]:
    return [np.zeros(SIZES[c], np.float32) for c in indices]


def _reason(core: NodeCore, sender: int, indices: list, arrays: list[np.ndarray]) -> str:
    with pytest.raises(ProtocolError) as exc:
        core.check_payload(sender, indices, arrays)
    return exc.value.reason


def test_check_payload_accepts_a_well_formed_payload(make_core) -> None:
    core = make_core(0)

    core.check_payload(1, [0, 7], _good(core, [0, 7]))


def test_check_payload_from_self_is_not_neighbor(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 0, [0], _good(core, [0])) == "not_neighbor"


def test_check_payload_from_unknown_id_is_not_neighbor(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 3, [0], _good(core, [0])) == "not_neighbor"


@pytest.mark.parametrize("index", [8, -1, True, 1.0, "1"])
def test_check_payload_bad_chunk_index(make_core, index) -> None:
    core = make_core(0)

    assert _reason(core, 1, [index], [np.zeros(982, np.float32)]) == "bad_chunk_index"


def test_check_payload_wrong_length_is_bad_chunk_size(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [2], [np.zeros(982, np.float32)]) == "bad_chunk_size"  # chunk 2 has 981


def test_check_payload_wrong_dtype_is_bad_chunk_size(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [0], [np.zeros(982, np.float64)]) == "bad_chunk_size"


def test_check_payload_two_dimensional_is_bad_chunk_size(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [0], [np.zeros((2, 491), np.float32)]) == "bad_chunk_size"


def test_check_payload_duplicate_index_is_bad_chunks(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [0, 0], _good(core, [0, 0])) == "bad_chunks"


def test_check_payload_count_mismatch_is_bad_chunks(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [0, 1], _good(core, [0])) == "bad_chunks"


def test_check_payload_unhashable_index_is_a_protocol_error(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [[0]], _good(core, [0])) == "bad_chunk_index"


# ----------------------------------------------------------------------------- determinism


def test_two_cores_from_the_same_assignment_agree_after_a_round(make_core) -> None:
    a, b = make_core(1), make_core(1)

    out_a, out_b = a.begin_round(1), b.begin_round(1)
    res_a, res_b = a.end_round(1, {}), b.end_round(1, {})

    assert res_a.metrics["digest"] == res_b.metrics["digest"]
    assert all(np.array_equal(out_a[j][c], out_b[j][c]) for j in out_a for c in out_a[j])


def test_two_full_runs_of_the_network_give_identical_digests(make_core) -> None:
    first = [make_core(i) for i in range(3)]
    second = [make_core(i) for i in range(3)]

    digests_1 = [_run_round(first, 1), _run_round(first, 2)]
    digests_2 = [_run_round(second, 1), _run_round(second, 2)]

    assert digests_1 == digests_2


def test_all_peers_start_from_the_same_model(make_core) -> None:
    cores = [make_core(i) for i in range(3)]

    assert len({model_digest(core.vector) for core in cores}) == 1


def test_model_digest_is_sixteen_hex_characters_of_sha256() -> None:
    import hashlib

    vec = np.array([1.0, 2.0], dtype=np.float32)

    assert model_digest(vec) == hashlib.sha256(vec.astype("<f4").tobytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loss hook


def test_loss_with_own_chunk_is_the_own_model_loss_at_every_index(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    x, y = core.loss_batch
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(core.model(x), y).item())

    losses = [core.loss_with_chunk(c, torch.from_numpy(core.chunk(c))) for c in range(len(core.bounds))]

    assert losses == [expected] * len(core.bounds)


def test_loss_with_a_changed_chunk_differs_from_the_own_loss(make_core) -> None:
    core = make_core(0)
    core.begin_round(1)
    own = core.loss_with_chunk(0, torch.from_numpy(core.chunk(0)))

    changed = core.loss_with_chunk(0, torch.from_numpy(core.chunk(0) + 5.0))

    assert changed != own


def test_check_payload_without_chunks_is_bad_chunk_count(make_core) -> None:
    core = make_core(0)

    assert _reason(core, 1, [], []) == "bad_chunk_count"


def test_check_payload_with_the_whole_model_is_bad_chunk_count(make_core) -> None:
    core = make_core(0)
    every = list(range(len(SIZES)))  # all C chunks: a neighbor would hold the whole model

    assert _reason(core, 1, every, _good(core, every)) == "bad_chunk_count"
