"""ByzFL's catalogue in byzemu: geomed, mda, monna, meamed, caf, smea, mean,
the pre-aggregation steps nnm, bucketing and arc, their composition (``defense.pre``),
and the mimic and inf attacks. Expected values are derived by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from peer.attacks import build_attack
from peer.attacks.base import AttackContext, DataInfo, Knowledge, Neighborhood
from peer.defenses import PRE_STEPS, ChunkContext, build_defense
from peer.defenses.base import RobustDefense
from peer.registry import RegistryError


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _ctx(m: int, *, degree: int | None = None, round_: int = 1, index: int = 0) -> ChunkContext:
    return ChunkContext(
        node=0, round=round_, index=index, senders=tuple(range(1, m + 1)), degree=m if degree is None else degree
    )


def _agg(name: str, params: dict, own: torch.Tensor, *received: torch.Tensor, **pre) -> torch.Tensor:
    rule = build_defense(name, params, pre.get("pre"), pre.get("pre_params"))
    return rule.aggregate(own, list(received), _ctx(len(received)))


# ============================================================================= rules


def test_geomed_of_a_square_is_its_centre() -> None:
    # corners (1,2), (3,2), (1,4), (3,4): by symmetry the point of least total distance
    # is the centre (2, 3)
    out = _agg("geomed", {}, _t(1, 2), _t(3, 2), _t(1, 4), _t(3, 4))

    assert out.tolist() == pytest.approx([2.0, 3.0], abs=1e-5)


def test_geomed_first_step_from_zero_weights_rows_by_inverse_norm() -> None:
    # one iteration from z = 0 on rows 3 and 4 (1-D): weights 1/3, 1/4 ->
    # (3/3 + 4/4) / (1/3 + 1/4) = 2 / (7/12) = 24/7
    out = _agg("geomed", {"max_iter": 1, "tol": 0.0}, _t(3), _t(4))

    assert float(out) == pytest.approx(24 / 7, rel=1e-6)


def test_mda_averages_the_subset_of_smallest_diameter() -> None:
    # n = 4, f = 1: subsets of 3; {0, 1, 2} has diameter 2, every subset with 10 >= 8
    # -> mean(0, 1, 2) = 1
    assert float(_agg("mda", {"f": 1}, _t(0), _t(1), _t(2), _t(10))) == 1.0


def test_monna_averages_the_own_chunks_nearest_neighbours() -> None:
    # n = 4, f = 1: the 3 nearest to own 0 are 0 (0), 1 (1), -2 (2); 5 is left out
    # -> (0 + 1 - 2) / 3 = -1/3
    assert float(_agg("monna", {"f": 1}, _t(0), _t(1), _t(5), _t(-2))) == pytest.approx(-1 / 3)


def test_meamed_averages_the_values_nearest_the_median() -> None:
    # per coordinate, values 0, 1, 2, 10: median 1.5, distances 1.5, .5, .5, 8.5;
    # n - f = 3 nearest: 1, 2, 0 -> mean 1. Second coordinate 4, 4, 4, -100: median 4,
    # the three 4s -> 4
    out = _agg("meamed", {"f": 1}, _t(0, 4), _t(1, 4), _t(2, 4), _t(10, -100))

    assert out.tolist() == [1.0, 4.0]


def test_caf_drops_the_far_outlier_and_keeps_the_spread_minimising_mean() -> None:
    # 1-D rows 0, 2, 100, f = 1, stop once sum(c) <= n - 2f = 1.
    # pass 1: mu = 34, diffs -34, -32, 66, lambda = (34^2 + 32^2 + 66^2) / 3 = 2178.7 (best);
    #   c = 1 - d^2 / 66^2 = [3200/4356, 3332/4356, 0], sum 1.4995 > 1
    # pass 2: mu = 2 * 3332 / (3200 + 3332) = 6664/6532 = 1.0202; the weighted variance of
    #   two points 2 apart is 4 p (1 - p) ~ 1.0 < 2178.7 (new best); the largest tau among
    #   weighted rows (row 0) zeroes c_0 -> sum(c) = 0.059 <= 1, stop
    out = _agg("caf", {"f": 1}, _t(0), _t(2), _t(100))

    assert float(out) == pytest.approx(6664 / 6532, rel=1e-6)


def test_caf_with_f_zero_is_the_mean() -> None:
    assert float(_agg("caf", {"f": 0}, _t(0), _t(2), _t(100))) == pytest.approx(34.0)


def test_smea_averages_the_subset_of_least_spread() -> None:
    # 1-D, n - f = 3 of 0, 1, 2, 10: scatter of {0, 1, 2} = 1 + 0 + 1 = 2; any subset
    # holding 10 has scatter >= 32 ({1, 2, 10}: mean 13/3 -> 10.8 + 5.4 + 32.1) -> 1
    assert float(_agg("smea", {"f": 1}, _t(0), _t(1), _t(2), _t(10))) == 1.0


def test_mean_averages_only_the_finite_payloads() -> None:
    # (0 + 3) / 2 = 1.5; the +inf payload is dropped by the template
    assert float(_agg("mean", {}, _t(0), _t(3), _t(math.inf))) == 1.5


@pytest.mark.parametrize(
    "name", ["geomed", "mda", "monna", "meamed", "caf", "smea", "mean", "dfl_dual", "dfl_detector", "bridge_m"]
)
def test_new_rules_keep_the_own_chunk_without_payloads(name: str) -> None:
    own = _t(1.5, -2.0)

    out = build_defense(name, {}).aggregate(own, [], _ctx(0))

    assert out.tolist() == [1.5, -2.0] and out is not own


# ============================================================================= pre steps


def test_nnm_replaces_each_row_by_the_mean_of_its_nearest() -> None:
    # rows 0, 1, 10 with f = 1 -> k = 2 nearest (itself included):
    # 0 -> {0, 1} = .5; 1 -> {1, 0} = .5; 10 -> {10, 1} = 5.5
    x = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64)

    out = PRE_STEPS.build("nnm", {"f": 1}).apply(x, _ctx(2))

    assert out.reshape(-1).tolist() == [0.5, 0.5, 5.5]


def test_nnm_then_median_is_one_config_line() -> None:
    # NNM gives .5, .5, 5.5 (above); their median is .5 (plain median of 0, 1, 10: 1)
    out = _agg("median", {}, _t(0), _t(1), _t(10), pre=["nnm"], pre_params={"nnm": {"f": 1}})

    assert float(out) == 0.5


def test_bucketing_with_s_at_least_n_pools_everything_into_one_row() -> None:
    # one bucket: the mean of 0, 1, 10, 11 = 5.5
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]], dtype=torch.float64)

    out = PRE_STEPS.build("bucketing", {"s": 4}).apply(x, _ctx(3))

    assert out.tolist() == [[5.5]]


def test_bucketing_pairs_rows_and_keeps_their_total() -> None:
    # 5 rows, s = 2 -> buckets of 2, 2 and 1: 3 rows; sum(bucket mean * size) = sum(rows)
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0], [100.0]], dtype=torch.float64)

    out = PRE_STEPS.build("bucketing", {"s": 2}).apply(x, _ctx(4)).reshape(-1).tolist()

    assert len(out) == 3
    assert 2 * (out[0] + out[1]) + out[2] == pytest.approx(122.0)
    assert out[2] in {0.0, 1.0, 10.0, 11.0, 100.0}  # the last bucket is one row


def test_bucketing_is_the_same_for_the_same_node_round_and_index() -> None:
    x = torch.arange(8, dtype=torch.float64).reshape(8, 1)
    step = PRE_STEPS.build("bucketing", {"s": 2})

    assert torch.equal(step.apply(x, _ctx(7, round_=3)), step.apply(x, _ctx(7, round_=3)))


def test_arc_clips_the_largest_deviation_to_the_next_largest() -> None:
    # deviations from own (0, 0): norms 5, 1, 10; n = 4, f = 1 -> k = floor(2/4 * 3) = 1:
    # (6, 8) is scaled to norm 5 -> (3, 4); the others stay
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [6.0, 8.0]], dtype=torch.float64)

    out = PRE_STEPS.build("arc", {"f": 1}).apply(x, _ctx(3))

    assert out.tolist() == [[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [3.0, 4.0]]


def test_arc_clips_around_the_own_chunk_not_zero() -> None:
    # the same stack shifted by (1, 1): the output is shifted by (1, 1) too
    x = torch.tensor([[1.0, 1.0], [4.0, 5.0], [1.0, 2.0], [7.0, 9.0]], dtype=torch.float64)

    out = PRE_STEPS.build("arc", {"f": 1}).apply(x, _ctx(3))

    assert out[3].tolist() == [4.0, 5.0]


# ============================================================================= composition


@pytest.mark.parametrize(
    ("name", "pre", "pre_params", "message"),
    [
        ("median", ["krum"], None, "defense.pre[0]='krum' is a rule, not a pre-aggregation step"),
        ("nnm", [], None, "defense.name='nnm' is a pre-aggregation step, not a rule"),
        ("fltrust", ["nnm"], None, "defense.name='fltrust' cannot follow defense.pre = ['nnm']"),
        ("monna", ["bucketing"], None, "which 'bucketing' pools away"),
        ("cdl", ["arc"], None, "defense.name='cdl' cannot follow"),
        ("median", ["nnm"], {"arc": {"f": 1}}, "defense.pre_params.arc: 'arc' is not in defense.pre"),
        ("median", ["nope"], None, "defense.pre='nope': unknown pre-aggregation step"),
        ("median", ["bucketing"], {"bucketing": {"s": 0}}, "defense.pre='bucketing': s=0 must be"),
    ],
)
def test_nonsensical_chains_are_rejected_with_one_line(
    name: str, pre: list[str], pre_params: dict | None, message: str
) -> None:
    with pytest.raises(RegistryError) as err:
        build_defense(name, {}, pre, pre_params)

    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_row_keeping_step_may_precede_a_rule_that_reads_row_zero() -> None:
    rule = build_defense("ios", {}, ["nnm", "arc"], None)

    assert isinstance(rule, RobustDefense)
    assert [s.name for s in rule.pre] == ["nnm", "arc"]


def test_the_cli_rejects_a_bad_chain_with_one_error_line(tmp_path) -> None:
    from click.testing import CliRunner

    from launch.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'nodes = 4\nrounds = 1\n[data]\ndataset = "synthetic"\nroot = ""\n[model]\nname = "logreg"\n'
        '[topology]\nkind = "ring"\n[chunks]\ncount = 2\nper_neighbor = 1\n'
        '[defense]\nname = "sentinel"\npre = ["nnm"]\n'
    )

    result = CliRunner().invoke(main, ["validate", str(cfg)])

    assert result.exit_code == 2
    assert result.output.strip().startswith("error: defense.name='sentinel' cannot follow")
    assert len(result.output.strip().splitlines()) == 1


# ============================================================================= attacks

_DATA = DataInfo(num_classes=10, image_shape=(1, 28, 28), mean=0.0, std=1.0)


def _attack_ctx(own: list[float], benign: list[list[float]]) -> AttackContext:
    own_v = np.asarray(own, dtype=np.float32)
    return AttackContext(
        node=0,
        round=1,
        neighbor=1,
        own_vector=own_v,
        own_before=np.zeros_like(own_v),
        bounds=[(0, own_v.size)],
        knowledge=Knowledge(observed={10 + i: {0: np.asarray(b, dtype=np.float32)} for i, b in enumerate(benign)}),
        neighborhood=Neighborhood(degree=4, byzantine=1),
        neighbor_is_colluder=False,
        rng=np.random.default_rng(0),
    )


def _craft(name: str, params: dict, ctx: AttackContext) -> list[float]:
    attack = build_attack(name, params)
    attack.bind(_DATA)
    return attack.craft({0: np.array(ctx.own_vector)}, ctx)[0].tolist()


def test_mimic_copies_the_epsilon_th_benign_chunk() -> None:
    # benign chunks of senders 10, 11, 12 in id order; epsilon = 1 -> sender 11's
    ctx = _attack_ctx([0, 0], [[1, 2], [3, 4], [5, 6]])

    assert _craft("mimic", {"epsilon": 1}, ctx) == [3.0, 4.0]


def test_mimic_past_the_known_chunks_copies_the_last_and_without_any_the_own() -> None:
    assert _craft("mimic", {"epsilon": 5}, _attack_ctx([0, 0], [[1, 2], [3, 4]])) == [3.0, 4.0]
    assert _craft("mimic", {"epsilon": 0}, _attack_ctx([7, 8], [])) == [7.0, 8.0]


def test_inf_sends_infinity_and_robust_rules_ignore_it() -> None:
    sent = _craft("inf", {}, _attack_ctx([1, 2], []))

    out = _agg("median", {}, _t(0, 0), _t(2, 2), torch.tensor(sent, dtype=torch.float32))

    assert sent == [math.inf, math.inf]
    assert out.tolist() == [1.0, 1.0]  # median of (0, 2): the inf payload was dropped


def test_inf_with_a_finite_value_sends_that_value() -> None:
    assert _craft("inf", {"value": 3e38}, _attack_ctx([1, 2], [])) == [pytest.approx(3e38, rel=1e-6)] * 2


@pytest.mark.parametrize("value", [float("nan"), 1e39])
def test_inf_rejects_nan_and_float32_overflow(value: float) -> None:
    with pytest.raises(RegistryError, match="byzantine.attack='inf': value="):
        build_attack("inf", {"value": value})
