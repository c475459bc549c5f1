"""Tests for the robust aggregation rules in peer.defenses and their shared math (ops).

Expected values are derived by hand in the comments next to each test; tensors are
small (1-3 coordinates) so that the arithmetic can be checked on paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from peer.defenses import DEFENSES, ChunkContext, build_defense, ops
from peer.defenses.loss_threshold import LossThreshold
from peer.registry import RegistryError, keyword_parameters


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _ctx(
    m: int,
    *,
    degree: int | None = None,
    model_size: int = 0,
    own_before: torch.Tensor | None = None,
    loss_with: Callable[[torch.Tensor], float] | None = None,
    index: int = 0,
    round_: int = 1,
) -> ChunkContext:
    """Context for m payloads from senders 1..m (degree defaults to m)."""
    return ChunkContext(
        node=0,
        round=round_,
        index=index,
        senders=tuple(range(1, m + 1)),
        degree=m if degree is None else degree,
        model_size=model_size,
        own_before=own_before,
        loss_with=loss_with,
    )


def _table_loss(table: dict[tuple[float, ...], float]) -> Callable[[torch.Tensor], float]:
    """A fake ``loss_with`` that looks the payload's values up in a table."""
    return lambda t: table[tuple(float(v) for v in t.tolist())]


def _close(out: torch.Tensor, expected: list[float]) -> bool:
    return torch.allclose(out, torch.tensor(expected, dtype=torch.float32), atol=1e-5, rtol=0)


# ============================================================================= ops


def test_true_median_of_odd_count_is_the_middle_value() -> None:
    # sorted [1, 2, 100] -> middle value 2
    assert ops.median(torch.tensor([[1.0], [2.0], [100.0]])).tolist() == [2.0]


def test_true_median_of_even_count_is_the_mean_of_the_middle_two() -> None:
    # sorted [1, 2, 3, 100] -> (2 + 3) / 2 = 2.5 (torch.median would say 2)
    assert ops.median(torch.tensor([[1.0], [100.0], [3.0], [2.0]])).tolist() == [2.5]


def test_clip_scales_a_3_4_vector_to_unit_norm() -> None:
    # ||[3, 4]|| = 5 > 1 -> [3, 4] * 1/5 = [0.6, 0.8]
    assert _close(ops.clip(_t(3, 4), 1.0), [0.6, 0.8])


def test_clip_keeps_a_vector_inside_the_ball() -> None:
    assert ops.clip(_t(0.3, 0.4), 1.0).tolist() == pytest.approx([0.3, 0.4])


def test_chunk_threshold_scales_by_root_of_chunk_share() -> None:
    # tau * sqrt(d_c / P) = 2 * sqrt(25 / 100) = 1; P unknown (0) -> tau unscaled
    assert ops.chunk_threshold(2.0, 25, 100) == pytest.approx(1.0)
    assert ops.chunk_threshold(2.0, 25, 0) == 2.0


def test_pairwise_squared_distances() -> None:
    # rows (0,0), (3,4), (0,1): d2 = 25, 1, and (3,4)-(0,1) = (3,3) -> 18
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
    d2 = ops.pairwise_sq_dists(x)
    assert d2.tolist() == [[0.0, 25.0, 1.0], [25.0, 0.0, 18.0], [1.0, 18.0, 0.0]]


def test_cosine_similarity_and_zero_vector() -> None:
    # cos((1,0),(1,1)) = 1/sqrt(2); a zero vector has cosine 0 by convention
    assert ops.cosine_similarity(_t(1, 0), _t(1, 1)) == pytest.approx(1 / math.sqrt(2))
    assert ops.cosine_similarity(_t(0, 0), _t(1, 1)) == 0.0


def test_trimmed_mean_rejects_trimming_everything() -> None:
    with pytest.raises(ValueError):
        ops.trimmed_mean(torch.zeros(4, 1, dtype=torch.float64), 2)


def test_krum_scores_by_hand() -> None:
    # points 0, 2, 3, 4, 20 with f=1: n - f - 2 = 2 nearest others
    #   0: {4, 9}=13   2: {1, 4}=5   3: {1, 1}=2   4: {1, 4}=5   20: {256, 289}=545
    x = torch.tensor([[0.0], [2.0], [3.0], [4.0], [20.0]], dtype=torch.float64)
    assert ops.krum_scores(ops.pairwise_sq_dists(x), 1) == [13.0, 5.0, 2.0, 5.0, 545.0]


@pytest.mark.parametrize(("degree", "expected"), [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 2), (9, 3)])
def test_byzantine_bound_is_largest_f_with_n_at_least_2f_plus_3(degree: int, expected: int) -> None:
    # n = degree + 1 (the peer and its neighbors); e.g. degree 6: n = 7 >= 2*2 + 3 but not 2*3 + 3
    assert ops.byzantine_bound(degree) == expected


def test_byzantine_bound_uses_received_count_when_degree_is_unknown() -> None:
    assert ops.byzantine_bound(0, received=4) == 1


def test_closest_to_median_mean_breaks_ties_by_position() -> None:
    # values 0, 1, 2, 3, 4: median 2; the 3 closest are 2 (0), 1 (1), 3 (1) -> mean 2
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    assert ops.closest_to_median_mean(x, 3).tolist() == [2.0]


# ============================================================================= median


def test_median_of_own_and_two_payloads() -> None:
    # median of [1, 2, 100] = 2
    out = build_defense("median", {}).aggregate(_t(1), [_t(2), _t(100)], _ctx(2))
    assert out.tolist() == [2.0]


