"""DFL-Dual (Sun et al. 2024, §4) and its baselines DFLDetector and BridgeM,
in-process; expected values derived by hand in the comments."""

from __future__ import annotations

import torch

from peer.defenses import ChunkContext, ModelProbe, build_defense, ops
from peer.defenses.dfl_detector import DFLDetector
from peer.defenses.dfl_dual import DFLDual


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _ctx(m: int, *, round_: int = 1, own_before: torch.Tensor | None = None, probe=None) -> ChunkContext:
    return ChunkContext(
        node=0,
        round=round_,
        index=0,
        senders=tuple(range(1, m + 1)),
        degree=m,
        own_before=own_before,
        probe=probe,
    )


# ============================================================================= shared math


def test_two_median_splits_scalars_into_their_two_groups() -> None:
    # 1, 2 | 10, 11, 12: cost 1 + 2 = 3; any other split costs more
    assert ops.two_median_1d([10.0, 1.0, 11.0, 2.0, 12.0]) == ([1, 3], [0, 2, 4])


def test_wasserstein_of_equal_size_samples_is_the_mean_gap_of_sorted_values() -> None:
    # column 0: sorted (0, 1) vs (2, 3) -> mean |0-2|, |1-3| = 2; column 1: (5, 5) vs (5, 5) -> 0
    a = torch.tensor([[1.0, 5.0], [0.0, 5.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 5.0], [3.0, 5.0]], dtype=torch.float64)

    assert ops.wasserstein_1d_sum(a, b) == 2.0


