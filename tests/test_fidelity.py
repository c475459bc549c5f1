"""The papers' definitions, each with values derived by hand from the paper.

Guo et al. 2022 (UBAR), Masuda & Shudo (the loss threshold, Max, ALIE's network z) and Baruch
et al. 2019 (ALIE), as listed in docs/REFERENCES.md. Chunks are 1-2 coordinates so the arithmetic fits in a comment.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest
import torch

from coordinator.roles import attach_added, choose_byzantine
from peer.attacks import build_attack
from peer.attacks.alie import alie_z_network, z_warnings
from peer.attacks.alie_backdoor import ALIEBackdoorAttack
from peer.attacks.base import AttackContext, DataInfo, Knowledge, Neighborhood
from peer.attacks.label_flip import LabelFlipAttack
from peer.defenses import ChunkContext, build_defense, ops
from peer.defenses.loss_threshold import LossThreshold
from peer.schedule import lr_schedule

MNIST = DataInfo(num_classes=10, image_shape=(1, 28, 28), mean=0.0, std=1.0)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _ctx(
    m: int,
    *,
    degree: int | None = None,
    loss_with: Callable[[torch.Tensor], float] | None = None,
    sample_loss_with: Callable[[torch.Tensor], float] | None = None,
    round_: int = 1,
) -> ChunkContext:
    return ChunkContext(
        node=0,
        round=round_,
        index=0,
        senders=tuple(range(1, m + 1)),
        degree=m if degree is None else degree,
        loss_with=loss_with,
        sample_loss_with=sample_loss_with,
    )


def _table(table: dict[tuple[float, ...], float]) -> Callable[[torch.Tensor], float]:
    return lambda t: table[tuple(float(v) for v in t.tolist())]


# ============================================================================= Eq. 13


@pytest.mark.parametrize(
    ("degree", "rho_central", "expected"),
    [
        (3, 0.5, 2),  # ceil(3 * min(0.6, 0.5)) = ceil(1.5) = 2
        (10, 0.5, 5),  # ceil(10 * 0.5) = 5
        (10, 0.7, 6),  # ceil(10 * min(0.6, 0.7)) = ceil(6.0) = 6, not 7 (float slack)
        (12, 0.25, 3),  # ceil(12 * 0.25) = 3
        (7, 0.25, 2),  # ceil(1.75) = 2
    ],
)
def test_eq13_bound_by_hand(degree: int, rho_central: float, expected: int) -> None:
    assert ops.eq13_bound(degree, rho=0.4, rho_central=rho_central) == expected


def test_trimmed_mean_default_trims_eq13_capped_at_half() -> None:
    # degree 3: Eq. 13 gives 2, but 4 candidates (own + 3) allow at most floor(3/2) = 1:
    # sorted [0, 1, 2, 100] trimmed by 1 -> mean(1, 2) = 1.5 (the old floor((3-2)/2) = 0
    # bound would average all four: 25.75)
    out = build_defense("trimmed_mean", {}).aggregate(_t(0), [_t(1), _t(2), _t(100)], _ctx(3))
    assert out.tolist() == [1.5]


# ============================================================================= Guo et al. 2022 baselines


def test_generic_own_candidate_false_drops_own_from_the_median() -> None:
    # candidates 1, 2, 100 (own 0 excluded): median 2; with own: median of 0,1,2,100 = 1.5
    out = build_defense("median", {"own_candidate": False}).aggregate(_t(0), [_t(1), _t(2), _t(100)], _ctx(3))
    assert out.tolist() == [2.0]


def test_generic_guf_alpha_mixes_own_and_result() -> None:
    # median of 0, 2, 4, 6, 8 = 4; x = 0.25 * 0 + 0.75 * 4 = 3
    out = build_defense("median", {"guf_alpha": 0.25}).aggregate(_t(0), [_t(2), _t(4), _t(6), _t(8)], _ctx(4))
    assert out.tolist() == [3.0]


def test_dmedian_is_neighbour_median_mixed_half_with_own() -> None:
    # Guo et al. 2022 Eq. 14 + GUF: median(1, 2, 100) = 2; x = 0.5 * 10 + 0.5 * 2 = 6
    out = build_defense("dmedian", {}).aggregate(_t(10), [_t(1), _t(2), _t(100)], _ctx(3))
    assert out.tolist() == [6.0]


def test_dkrum_uses_the_printed_neighbourhood_over_neighbours() -> None:
    # neighbours 0, 1, 3, 10, 11, 12 (|N_i| = 6), own 50 not a candidate.
    # Eq. 13: ceil(6 * 0.5) = 3; printed k = |N_i| - n + 2 = 5 = all other candidates:
    #   s(0) = 1+9+100+121+144 = 375, s(1) = 1+4+81+100+121 = 307, s(3) = 9+4+49+64+81 = 207,
    #   s(10) = 100+81+49+1+4 = 235, s(11) = 121+100+64+1+1 = 287, s(12) = 144+121+81+4+1 = 351
    # -> R = 3; x = 0.5 * 50 + 0.5 * 3 = 26.5
    received = [_t(0), _t(1), _t(3), _t(10), _t(11), _t(12)]
    out = build_defense("dkrum", {}).aggregate(_t(50), received, _ctx(6))
    assert out.tolist() == [26.5]


def test_krum_blanchard_neighbourhood_on_the_same_points_differs() -> None:
    # same neighbours, Blanchard k = n - f - 2 = 6 - 3 - 2 = 1 (f = Eq. 13's 3, cap n-3 = 3):
    #   s(0) = 1, s(1) = 1, s(3) = 4, s(10) = 1, s(11) = 1, s(12) = 1 -> first: 0
    # x = 0.5 * 50 + 0.5 * 0 = 25
    received = [_t(0), _t(1), _t(3), _t(10), _t(11), _t(12)]
    out = build_defense("dkrum", {"neighbourhood": "blanchard"}).aggregate(_t(50), received, _ctx(6))
    assert out.tolist() == [25.0]


def test_dbridge_trims_neighbours_by_eq13_then_mixes() -> None:
    # neighbours 1, 2, 3, 4, 100 (|N_i| = 5): Eq. 13 ceil(2.5) = 3, cap floor(4/2) = 2:
    # trim 2 each side -> 3; x = 0.5 * 0 + 0.5 * 3 = 1.5
    out = build_defense("dbridge", {}).aggregate(_t(0), [_t(1), _t(2), _t(3), _t(4), _t(100)], _ctx(5))
    assert out.tolist() == [1.5]


def test_dbulyan_with_eleven_neighbours() -> None:
    # |N_i| = 11: Eq. 13 with rho_central 0.25: ceil(2.75) = 3, cap floor((11-3)/4) = 2 -> f = 2;
    # neighbours 0..9 and 1000, own -7 excluded. Iterated Krum picks theta = 11 - 4 = 7 with
    # k = (remaining) - 4 nearest (at least 1), ties to the earlier:
    #   11 left, k 7: s(4) = s(5) = 1+1+4+4+9+9+16 = 44 -> 4
    #   10 left, k 6: s(3) = s(5) = 43 -> 3;   9 left, k 5: s(6) = 1+1+4+9+16 = 31 -> 6
    #   8 left, k 4: s(7) = 1+4+4+25 = 34 -> 7;  7 left, k 3: s(2) = 1+4+9 = 14 -> 2
    #   6 left, k 2: s(8) = 1+9 = 10 -> 8;       5 left, k 1: s(0) = s(1) = 1 -> 0
    # picked {0, 2, 3, 4, 6, 7, 8}: median 4, beta = 7 - 4 = 3 closest: 4, 3, then 2 (tie
    # with 6, earlier row) -> mean 3; x = 0.5 * -7 + 0.5 * 3 = -2
    received = [_t(float(v)) for v in range(10)] + [_t(1000.0)]
    out = build_defense("dbulyan", {}).aggregate(_t(-7), received, _ctx(11))
    assert out.tolist() == [-2.0]


# ============================================================================= UBAR


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # 5 payloads, rho 0.4: ceil(2.0) = 2 closest to own 0: 1 and -1 (then 2, -3, 9).
        # The current sample (the default) accepts only -1 (loss 0.2 < own 0.4)
        # -> x = 0.5 * 0 + 0.5 * -1 = -0.5
        ({}, -0.5),
        # loss_sample = "fixed": the fixed batch accepts only 1 (loss 0.1 < own 0.5) -> x = 0.5
        ({"loss_sample": "fixed"}, 0.5),
    ],
    ids=["current-sample", "fixed-batch"],
)
def test_ubar_rho_0_4_scores_on_the_sample_it_is_told(params: dict[str, str], expected: float) -> None:
    fixed = _table({(0.0,): 0.5, (1.0,): 0.1, (-1.0,): 0.9})
    current = _table({(0.0,): 0.4, (1.0,): 0.8, (-1.0,): 0.2})
    received = [_t(1), _t(2), _t(-1), _t(-3), _t(9)]
    ctx = _ctx(5, loss_with=fixed, sample_loss_with=current)
    out = build_defense("ubar", params).aggregate(_t(0), received, ctx)
    assert out.tolist() == [expected]


# ============================================================================= loss threshold (Masuda & Shudo)

_LT = _table({(0.0,): 1.0, (8.0,): 1.0625, (16.0,): 1.5})


def test_loss_threshold_learns_alone_before_overfitting() -> None:
    # Masuda & Shudo Sec. IV: nobody beats own by theta = 0.1 and no overfitting yet -> own chunk
    out = build_defense("loss_threshold", {}).aggregate(_t(0), [_t(16), _t(8)], _ctx(2, loss_with=_LT))
    assert out.tolist() == [0.0]


def test_loss_threshold_takes_argmin_once_overfitting_was_detected() -> None:
    # patience 1: eval 1 sets the minimum, eval 2 (no improvement) detects overfitting;
    # theta = 0.0, still nobody passes (losses 1.5, 1.0625 > 1) -> Eq. 5 argmin [8]:
    # x = 0.5 * 0 + 0.5 * 8 = 4
    d = build_defense("loss_threshold", {"patience": 1})
    d.observe_evaluation(1, 0.9, 0.1)
    d.observe_evaluation(2, 0.9, 0.1)
    out = d.aggregate(_t(0), [_t(16), _t(8)], _ctx(2, loss_with=_LT))
    assert out.tolist() == [4.0]


def test_loss_threshold_patience_counts_epochs_not_evaluations() -> None:
    # 4 rounds per epoch, evaluation every round, patience 5 epochs: the minimum at
    # round 1 (epoch 0) is not beaten; epoch 5 starts at round 20 -> detection at round 20.
    d = build_defense("loss_threshold", {})
    assert isinstance(d, LossThreshold)
    d.set_epoch_length(4.0)
    d.observe_evaluation(1, 0.9, 0.1)
    for r in range(2, 20):
        d.observe_evaluation(r, 0.8, 0.1)
    before = d.theta
    d.observe_evaluation(20, 0.8, 0.1)
    assert (before, d.theta) == (pytest.approx(0.1), pytest.approx(0.0))


# ============================================================================= Sentinel


def test_sentinel_compares_running_means_with_k_from_own_mean_and_cutoff() -> None:
    # round 1: own loss 0.5, payload [1,0] loss 0.5 -> own mean 0.5, its mean 0.5: w = 1;
    #   x = (2 + 1) / 2 = 1.5
    # round 2: own loss 1.5 (own mean (0.5+1.5)/2 = 1.0, k = 1), payload [1,0] loss 1.5
    #   (its mean 1.0): w = exp(0) = 1 -- the current own loss 1.5 would give the same 1,
    #   so use a third sender: [1.5,0] loss 3.5 (mean 3.5): w = exp(-(3.5 - 1.0)) = 0.082 < 0.1
    #   -> 0; x = (2 + 1) / 2 = 1.5
    d = build_defense("sentinel", {})
    r1 = _table({(2.0, 0.0): 0.5, (1.0, 0.0): 0.5})
    first = d.aggregate(_t(2, 0), [_t(1, 0)], _ctx(1, loss_with=r1, round_=1))
    r2 = _table({(2.0, 0.0): 1.5, (1.0, 0.0): 1.5, (1.5, 0.0): 3.5})
    ctx2 = ChunkContext(node=0, round=2, index=0, senders=(1, 2), degree=2, loss_with=r2)
    second = d.aggregate(_t(2, 0), [_t(1, 0), _t(1.5, 0)], ctx2)
    assert first.tolist() == [1.5, 0.0] and second.tolist() == [1.5, 0.0]


def test_sentinel_weight_uses_own_running_mean_not_current_loss() -> None:
    # round 1: own 1.0; round 2: own 3.0 -> own mean 2.0, k = 0.5; payload loss 3.0 (mean 3.0):
    # w = exp(-0.5 * 1.0) = e^-0.5 (with the current own loss 3.0 it would be 1)
    # x = (2 + w * 1) / (1 + w) on the first coordinate
    d = build_defense("sentinel", {})
    d.aggregate(_t(2, 0), [_t(-1, 0)], _ctx(1, loss_with=_table({(2.0, 0.0): 1.0}), round_=1))
    r2 = _table({(2.0, 0.0): 3.0, (1.0, 0.0): 3.0})
    out = d.aggregate(_t(2, 0), [_t(1, 0)], _ctx(1, loss_with=r2, round_=2))
    w = math.exp(-0.5)
    assert out[0].item() == pytest.approx((2 + w) / (1 + w), abs=1e-6)


# ============================================================================= ALIE


def _alie_ctx(degree: int, byzantine: int, benign: list[list[float]], oracle: bool = False) -> AttackContext:
    observed = {10 + i: {0: np.asarray(b, dtype=np.float32)} for i, b in enumerate(benign)}
    k = Knowledge(
        observed={} if oracle else observed,
        oracle={10 + i: np.asarray(b, dtype=np.float32) for i, b in enumerate(benign)} if oracle else None,
    )
    return AttackContext(
        node=0,
        round=1,
        neighbor=7,
        own_vector=np.zeros(1, dtype=np.float32),
        own_before=np.zeros(1, dtype=np.float32),
        bounds=[(0, 1)],
        knowledge=k,
        neighborhood=Neighborhood(degree=degree, byzantine=byzantine),
        neighbor_is_colluder=False,
        rng=np.random.default_rng(0),
    )


def test_alie_records_the_z_used_per_neighbour() -> None:
    # degree 3, 1 Byzantine: n = 4, s = 3 - 1 = 2, Phi^-1((4-1-2)/3) = Phi^-1(1/3) = -0.4307
    # benign 1, 3: mean 2, std sqrt(2): payload 2 + 0.4307 * 1.4142 = 2.609
    a = build_attack("alie", {})
    a.bind(MNIST)
    out = a.craft({0: np.zeros(1, dtype=np.float32)}, _alie_ctx(3, 1, [[1.0], [3.0]]))
    metrics = a.round_metrics()
    assert out[0][0] == pytest.approx(2.609, abs=1e-3)
    assert metrics["alie_z"]["7"] == pytest.approx(-0.4307, abs=1e-4)


def test_alie_network_rule_of_masuda_shudo() -> None:
    # Masuda & Shudo Eq. 10: n = 10, B = 1: s = ceil(6) = 6, ratio (10-1-6)/9 = 1/3 -> z = -0.4307;
    # B = 3: (10-3-6)/7 = 1/7 -> Phi^-1(0.142857) = -1.0676; B = 5: ratio < 0 -> 0
    assert alie_z_network(10, 1) == pytest.approx(-0.4307, abs=1e-4)
    assert alie_z_network(10, 3) == pytest.approx(-1.0676, abs=1e-4)
    assert alie_z_network(10, 5) == 0.0


def test_alie_plan_warning_for_nonpositive_z() -> None:
    a = build_attack("alie", {})
    lines = z_warnings(a, nodes=16, byzantine=[0], neighborhoods={1: (3, 1), 2: (3, 1)})
    assert len(lines) == 1 and "z=-0.431" in lines[0] and "2 target(s)" in lines[0]


def test_alie_fixed_positive_z_has_no_warning() -> None:
    a = build_attack("alie", {"z": 1.5})
    assert z_warnings(a, nodes=16, byzantine=[0], neighborhoods={1: (3, 1)}) == []


def test_alie_backdoor_defaults_are_the_papers() -> None:
    # Baruch et al. 2019 Sec. 4.2: z = 0.2, upper-left 5x5 trigger at 255, target 0
    a = build_attack("alie_backdoor", {})
    a.bind(MNIST)
    assert isinstance(a, ALIEBackdoorAttack)
    # z is set by ALIEAttack._init_z, which ALIEBackdoorAttack borrows: mypy does not see it
    assert (a.z, a.target, a.trigger_size, a.trigger_value) == (0.2, 0, 5, 255.0)  # type: ignore[attr-defined]
    assert a.mask[:5, :5].all() and int(a.mask.sum()) == 25


def test_alie_backdoor_clips_to_mu_plus_minus_z_sigma() -> None:
    # benign 1, 3: mu 2, sigma sqrt(2); width 0.2 * 1.4142 = 0.2828; own 10 -> 2.2828
    a = build_attack("alie_backdoor", {})
    a.bind(MNIST)
    out = a.craft({0: np.array([10.0], dtype=np.float32)}, _alie_ctx(3, 1, [[1.0], [3.0]]))
    assert out[0][0] == pytest.approx(2.2828, abs=1e-4)


def test_scaling_is_targeted_with_an_asr_set() -> None:
    a = build_attack("scaling", {})
    a.bind(MNIST)
    images, labels = torch.zeros(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    asr_set = a.triggered_test_set(images, labels)
    assert asr_set is not None
    assert asr_set[1].tolist() == [0, 0] and a.batch_hook() is not None


def test_label_flip_random_never_keeps_the_label() -> None:
    a = build_attack("label_flip", {"mode": "random"})
    a.bind(MNIST)
    assert isinstance(a, LabelFlipAttack)
    labels = torch.arange(10).repeat(20)
    flipped = a.flip(labels, torch.Generator().manual_seed(0))
    assert bool((flipped != labels).all()) and len(set(flipped.tolist())) == 10


# ============================================================================= schedule, placement


def test_fading_lr_is_guos_rule() -> None:
    # Guo et al. 2022 Sec. VI-A: lambda(k) = 0.05 * 20 / (20 + k): k = 0 -> 0.05, k = 20 -> 0.025, k = 60 -> 0.0125
    f = lr_schedule("fading", 0.05)
    assert (f(0), f(20), f(60)) == (0.05, 0.025, 0.0125)


def test_step_lr() -> None:
    # 0.1 * 0.5^(k // 3): k = 2 -> 0.1, k = 3 -> 0.05, k = 7 -> 0.025
    f = lr_schedule("step", 0.1, step_epochs=3, step_gamma=0.5)
    assert (f(2), f(3), f(7)) == (0.1, 0.05, 0.025)


def test_added_placement_puts_byzantine_after_the_benign_graph() -> None:
    # 10 nodes, 3 added: ids 7, 8, 9; every added peer links only to benign ids 0..6
    byz = choose_byzantine(10, seed=1, count=3, placement="added")
    edges = attach_added(10, 3, seed=1, p=0.4)
    assert byz == [7, 8, 9]
    assert {b for _, b in edges} == {7, 8, 9} and all(v < 7 for v, _ in edges)


def test_added_placement_in_the_plan_keeps_the_benign_graph_intact(tmp_path) -> None:
    from coordinator.plan import build_plan
    from protocol.config import load

    path = tmp_path / "c.toml"
    path.write_text(
        'name = "t"\nseed = 3\nnodes = 13\nrounds = 1\n[topology]\nkind = "erdos_renyi"\np = 0.4\n'
        '[data]\ndataset = "synthetic"\n[model]\nname = "mlp"\n'
        '[byzantine]\ncount = 3\nplacement = "added"\nattack = "gaussian"\n'
    )
    plan = build_plan(load(path))
    benign = plan.graph.subgraph(range(10))
    assert plan.byzantine == [10, 11, 12]
    assert nx.is_connected(benign) and not any(plan.graph.has_edge(a, b) for a in (10, 11) for b in (11, 12) if a != b)


def test_lr_schedule_follows_epochs_and_survives_a_checkpoint() -> None:
    # 8 samples, batch 4: 2 steps per epoch; fading with c = 1: epoch k -> lr 0.5 / (1 + k).
    # A trainer restored after 3 steps (mid epoch 1) continues bit for bit like the original.
    from torch import nn

    from peer.training import LocalTrainer

    def trainer(model: nn.Module) -> LocalTrainer:
        torch.manual_seed(0)
        images, labels = torch.randn(8, 3), torch.tensor([0, 1] * 4)
        return LocalTrainer(
            model=model,
            images=images,
            labels=labels,
            batch_size=4,
            lr=0.5,
            momentum=0.0,
            weight_decay=0.0,
            seed=5,
            lr_at=lr_schedule("fading", 0.5, fading=1.0),
        )

    torch.manual_seed(1)
    a_model = nn.Linear(3, 2)
    b_model = nn.Linear(3, 2)
    b_model.load_state_dict(a_model.state_dict())
    a = trainer(a_model)
    a.train(3)
    lr_mid = a.optimizer.lr
    b = trainer(b_model)
    b_model.load_state_dict(a_model.state_dict())
    b.load_state_dict(a.state_dict())
    a.train(3)
    b.train(3)
    assert (lr_mid, a.optimizer.lr, a.epoch) == (0.25, 0.5 / 3, 2)
    assert all(torch.equal(p, q) for p, q in zip(a_model.parameters(), b_model.parameters()))