def test_median_of_own_and_three_payloads_is_mean_of_middle_two() -> None:
    # median of [1, 2, 3, 100] = (2 + 3) / 2 = 2.5
    out = build_defense("median", {}).aggregate(_t(1), [_t(2), _t(3), _t(100)], _ctx(3))
    assert out.tolist() == [2.5]


def test_median_is_coordinate_wise() -> None:
    # coord 0: median{0, 5, 9} = 5; coord 1: median{7, -1, 3} = 3
    out = build_defense("median", {}).aggregate(_t(0, 7), [_t(5, -1), _t(9, 3)], _ctx(2))
    assert out.tolist() == [5.0, 3.0]


# ============================================================================= Krum / Multi-Krum

# Candidates own=0, received 2, 3, 4, 20 (scores 13, 5, 2, 5, 545 for f=1, see above).
_KRUM_OWN, _KRUM_RECEIVED = _t(0), [_t(2), _t(3), _t(4), _t(20)]


def test_krum_picks_the_lowest_score_candidate() -> None:
    # lowest score 2 belongs to the point 3
    out = build_defense("krum", {"f": 1}).aggregate(_KRUM_OWN, _KRUM_RECEIVED, _ctx(4))
    assert out.tolist() == [3.0]


def test_krum_default_f_comes_from_eq13_of_the_degree() -> None:
    # degree 4 -> Eq. 13: ceil(4 * min(1 - 0.4, 0.5)) = 2 (cap n - 3 = 2), so the
    # neighbourhood is n - f - 2 = 1: scores 0:{4}, 2:{1}, 3:{1}, 4:{1}, 20:{256}; the
    # three-way tie at 1 goes to the earliest candidate, the payload 2
    out = build_defense("krum", {}).aggregate(_KRUM_OWN, _KRUM_RECEIVED, _ctx(4, degree=4))
    assert out.tolist() == [2.0]


def test_krum_breaks_score_ties_by_position() -> None:
    # 0, 1, 2, 3, 10 with f=1 (2 nearest): 0:{1,4}=5, 1:{1,1}=2, 2:{1,1}=2, 3:{1,4}=5
    # -> tie between 1 and 2, the earlier (sender 1, value 1) wins
    out = build_defense("krum", {"f": 1}).aggregate(_t(0), [_t(1), _t(2), _t(3), _t(10)], _ctx(4))
    assert out.tolist() == [1.0]


def test_multi_krum_default_averages_n_minus_f_lowest() -> None:
    # n - f = 4 lowest scores: 3 (2), 2 (5), 4 (5), 0 (13) -> (0 + 2 + 3 + 4) / 4 = 2.25
    out = build_defense("multi_krum", {"f": 1}).aggregate(_KRUM_OWN, _KRUM_RECEIVED, _ctx(4))
    assert out.tolist() == [2.25]


def test_multi_krum_m_select_three() -> None:
    # 3 lowest: 3, 2, 4 -> mean 3
    out = build_defense("multi_krum", {"f": 1, "m_select": 3}).aggregate(_KRUM_OWN, _KRUM_RECEIVED, _ctx(4))
    assert out.tolist() == [3.0]


@pytest.mark.parametrize("name", ["krum", "multi_krum"])
def test_krum_with_too_few_candidates_falls_back_to_median(name: str) -> None:
    # n = 2, f = 1: n - f - 2 = -1 < 1 -> median{0, 4} = 2
    out = build_defense(name, {"f": 1}).aggregate(_t(0), [_t(4)], _ctx(1))
    assert out.tolist() == [2.0]


# ========================================================================= trimmed mean / BRIDGE


def test_trimmed_mean_trims_one_from_each_side_per_coordinate() -> None:
    # coord 0: {1, 2, 3, 100, -50} sorted -50 1 2 3 100 -> mean(1, 2, 3) = 2
    # coord 1: {10, -10, 20, 30, 40} sorted -10 10 20 30 40 -> mean(10, 20, 30) = 20
    out = build_defense("trimmed_mean", {"f": 1}).aggregate(
        _t(1, 10), [_t(2, -10), _t(3, 20), _t(100, 30), _t(-50, 40)], _ctx(4)
    )
    assert out.tolist() == [2.0, 20.0]


def test_trimmed_mean_trims_the_own_value_too() -> None:
    # {1000, 2, 3, 100, -50} sorted -50 2 3 100 1000 -> mean(2, 3, 100) = 35
    out = build_defense("trimmed_mean", {"f": 1}).aggregate(_t(1000), [_t(2), _t(3), _t(100), _t(-50)], _ctx(4))
    assert out.tolist() == [35.0]


def test_bridge_never_trims_the_own_value() -> None:
    # received {2, 3, 100, -50}: drop 100 and -50 -> (own 1000 + 2 + 3) / (4 - 2 + 1) = 335
    out = build_defense("bridge", {"b": 1}).aggregate(_t(1000), [_t(2), _t(3), _t(100), _t(-50)], _ctx(4))
    assert out.tolist() == [335.0]


@pytest.mark.parametrize(("name", "key"), [("trimmed_mean", "f"), ("bridge", "b")])
def test_trimming_too_much_falls_back_to_median(name: str, key: str) -> None:
    # one payload, trim 1: 2b >= n (resp. m) -> median{0, 4} = 2
    out = build_defense(name, {key: 1}).aggregate(_t(0), [_t(4)], _ctx(1))
    assert out.tolist() == [2.0]