def test_lbfgs_recovers_a_scaled_identity_from_one_pair() -> None:
    # dw = (1, 0), dg = (2, 0): sigma = 2; for v = (1, 0): rhs = (2, 2), matrix
    # [[-2, 0], [0, 2]] -> p = (-1, 1), Hv = 2v - (dg * -1 + 2 dw * 1) = (2, 0);
    # for v = (0, 1): rhs = 0 -> Hv = sigma v = (0, 2)
    dw, dg = [torch.tensor([1.0, 0.0], dtype=torch.float64)], [torch.tensor([2.0, 0.0], dtype=torch.float64)]

    assert ops.lbfgs_hvp(dw, dg, torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist() == [2.0, 0.0]
    assert ops.lbfgs_hvp(dw, dg, torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist() == [0.0, 2.0]


def test_two_means_and_the_gap_statistic_find_one_outlying_score() -> None:
    low, high, _ = ops.kmeans2_1d([0.0, 0.1, 5.0, 5.2])

    assert (low, high) == ([0, 1], [2, 3])
    assert ops.gap_prefers_two([0.0, 0.0, 0.0, 1.0], refs=10, seed=0)
    assert not ops.gap_prefers_two([0.5, 0.5, 0.5, 0.5], refs=10, seed=0)


# ============================================================================= DFL-Dual


def test_dfl_dual_two_stage_selection_by_hand() -> None:
    # candidates 0 (own), 1 (honest), 2 and 3 (colluding); D: 1 inside {0,1} and {2,3},
    # 10 across; trust 1, .9, -.5, -.5.
    # stage 1: j = 0: {1} | {2, 3} -> trust .9 > -.5 -> M*_0 = {1}, q_0 = 1; j = 1: q_1 = 1;
    # j = 2: {3} (D 1, trust -.5) | {0, 1} (D 10, trust .95) -> M*_2 = {0, 1}, q_2 = 20;
    # q_3 = 20. r = (1, 1, min(20, C2 = 10), 10); stage 2: {0, 1} | {2, 3} -> {0, 1}
    d = torch.tensor([[0, 1, 10, 10], [1, 0, 10, 10], [10, 10, 0, 1], [10, 10, 1, 0]], dtype=torch.float64)

    assert DFLDual().select(d, [1.0, 0.9, -0.5, -0.5]) == [0, 1]


def test_dfl_dual_keeps_the_trusted_group_when_it_is_the_minority() -> None:
    # own (10, 0), honest (10, 1), two colluders (-10, 0), (-10, 1): the same structure as
    # above from Euclidean distances (W = 0 without a model) and cosines (.995, -1, -.995);
    # the colluders are a majority of the payloads, yet the mean of own and honest is kept
    out = build_defense("dfl_dual", {}).aggregate(_t(10, 0), [_t(10, 1), _t(-10, 0), _t(-10, 1)], _ctx(3))

    assert out.tolist() == [10.0, 0.5]


def _probe() -> tuple[ModelProbe, torch.nn.Module]:
    """A 4-pixel, 2-class logistic regression whose chunk is the whole weight matrix."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    base = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def model_with(payload: torch.Tensor) -> torch.nn.Module:
        vec = base.clone()
        vec[0:8] = payload
        torch.nn.utils.vector_to_parameters(vec, model.parameters())
        return model

    return ModelProbe(model_with, (0, 8), (1, 2, 2), 2, steps=1, lr=1.0), model


def test_dfl_dual_data_distance_is_zero_between_equal_models_and_positive_otherwise() -> None:
    probe, _ = _probe()
    before = torch.zeros(8)
    own, same, other = torch.full((8,), 0.1), torch.full((8,), 0.1), torch.linspace(-1, 1, 8)
    rule = DFLDual(samples_per_class=3, inversion_steps=3)

    w = rule.data_distances(probe, before, 1, (own, same, other))

    assert w is not None
    assert w[0, 1] == 0.0 and w[0, 2] > 0.0 and w[1, 2] == w[0, 2]


def test_dfl_dual_inversion_restores_the_models_gradient_flags() -> None:
    probe, model = _probe()
    rule = DFLDual(samples_per_class=1, inversion_steps=1)

    rule.data_distances(probe, torch.zeros(8), 1, (torch.ones(8), torch.zeros(8)))

    assert all(p.requires_grad for p in model.parameters())


# ============================================================================= DFLDetector


def test_dfl_detector_flags_the_neighbour_whose_updates_are_unpredictable() -> None:
    # own chunk moves by u = 1 a round; senders 1-3 send before + u (predicted exactly:
    # last update u plus curvature from (dw = u, dg = 0) = 0), sender 4 alternates
    # before +- 5. Its normalised distance is 1, the others' 0: after warmup the gap
    # statistic prefers two clusters and 2-means flags {4}; then the result is
    # before + u (own and the three honest).
    rule = build_defense("dfl_detector", {"warmup": 2})
    assert isinstance(rule, DFLDetector)
    out = None
    for t in range(1, 7):
        before = torch.full((2,), float(t - 1))
        honest = before + 1
        bad = before + (5.0 if t % 2 else -5.0)
        out = rule.aggregate(honest, [honest, honest, honest, bad], _ctx(4, round_=t, own_before=before))

    assert rule.flagged == {4}
    assert out is not None and out.tolist() == [6.0, 6.0]


def test_dfl_detector_averages_everything_before_any_evidence() -> None:
    # round 1: no prediction yet -> (0 + 2 + 4) / 3 = 2
    out = build_defense("dfl_detector", {}).aggregate(_t(0), [_t(2), _t(4)], _ctx(2, own_before=_t(0)))

    assert float(out) == 2.0


# ============================================================================= BridgeM


def test_bridge_m_is_the_coordinate_wise_median() -> None:
    # (0, 5), (1, -5), (10, 0): medians 1 and 0
    out = build_defense("bridge_m", {}).aggregate(_t(0, 5), [_t(1, -5), _t(10, 0)], _ctx(2))

    assert out.tolist() == [1.0, 0.0]


def _lenet_probe(lo: int, hi: int) -> tuple[ModelProbe, torch.Tensor]:
    from peer.models import build_model

    torch.manual_seed(3)
    model = build_model("lenet", in_channels=1, image_size=28)
    flat = torch.nn.utils.parameters_to_vector(model.parameters()).detach()

    def model_with(payload: torch.Tensor) -> torch.nn.Module:
        values = flat.clone()
        values[lo:hi] = payload
        torch.nn.utils.vector_to_parameters(values, model.parameters())
        return model

    return ModelProbe(model_with, (lo, hi), (1, 28, 28), 10, 1, 0.1), flat


def _invert_through_every_parameter(probe, payload, target, start, labels, steps, lr) -> torch.Tensor:
    """Eq. 5 as first written: the whole gradient, then the chunk's slice of it."""
    model = probe.model_with(payload)
    params = list(model.parameters())
    lo, hi = probe.span
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])[lo:hi]
        (dx,) = torch.autograd.grad((flat - target).pow(2).sum(), x)
        x.grad = dx
        opt.step()
    return x.detach()


def test_inversion_through_the_chunks_layers_only_is_bit_identical_to_the_whole_gradient() -> None:
    from peer.defenses import inversion

    # LeNet's 61,706 parameters: [0, 2,572) the convolutions, then fc1's weight (48,000)
    # and bias, fc2, fc3. Spans inside fc1's weight, across fc1/fc2 and over the
    # convolutions into fc1 (the first of 8 chunks).
    for lo, hi in ((20_000, 27_713), (50_000, 57_713), (0, 7_713)):
        probe, flat = _lenet_probe(lo, hi)
        gen = torch.Generator().manual_seed(lo)
        payload = flat[lo:hi] + 0.01 * torch.randn(hi - lo, generator=gen)
        target = 0.01 * torch.randn(hi - lo, generator=gen)
        labels = inversion.dummy_labels(10, 2)
        start = inversion.dummy_start(probe, 2, seed=0)

        got = inversion.invert(probe, payload, target, start, labels, steps=3, lr=0.1)
        want = _invert_through_every_parameter(probe, payload, target, start, labels, 3, 0.1)

        assert torch.equal(got, want), (lo, hi)
        assert not torch.equal(got, start)  # the steps moved the dummy images