def test_trimmed_mean_zero_trim_is_plain_mean() -> None:
    out = build_defense("trimmed_mean", {"f": 0}).aggregate(_t(0), [_t(3), _t(6)], _ctx(2))
    assert out.tolist() == [3.0]


# ============================================================================= Bulyan


def test_bulyan_by_hand_with_seven_candidates() -> None:
    # n = 7 = 4f + 3 with f = 1; theta = n - 2f = 5 picks by iterated Krum, beta = 3.
    # values 0 1 2 3 4 5 100 (positions 0..6)
    #  pick 1 (k=4): scores 0:30 1:15 2:10 3:10 4:15 5:30 -> tie 2/3, take 2
    #  pick 2 (k=3) on 0 1 3 4 5 100: 0:26 1:14 3:9 4:11 5:21 -> 3
    #  pick 3 (k=2) on 0 1 4 5 100: 0:17 1:10 4:10 5:17 -> tie, take 1
    #  pick 4 (k=1) on 0 4 5 100: 0:16 4:1 5:1 -> tie, take 4
    #  pick 5 (k raised to 1) on 0 5 100: 0:25 5:25 -> tie, take 0
    # selected {0, 1, 2, 3, 4}: median 2, three closest 2, 1, 3 -> mean 2
    received = [_t(1), _t(2), _t(3), _t(4), _t(5), _t(100)]
    out = build_defense("bulyan", {"f": 1}).aggregate(_t(0), received, _ctx(6))
    assert out.tolist() == [2.0]


def test_bulyan_with_f_zero_is_the_plain_mean() -> None:
    # f = 0: theta = n, beta = n -> all candidates averaged: (0 + 3 + 6) / 3 = 3
    out = build_defense("bulyan", {"f": 0}).aggregate(_t(0), [_t(3), _t(6)], _ctx(2))
    assert out.tolist() == [3.0]


def test_bulyan_too_few_candidates_falls_back_to_trimmed_mean() -> None:
    # n = 5 < 4*1 + 3 -> trimmed mean with b = min(1, 2) = 1:
    # sorted 0 1 2 10 100 -> mean(1, 2, 10) = 13/3
    received = [_t(1), _t(2), _t(10), _t(100)]
    out = build_defense("bulyan", {"f": 1}).aggregate(_t(0), received, _ctx(4))
    assert out.tolist() == pytest.approx([13 / 3])


# ============================================================================= clipping rules


def test_norm_clip_clips_a_3_4_deviation_to_tau_c_one() -> None:
    # d_c = P = 2 -> tau_c = 1; r' = 0 + [3,4] * 1/5 = [0.6, 0.8]; mean(own, r') = [0.3, 0.4]
    rule = build_defense("norm_clip", {"tau": 1.0})
    out = rule.aggregate(_t(0, 0), [_t(3, 4)], _ctx(1, model_size=2))
    assert _close(out, [0.3, 0.4])


def test_norm_clip_scales_tau_to_the_chunk() -> None:
    # P = 8, d_c = 2: tau_c = 2 * sqrt(2/8) = 1 -> same as above, around own [1, 1]
    rule = build_defense("norm_clip", {"tau": 2.0})
    out = rule.aggregate(_t(1, 1), [_t(4, 5)], _ctx(1, model_size=8))
    assert _close(out, [1.3, 1.4])


def test_norm_clip_leaves_small_deviations_alone() -> None:
    # ||[0.3, 0.4]|| = 0.5 <= 1 -> plain mean ([0,0] + [0.3,0.4]) / 2
    rule = build_defense("norm_clip", {"tau": 1.0})
    out = rule.aggregate(_t(0, 0), [_t(0.3, 0.4)], _ctx(1, model_size=2))
    assert _close(out, [0.15, 0.2])


def test_adaptive_norm_clip_uses_median_deviation() -> None:
    # deviations [3,4] (5), [0,1] (1), [0,-2] (2): median 2 -> [3,4] clipped to [1.2, 1.6]
    # mean over 4 values: ([1.2,1.6] + [0,1] + [0,-2]) / 4 = [0.3, 0.15]
    out = build_defense("adaptive_norm_clip", {"pool": "chunk"}).aggregate(
        _t(0, 0), [_t(3, 4), _t(0, 1), _t(0, -2)], _ctx(3)
    )
    assert _close(out, [0.3, 0.15])


def test_adaptive_norm_clip_momentum_smooths_over_rounds_per_index() -> None:
    d = build_defense("adaptive_norm_clip", {"momentum": 0.5, "pool": "chunk"})
    d.aggregate(_t(0, 0), [_t(3, 4), _t(0, 1), _t(0, -2)], _ctx(3, round_=1))  # level 2
    # round 2, one payload [6,8] (norm 10): level = 0.5*2 + 0.5*10 = 6
    # -> clipped to [3.6, 4.8]; mean with own [1.8, 2.4]
    out = d.aggregate(_t(0, 0), [_t(6, 8)], _ctx(1, round_=2))
    # another chunk index has no history: level 10, nothing clipped -> [3, 4]
    other = d.aggregate(_t(0, 0), [_t(6, 8)], _ctx(1, round_=2, index=1))
    assert _close(out, [1.8, 2.4]) and _close(other, [3.0, 4.0])


def test_adaptive_norm_clip_pools_the_round_over_chunk_indices() -> None:
    # own [0,0,0,0], P = 4, chunks (0,2) and (2,4); payloads: sender 1 chunk 0 = [3,4]
    # (deviation 5), sender 2 chunk 0 = [0,1] (1) and chunk 1 = [0,2] (2). Scaled to the
    # whole model by sqrt(P/d_c) = sqrt(2): 5*sqrt2, sqrt2, 2*sqrt2 -> median 2*sqrt2, so
    # tau_c = 2*sqrt2 * sqrt(2/4) = 2. Chunk 0: [3,4] clipped to [1.2,1.6], [0,1] kept,
    # mean with own = [0.4, 2.6/3]. Chunk 1: [0,2] within 2, mean with own = [0, 1].
    rule = build_defense("adaptive_norm_clip", {})
    own = torch.zeros(4)
    received = {1: {0: _t(3, 4)}, 2: {0: _t(0, 1), 1: _t(0, 2)}}
    rule.begin_round(1, own, received, [(0, 2), (2, 4)])

    out0 = rule.aggregate(_t(0, 0), [_t(3, 4), _t(0, 1)], _ctx(2, model_size=4))
    out1 = rule.aggregate(_t(0, 0), [_t(0, 2)], _ctx(1, model_size=4, index=1))

    assert _close(out0, [0.4, 2.6 / 3]) and _close(out1, [0.0, 1.0])


def test_centered_clip_single_step() -> None:
    # tau_c = 1 (P = d_c): own + ([0.6,0.8] + [0,0.5]) / 3 = [0.2, 1.3/3]
    out = build_defense("centered_clip", {"tau": 1.0}).aggregate(
        _t(0, 0), [_t(3, 4), _t(0, 0.5)], _ctx(2, model_size=2)
    )
    assert _close(out, [0.2, 1.3 / 3])


def test_centered_clip_two_iterations() -> None:
    # 1-D, tau_c = 1, values {0, 10}: v1 = 0 + (0 + clip(10)) / 2 = 0.5
    # v2 = 0.5 + (clip(-0.5) + clip(9.5)) / 2 = 0.5 + (-0.5 + 1) / 2 = 0.75
    out = build_defense("centered_clip", {"tau": 1.0, "iterations": 2}).aggregate(
        _t(0), [_t(10)], _ctx(1, model_size=1)
    )
    assert out.tolist() == [0.75]


def test_clipped_gossip_equals_one_centered_clip_step() -> None:
    own, received, ctx = _t(0, 0), [_t(3, 4), _t(0, 0.5)], _ctx(2, model_size=2)
    a = build_defense("clipped_gossip", {"tau": 1.0}).aggregate(own, received, ctx)
    b = build_defense("centered_clip", {"tau": 1.0}).aggregate(own, received, ctx)
    assert torch.equal(a, b)


# ============================================================================= UBAR


def test_ubar_distance_then_loss_stage() -> None:
    # loss(t) = ||t - [1, 0]||; own [0,0] has loss 1.
    # distances to own: r1=[1,0]:1, r2=[0,2]:2, r3=[-1,0]:1, r4=[5,5]:7.07
    # stage 1, ceil(0.5 * 4) = 2 closest: r1, r3; stage 2: loss r1 = 0 <= 1 (kept), r3 = 2 (no)
    # x = 0.5*[0,0] + 0.5*[1,0] = [0.5, 0]
    loss = lambda t: float(torch.linalg.vector_norm(t - _t(1, 0)))  # noqa: E731
    received = [_t(1, 0), _t(0, 2), _t(-1, 0), _t(5, 5)]
    out = build_defense("ubar", {}).aggregate(_t(0, 0), received, _ctx(4, loss_with=loss))
    assert _close(out, [0.5, 0.0])


def test_ubar_takes_lowest_loss_when_none_beats_own() -> None:
    # loss(t) = ||t - [1, 0]||; own [1,0] has loss 0, nobody can do better.
    # distances: r1=[1,1]:1, r2=[1,-0.5]:0.5, r3=[4,0]:3; ceil(0.5*3) = 2 closest: r2, r1
    # losses 0.5 (r2), 1 (r1) -> none <= 0 -> keep r2; x = 0.5*[1,0] + 0.5*[1,-0.5] = [1, -0.25]
    calls: list[torch.Tensor] = []

    def loss(t: torch.Tensor) -> float:
        calls.append(t)
        return float(torch.linalg.vector_norm(t - _t(1, 0)))

    received = [_t(1, 1), _t(1, -0.5), _t(4, 0)]
    out = build_defense("ubar", {}).aggregate(_t(1, 0), received, _ctx(3, loss_with=loss))
    assert _close(out, [1.0, -0.25])
    assert len(calls) == 3  # own + the two shortlisted payloads; r3 is never evaluated


def test_ubar_without_loss_keeps_the_distance_shortlist() -> None:
    # shortlist r1=[1,0], r3=[-1,0] (see above) -> mean [0,0] -> x = [0, 0]
    received = [_t(1, 0), _t(0, 2), _t(-1, 0), _t(5, 5)]
    out = build_defense("ubar", {}).aggregate(_t(0, 0), received, _ctx(4))
    assert _close(out, [0.0, 0.0])


# ============================================================================= loss threshold

# own [0] has loss 1.0; payloads [2] 0.75 (gain 0.25), [4] 0.96875 (gain 0.03125),
# [8] 1.0625 (gain -0.0625); all exact in binary.
_LT_LOSS = _table_loss({(0.0,): 1.0, (2.0,): 0.75, (4.0,): 0.96875, (8.0,): 1.0625, (16.0,): 1.5})
_LT_RECEIVED = [_t(2), _t(4), _t(8)]


def test_loss_threshold_schedule_drops_after_patience_evaluations_without_new_minimum() -> None:
    d = build_defense("loss_threshold", {})
    assert isinstance(d, LossThreshold)
    d.observe_evaluation(1, 0.5, 1.0)  # first minimum: error 0.5
    for r in range(2, 6):
        d.observe_evaluation(r, 0.4, 1.0)  # 4 evaluations without a new minimum
    assert d.theta == pytest.approx(0.1)
    d.observe_evaluation(6, 0.4, 1.0)  # 5th -> overfitting: theta 0.1 -> 0.0
    assert d.theta == pytest.approx(0.0)
    d.observe_evaluation(7, 0.6, 1.0)  # new minimum (error 0.4) resets the count
    for r in range(8, 12):
        d.observe_evaluation(r, 0.6, 1.0)
    assert d.theta == pytest.approx(0.0)
    d.observe_evaluation(12, 0.6, 1.0)  # 5 without a new minimum -> -0.1
    assert d.theta == pytest.approx(-0.1)
    for r in range(13, 30):
        d.observe_evaluation(r, 0.1, 1.0)
    assert d.theta == pytest.approx(-0.1)  # floor theta_min


def test_loss_threshold_acceptance_follows_theta() -> None:
    d = build_defense("loss_threshold", {"patience": 1})
    ctx = _ctx(3, loss_with=_LT_LOSS)
    # theta 0.1: only [2] (gain 0.25) -> 0.5*0 + 0.5*2 = 1
    first = d.aggregate(_t(0), _LT_RECEIVED, ctx)
    d.observe_evaluation(1, 0.5, 1.0)
    d.observe_evaluation(2, 0.5, 1.0)  # no new minimum, patience 1 -> theta 0
    # theta 0: [2] and [4] -> 0.5 * mean(2, 4) = 1.5
    second = d.aggregate(_t(0), _LT_RECEIVED, ctx)
    d.observe_evaluation(3, 0.5, 1.0)  # theta -0.1
    # theta -0.1: all three -> 0.5 * mean(2, 4, 8) = 7/3
    third = d.aggregate(_t(0), _LT_RECEIVED, ctx)
    assert (first.tolist(), second.tolist()) == ([1.0], [1.5])
    assert third.tolist() == pytest.approx([7 / 3])


def test_loss_threshold_reports_its_threshold_and_acceptances_per_round() -> None:
    d = build_defense("loss_threshold", {"patience": 1})
    ctx = _ctx(3, loss_with=_LT_LOSS)
    d.begin_round(1, _t(0), {}, [(0, 1)])
    d.aggregate(_t(0), _LT_RECEIVED, ctx)  # theta 0.1: 1 of 3 payloads
    assert d.round_metrics() == {"theta": pytest.approx(0.1), "lt_accepted": 1, "lt_compared": 3}
    d.observe_evaluation(1, 0.5, 1.0)
    d.observe_evaluation(2, 0.5, 1.0)  # theta 0
    d.begin_round(2, _t(0), {}, [(0, 1)])
    assert d.round_metrics()["lt_accepted"] == 0  # counts are per round
    d.aggregate(_t(0), _LT_RECEIVED, ctx)
    d.aggregate(_t(0), _LT_RECEIVED, ctx)  # a second chunk index adds to the round's counts
    assert d.round_metrics() == {"theta": pytest.approx(0.0), "lt_accepted": 4, "lt_compared": 6}
    assert build_defense("cdl", {}).round_metrics() == {}


# (the argmin fallback, Eq. 5 of Masuda & Shudo, applies only after overfitting was detected:
# tests/test_fidelity.py)


# ============================================================================= Sentinel


def test_sentinel_filters_by_cosine_and_scales_norm_without_loss() -> None:
    # own [1,0]; r1=[1,0.5] cos 0.894 kept, r2=[-1,0] cos -1 dropped, r3=[0,1] cos 0 dropped
    # ||r1|| = sqrt(1.25) > ||own|| = 1 -> r1' = [1, 0.5] / sqrt(1.25); weights 1 (no loss)
    # x = (own + r1') / 2
    s = math.sqrt(1.25)
    received = [_t(1, 0.5), _t(-1, 0), _t(0, 1)]
    d = build_defense("sentinel", {})
    out = d.aggregate(_t(1, 0), received, _ctx(3))
    assert _close(out, [(1 + 1 / s) / 2, (0.5 / s) / 2])
    # senders 1..3: only sender 1's payload passed, with weight 1
    assert d.round_metrics() == {"sl_weight": {"1": 1.0, "2": 0.0, "3": 0.0}, "sl_kept": 1, "sl_payloads": 3}
    assert d.round_metrics() == {}  # read once per round


def test_sentinel_loss_weights_use_the_per_sender_history() -> None:
    # own [2,0] loss 0.5 -> k = 2; r1 [1,0] loss 0.5 -> w1 = 1; r2 [1.5,0] loss 1.0 -> excess 0.5,
    # w2 = exp(-2 * 0.5) = e^-1; norms 1 and 1.5 <= 2, no scaling.
    # round 1: x0 = (2 + 1 + 1.5 w2) / (2 + w2)
    loss = _table_loss({(2.0, 0.0): 0.5, (1.0, 0.0): 0.5, (1.5, 0.0): 1.0, (1.75, 0.0): 0.5})
    d = build_defense("sentinel", {})
    first = d.aggregate(_t(2, 0), [_t(1, 0), _t(1.5, 0)], _ctx(2, loss_with=loss))
    w2 = math.exp(-1.0)
    assert _close(first, [(2 + 1 + 1.5 * w2) / (2 + w2), 0.0])
    metrics = d.round_metrics()
    assert metrics == {"sl_weight": {"1": 1.0, "2": pytest.approx(w2)}, "sl_kept": 2, "sl_payloads": 2}
    # round 2: sender 2 sends [1.75,0] with loss 0.5; its running mean is (1.0 + 0.5) / 2 = 0.75
    # -> excess 0.25, w2 = exp(-0.5); x0 = (2 + 1 + 1.75 w2) / (2 + w2)
    second = d.aggregate(_t(2, 0), [_t(1, 0), _t(1.75, 0)], _ctx(2, loss_with=loss, round_=2))
    w2 = math.exp(-0.5)
    assert _close(second, [(2 + 1 + 1.75 * w2) / (2 + w2), 0.0])
    # a second chunk index in the same round: sender 2's [-1,0] fails the cosine filter,
    # so its mean weight this round is (e^-0.5 + 0) / 2
    d.aggregate(_t(2, 0), [_t(1, 0), _t(-1, 0)], _ctx(2, loss_with=loss, round_=2, index=1))
    assert d.round_metrics() == {
        "sl_weight": {"1": 1.0, "2": pytest.approx(w2 / 2)},
        "sl_kept": 3,
        "sl_payloads": 4,
    }


def test_sentinel_all_filtered_keeps_own() -> None:
    out = build_defense("sentinel", {}).aggregate(_t(1, 0), [_t(-1, 0)], _ctx(1))
    assert out.tolist() == [1.0, 0.0]


# ============================================================================= Zeno

# own [0] loss 1.0; [1] loss 0.5, [4] loss 0.25, [10] loss 0.0; rho = 0.01:
# scores 1 - 0.5 - 0.01 = 0.49, 1 - 0.25 - 0.16 = 0.59, 1 - 0 - 1 = 0.0
_ZENO_LOSS = _table_loss({(0.0,): 1.0, (1.0,): 0.5, (4.0,): 0.25, (10.0,): 0.0})
_ZENO_RECEIVED = [_t(1), _t(4), _t(10)]


def test_zeno_keeps_the_best_score() -> None:
    # keep 1 -> [4]; mean(0, 4) = 2
    out = build_defense("zeno", {"rho": 0.01, "keep": 1}).aggregate(
        _t(0), _ZENO_RECEIVED, _ctx(3, loss_with=_ZENO_LOSS)
    )
    assert out.tolist() == [2.0]


def test_zeno_default_keep_is_m_minus_f() -> None:
    # f = 1 -> keep 2: [4] (0.59) and [1] (0.49); mean(0, 1, 4) = 5/3
    out = build_defense("zeno", {"rho": 0.01, "f": 1}).aggregate(_t(0), _ZENO_RECEIVED, _ctx(3, loss_with=_ZENO_LOSS))
    assert out.tolist() == pytest.approx([5 / 3])


# ============================================================================= FLTrust


def test_fltrust_by_hand() -> None:
    # own_before [0,0], own [1,0] -> g0 = [1,0], ||g0|| = 1
    # r1 [2,0]: cos 1, TS 1, g^ = [1,0];  r2 [0,3]: cos 0, TS 0;  r3 [-1,0]: cos -1, TS 0
    # r4 [1,1]: cos 1/sqrt2, TS 1/sqrt2, g^ = [1,1]/sqrt2
    # x = ([1,0] + [1,0] + (1/sqrt2)[1,1]/sqrt2) / (1 + 1 + 1/sqrt2) = [2.5, 0.5] / (2 + 1/sqrt2)
    received = [_t(2, 0), _t(0, 3), _t(-1, 0), _t(1, 1)]
    out = build_defense("fltrust", {}).aggregate(_t(1, 0), received, _ctx(4, own_before=_t(0, 0)))
    z = 2 + 1 / math.sqrt(2)
    assert _close(out, [2.5 / z, 0.5 / z])


def test_fltrust_without_own_update_keeps_own() -> None:
    # g0 = 0: no reference direction -> own chunk
    out = build_defense("fltrust", {}).aggregate(_t(1, 0), [_t(2, 0)], _ctx(1, own_before=_t(1, 0)))
    assert out.tolist() == [1.0, 0.0]


def test_fltrust_zero_neighbor_update_gets_no_trust() -> None:
    # r = own_before -> g_j = 0 -> TS 0 -> x = own_before + g0 = own
    out = build_defense("fltrust", {}).aggregate(_t(1, 0), [_t(0, 0)], _ctx(1, own_before=_t(0, 0)))
    assert out.tolist() == [1.0, 0.0]


# ============================================================================= IOS


def test_ios_drops_the_farthest_payload() -> None:
    # mean(0, 1, 2, 100) = 25.75; farthest 100 dropped -> mean(0, 1, 2) = 1
    out = build_defense("ios", {"f": 1}).aggregate(_t(0), [_t(1), _t(2), _t(100)], _ctx(3))
    assert out.tolist() == [1.0]


def test_ios_iterates() -> None:
    # after dropping 100: mean(0, 1, 2) = 1; farthest payload 2 (dist 1 vs 0) -> mean(0, 1) = 0.5
    out = build_defense("ios", {"f": 2}).aggregate(_t(0), [_t(1), _t(2), _t(100)], _ctx(3))
    assert out.tolist() == [0.5]


def test_ios_never_drops_own_and_breaks_ties_by_sender() -> None:
    # mean(0, -1, 1) = 0; both payloads at distance 1 -> drop sender 1 ([-1]) -> mean(0, 1) = 0.5
    out = build_defense("ios", {"f": 1}).aggregate(_t(0), [_t(-1), _t(1)], _ctx(2))
    assert out.tolist() == [0.5]


def test_ios_with_no_more_payloads_than_f_keeps_own() -> None:
    out = build_defense("ios", {"f": 1}).aggregate(_t(0), [_t(7)], _ctx(1))
    assert out.tolist() == [0.0]


# ========================================================================= every registered rule

ALL = DEFENSES.names()
_P = 20  # model size for the generic context


def _generic_loss(t: torch.Tensor) -> float:
    # deterministic, positive, depends on the payload: 1 + mean squared value
    return 1.0 + float(t.to(torch.float64).pow(2).mean())


def _full_ctx(m: int, *, loss: bool = True) -> ChunkContext:
    return _ctx(
        m,
        degree=4,
        model_size=_P,
        own_before=_t(0.5, 1.5, -0.5, 0.0, 2.0),
        loss_with=_generic_loss if loss else None,
    )


_OWN = _t(1, 2, -1, 0.5, 3)
_PAYLOADS = [
    _t(1.5, 2, -1, 0.0, 3),
    _t(0.5, 2.5, -0.5, 0.5, 2.0),
    _t(10, -10, 10, -10, 10),  # an outlier
    _t(1, 1.5, -1, 1, 3),
]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("loss", [True, False])
def test_zero_received_returns_own_values_in_a_new_tensor(name: str, loss: bool) -> None:
    own = _OWN.clone()

    out = build_defense(name, {}).aggregate(own, [], _full_ctx(0, loss=loss))

    assert out.tolist() == _OWN.tolist()
    assert out.data_ptr() != own.data_ptr()
    out += 1.0
    assert own.tolist() == _OWN.tolist()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("loss", [True, False])
def test_output_is_new_finite_float32_of_own_shape(name: str, m: int, loss: bool) -> None:
    own, received = _OWN.clone(), [p.clone() for p in _PAYLOADS[:m]]

    out = build_defense(name, {}).aggregate(own, received, _full_ctx(m, loss=loss))

    assert out.dtype == torch.float32 and out.shape == own.shape
    assert bool(torch.isfinite(out).all())
    assert all(out.data_ptr() != t.data_ptr() for t in (own, *received))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("m", [1, 2, 4])
def test_inputs_are_not_mutated(name: str, m: int) -> None:
    own, received = _OWN.clone(), [p.clone() for p in _PAYLOADS[:m]]
    ctx = _full_ctx(m)
    assert ctx.own_before is not None
    before = ctx.own_before.clone()

    build_defense(name, {}).aggregate(own, received, ctx)

    assert torch.equal(own, _OWN)
    assert all(torch.equal(r, p) for r, p in zip(received, _PAYLOADS))
    assert torch.equal(ctx.own_before, before)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("m", [1, 2, 4])
def test_agreement_is_a_fixed_point(name: str, m: int) -> None:
    # every payload equals the own chunk -> every rule keeps the own chunk
    received = [_OWN.clone() for _ in range(m)]

    out = build_defense(name, {}).aggregate(_OWN.clone(), received, _full_ctx(m))

    assert torch.allclose(out, _OWN, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name: str) -> None:
    a = build_defense(name, {}).aggregate(_OWN, _PAYLOADS, _full_ctx(4))
    b = build_defense(name, {}).aggregate(_OWN, _PAYLOADS, _full_ctx(4))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_keeps_a_two_dimensional_chunk_shape(name: str) -> None:
    own = _t(1, 2, 3, 4, 5, 6).reshape(2, 3)
    received = [own + 0.5, own - 1.0]
    ctx = _ctx(2, degree=2, model_size=12, own_before=own - 0.25, loss_with=_generic_loss)

    out = build_defense(name, {}).aggregate(own, received, ctx)

    assert out.shape == (2, 3) and out.dtype == torch.float32


@pytest.mark.parametrize("name", [n for n in ALL if n != "cdl"])  # cdl is the plain baseline
def test_non_finite_payloads_are_discarded(name: str) -> None:
    received = [_PAYLOADS[0], torch.full((5,), float("nan")), _t(float("inf"), 0, 0, 0, 0)]

    out = build_defense(name, {}).aggregate(_OWN, received, _full_ctx(3))
    alone = build_defense(name, {}).aggregate(_OWN, received[:1], _full_ctx(1))

    assert torch.equal(out, alone)


@pytest.mark.parametrize("name", [n for n in ALL if n != "cdl"])
def test_extreme_payload_does_not_overflow(name: str) -> None:
    received = [_PAYLOADS[0], _PAYLOADS[1], torch.full((5,), 3.0e38)]

    out = build_defense(name, {}).aggregate(_OWN, received, _full_ctx(3, loss=False))

    assert out.dtype == torch.float32 and out.shape == _OWN.shape


# ----------------------------------------------------------------------------- hyperparameters

BAD_PARAMS: dict[str, list[dict]] = {
    # ByzFL's catalogue (docs/DEFENSES.md)
    "geomed": [{"eps": 0}, {"max_iter": 0}, {"tol": -1.0}],
    **{n: [{"f": -1}] for n in ("mda", "monna", "meamed", "caf", "smea")},
    "dfl_dual": [{"alpha": -1.0}, {"c1": 0}, {"samples_per_class": 0}, {"inversion_lr": 0}],
    "dfl_detector": [{"window": 0}, {"gap_refs": 0}],
    "fltrust": [{"granularity": "layer"}],
    "cdl": [{"own_weight": 2.0}],
    "norm_clip": [{"tau": 0}, {"tau": -1.0}, {"tau": float("nan")}, {"tau": "1"}, {"tau": True}, {"clip_own": 1}],
    "adaptive_norm_clip": [{"factor": 0}, {"momentum": 1.0}, {"momentum": -0.1}, {"pool": "all"}, {"clip_own": "yes"}],
    "sentinel": [{"cos_threshold": 1.5}, {"cos_threshold": float("nan")}, {"weight_cutoff": 2.0}],
    "ubar": [{"rho": 0}, {"rho": 1.5}, {"alpha": -0.1}, {"loss_sample": "all"}],
    "loss_threshold": [
        {"patience": 0},
        {"patience": 2.5},
        {"step": 0},
        {"theta_min": 0.5},
        {"alpha": 2},
        {"theta0": float("inf")},
    ],
    "krum": [{"f": -1}, {"f": 1.5}, {"f": "1"}, {"neighbourhood": "wide"}, {"rho_central": 2.0}],
    "dkrum": [{"f": -1}, {"guf_alpha": 1.5}],
    "median": [{"own_candidate": "yes"}, {"guf_alpha": -0.5}],
    "dmedian": [{"guf_alpha": 2}],
    "bridge_m": [{"guf_alpha": 2}],
    "dbulyan": [{"f": -1}, {"rho": 1.5}],
    "dbridge": [{"f": -1}],
    "multi_krum": [{"m_select": 0}, {"f": -2}],
    "trimmed_mean": [{"f": -1}],
    "bridge": [{"b": -1}, {"b": "2"}],
    "bulyan": [{"f": -1}],
    "zeno": [{"rho": -1.0}, {"keep": 0}, {"f": -1}],
    "ios": [{"f": -1}],
    "centered_clip": [{"tau": 0}, {"iterations": 0}],
    "clipped_gossip": [{"tau": -1.0}],
}


def _has_params(name: str) -> bool:
    return bool(keyword_parameters(DEFENSES.get(name)))


def test_every_rule_with_parameters_has_bad_parameter_cases() -> None:
    assert {n for n in ALL if _has_params(n)} <= set(BAD_PARAMS)


@pytest.mark.parametrize(("name", "params"), [(n, p) for n, cases in BAD_PARAMS.items() for p in cases])
def test_bad_hyperparameter_is_a_registry_error_naming_it(name: str, params: dict) -> None:
    with pytest.raises(RegistryError, match=rf"^defense\.name='{name}': {next(iter(params))}="):
        build_defense(name, params)


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_is_a_registry_error(name: str) -> None:
    with pytest.raises(RegistryError, match="unknown parameter 'no_such_param'"):
        build_defense(name, {"no_such_param": 1})


def test_all_rules_are_registered() -> None:
    assert set(ALL) >= {
        "norm_clip",
        "adaptive_norm_clip",
        "sentinel",
        "ubar",
        "loss_threshold",
        "krum",
        "multi_krum",
        "median",
        "trimmed_mean",
        "bridge",
        "bulyan",
        "zeno",
        "fltrust",
        "ios",
        "centered_clip",
        "clipped_gossip",
    }


# ============================================================================= clip_own


@pytest.mark.parametrize("name", ["norm_clip", "adaptive_norm_clip"])
def test_clip_own_clips_the_own_update_too(name: str) -> None:
    # before (0, 0), own (3, 4): own update of norm 5; payload (0, 2).
    # norm_clip, tau 1 (model size unknown: unscaled): clip((3, 4)) = (0.6, 0.8),
    # clip((0, 2)) = (0, 1) -> (0.3, 0.9).
    # adaptive_norm_clip (pool = chunk, factor 1): tau = the payload's deviation from the own
    # chunk, |(-3, -2)| = sqrt13 = 3.60555; clip((3, 4)) = (3, 4) * sqrt13 / 5 = (2.16333,
    # 2.88444), (0, 2) is inside -> ((2.16333, 2.88444) + (0, 2)) / 2 = (1.08167, 2.44222)
    params = {"tau": 1.0} if name == "norm_clip" else {"pool": "chunk"}
    ctx = _ctx(1, own_before=_t(0, 0))

    out = build_defense(name, {**params, "clip_own": True}).aggregate(_t(3, 4), [_t(0, 2)], ctx)

    assert _close(out, [0.3, 0.9] if name == "norm_clip" else [1.08167, 2.44222])


def test_norm_clip_default_keeps_the_own_update_and_clips_the_neighbor_around_it() -> None:
    # deviation (0, 2) - (3, 4) = (-3, -2), norm sqrt13 -> clipped to (-3, -2) / sqrt13;
    # (3, 4) + that / 2 = (3 - 0.41603, 4 - 0.27735)
    out = build_defense("norm_clip", {"tau": 1.0}).aggregate(_t(3, 4), [_t(0, 2)], _ctx(1, own_before=_t(0, 0)))

    assert _close(out, [3 - 1.5 / 13**0.5, 4 - 1.0 / 13**0.5])
