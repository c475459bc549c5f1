"""Attacks that train with the Byzantine peer's own model and data (peer/attacks/base.py
OwnTraining): alie_backdoor's training from mu (Baruch et al. 2019 Algorithm 4) and back_gradient's
poison optimisation (Muñoz-González et al. 2017). Tiny models and data; expected values
derived by hand in the comments, or from a finite-difference estimate."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from coordinator.plan import build_plan
from peer import data as datasets
from peer.attacks import build_attack
from peer.attacks.alie_backdoor import ALIEBackdoorAttack
from peer.attacks.base import AttackContext, DataInfo, Knowledge, Neighborhood, OwnTraining
from peer.attacks.optim import UnrolledProblem, train_from
from peer.core import NodeCore
from peer.data import test_subset
from peer.registry import RegistryError
from protocol.config import from_dict

#: one-pixel "images" whose trigger value is 1.0: normalise(255) = (1 - 0) / 1
PIXEL = DataInfo(num_classes=2, image_shape=(1, 1, 1), mean=0.0, std=1.0)
MNIST = DataInfo(num_classes=10, image_shape=(1, 28, 28), mean=0.1307, std=0.3081)
WHITE = (1.0 - 0.1307) / 0.3081


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread, as every peer runs (peer/runtime.py): on a loaded 2-core machine
    two threads make these tiny autograd calls ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _two_weight_model() -> nn.Module:
    """logits = [w0 * x, w1 * x] for a one-pixel image x: the flattened vector is [w0, w1]."""
    return nn.Sequential(nn.Flatten(), nn.Linear(1, 2, bias=False))


def _own(
    model: nn.Module,
    vector: list[float],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    lr: float = 1.0,
    seed: int = 0,
    batch_size: int = 1,
) -> OwnTraining:
    return OwnTraining(
        model=model,
        images=images,
        labels=labels,
        vector=np.asarray(vector, dtype=np.float32),
        batch_size=batch_size,
        local_steps=1,
        lr=lr,
        momentum=0.0,
        weight_decay=0.0,
        seed=seed,
    )


def _ctx(own: OwnTraining, benign: dict[int, list[list[float]]]) -> AttackContext:
    """Two chunks of one weight each; ``benign[c]`` = the chunks of index c that honest
    senders 10, 11, ... sent this round."""
    observed: dict[int, dict[int, np.ndarray]] = {}
    for c, rows in benign.items():
        for i, row in enumerate(rows):
            observed.setdefault(10 + i, {})[c] = np.asarray(row, dtype=np.float32)
    return AttackContext(
        node=0,
        round=1,
        neighbor=1,
        own_vector=own.vector,
        own_before=own.vector,
        bounds=[(0, 1), (1, 2)],
        knowledge=Knowledge(observed=observed),
        neighborhood=Neighborhood(degree=3, byzantine=1),
        neighbor_is_colluder=False,
        rng=np.random.default_rng(0),
        own=own,
    )


def _alie_backdoor(**params: object):
    attack = build_attack("alie_backdoor", {"trigger_size": 1, "samples": 1, "epochs": 1, **params})
    attack.bind(PIXEL)
    return attack


def _payload(own: OwnTraining) -> dict[int, np.ndarray]:
    return {0: own.vector[0:1].copy(), 1: own.vector[1:2].copy()}


# ============================================================================= training from mu


def test_train_from_takes_two_sgd_steps_on_the_mixed_loss() -> None:
    # Arrange: w = [w0, w1] from [0, 0], one image x = 1 of class 0, alpha = 0.5, lr = 1.
    # Step 1: logits [0, 0], softmax [1/2, 1/2]: dCE/dw = [-1/2, 1/2]; l_Delta's gradient
    #   2 (w - start) / d is 0 -> w = -0.5 * [-1/2, 1/2] = [0.25, -0.25].
    # Step 2: logits [0.25, -0.25], p0 = 1 / (1 + e^-0.5) = 0.622459: dCE/dw = [-0.377541, 0.377541];
    #   l_Delta: 2 * [0.25, -0.25] / 2 = [0.25, -0.25], weighted 0.5 -> [0.125, -0.125];
    #   total 0.5 * [-0.377541, 0.377541] + [0.125, -0.125] = [-0.063770, 0.063770]
    #   -> w = [0.313770, -0.313770].
    # Loss before: 0.5 * ln 2 = 0.346574; after: 0.5 * ln(1 + e^-0.627541) + 0.5 * 0.313770^2 = 0.263134
    model = _two_weight_model()
    data = (torch.ones(1, 1, 1, 1), torch.tensor([0]))

    v, before, after = train_from(
        model,
        np.zeros(2, dtype=np.float32),
        data,
        alpha=0.5,
        lr=1.0,
        epochs=2,
        batch_size=1,
        generator=torch.Generator().manual_seed(0),
    )

    assert v.tolist() == pytest.approx([0.3137703, -0.3137703], abs=1e-6)
    assert (before, after) == pytest.approx((0.3465736, 0.2631337), abs=1e-6)


def test_alie_backdoor_sends_the_model_trained_from_mu_when_it_stays_in_the_spread() -> None:
    # Arrange: benign chunk 0 = {1, 3}: mu 2, sigma sqrt 2; chunk 1 = {-1, 1}: mu 0, sigma sqrt 2.
    # The own model [5, 5] is far away: training starts from mu = [2, 0], not from it.
    # One step, alpha = 0.2, lr 1, the stamped image x = 1 labelled target 0: logits [2, 0],
    # p0 = e^2 / (e^2 + 1) = 0.880797 -> dCE/dw = [-0.119203, 0.119203], l_Delta 0 at the start
    # -> v = [2 + 0.2 * 0.119203, -0.2 * 0.119203] = [2.023841, -0.023841]; z = 0.2: the
    # clip interval mu +- 0.2 * 1.414214 = +-0.282843 does not bind.
    own = _own(_two_weight_model(), [5.0, 5.0], torch.full((1, 1, 1, 1), -3.0), torch.tensor([1]))
    attack = _alie_backdoor()

    out = attack.craft(_payload(own), _ctx(own, {0: [[1.0], [3.0]], 1: [[-1.0], [1.0]]}))

    assert [out[0][0], out[1][0]] == pytest.approx([2.0238406, -0.0238406], abs=1e-6)


def test_alie_backdoor_clips_the_trained_model_to_mu_plus_minus_z_sigma() -> None:
    # As above with z = 0.01: half-width 0.01 * sqrt 2 = 0.0141421 < 0.0238406, so both
    # coordinates sit on the clip bound: [2 + 0.0141421, 0 - 0.0141421]
    own = _own(_two_weight_model(), [5.0, 5.0], torch.full((1, 1, 1, 1), -3.0), torch.tensor([1]))
    attack = _alie_backdoor(z=0.01)

    out = attack.craft(_payload(own), _ctx(own, {0: [[1.0], [3.0]], 1: [[-1.0], [1.0]]}))

    assert [out[0][0], out[1][0]] == pytest.approx([2.0 + 0.01 * math.sqrt(2), -0.01 * math.sqrt(2)], abs=1e-6)


def test_alie_backdoor_starts_from_mu_where_known_and_from_the_own_chunk_elsewhere() -> None:
    # chunk 0: benign {1, 3} -> mu 2; chunk 1: no benign chunk known -> the own chunk 5
    own = _own(_two_weight_model(), [5.0, 5.0], torch.zeros(1, 1, 1, 1), torch.tensor([1]))

    start = _alie_backdoor().start_vector(_ctx(own, {0: [[1.0], [3.0]]}))

    assert start.tolist() == [2.0, 5.0]


def test_alie_backdoor_training_reduces_the_mixed_loss() -> None:
    # Baruch et al.'s defaults (alpha 0.2, 5 passes) on 32 random MNIST-shaped images, logistic regression
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    vector = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    own = _own(model, vector.tolist(), torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,)), lr=0.05, batch_size=8)
    attack = build_attack("alie_backdoor", {"samples": 32})
    attack.bind(MNIST)
    ctx = dataclasses.replace(_ctx(own, {}), bounds=[(0, vector.size)])

    attack.craft({0: vector.copy()}, ctx)
    before, after = attack.round_metrics()["alie_backdoor_loss"]

    assert after < 0.5 * before


def test_alie_backdoor_set_is_fully_triggered_and_labelled_with_the_target() -> None:
    # Baruch et al. 2019 Sec. 4.2: upper-left 5x5 pixels at 255 (normalised: WHITE), every sample target 0
    attack = build_attack("alie_backdoor", {"samples": 3})
    attack.bind(MNIST)
    assert isinstance(attack, ALIEBackdoorAttack)
    own = _own(nn.Linear(1, 1), [0.0, 0.0], torch.zeros(5, 1, 28, 28), torch.tensor([1, 2, 3, 4, 5]))

    x, y = attack.backdoor_set(own, torch.Generator().manual_seed(0))

    assert y.tolist() == [0, 0, 0]
    assert torch.all(x[:, 0, :5, :5] == WHITE) and float(x[:, 0, 5:, :].abs().sum()) == 0.0


def test_alie_backdoor_trains_once_per_round_and_is_deterministic() -> None:
    torch.manual_seed(1)
    images, labels = torch.randn(12, 1, 1, 1), torch.randint(0, 2, (12,))
    outs = []
    for _ in range(2):
        own = _own(_two_weight_model(), [0.5, -0.5], images, labels, lr=0.3, seed=7, batch_size=3)
        attack = _alie_backdoor(z=5.0, samples=6, epochs=2)
        ctx = _ctx(own, {0: [[0.0], [1.0]], 1: [[0.0], [1.0]]})
        outs.append([attack.craft(_payload(own), ctx)[c][0] for c in (0, 1)])
        outs.append([attack.craft(_payload(own), dataclasses.replace(ctx, neighbor=2))[c][0] for c in (0, 1)])

    assert outs[0] == outs[1] == outs[2] == outs[3]  # same v for both neighbors, same in a rerun


def test_alie_backdoor_without_from_mu_clips_the_own_chunk() -> None:
    # from_mu = false: own 5 clipped to mu 2 + 0.2 * sqrt 2 = 2.282843 (chunk 0), 0 + 0.282843 (chunk 1)
    own = _own(_two_weight_model(), [5.0, 5.0], torch.zeros(1, 1, 1, 1), torch.tensor([1]))

    out = _alie_backdoor(from_mu=False).craft(_payload(own), _ctx(own, {0: [[1.0], [3.0]], 1: [[-1.0], [1.0]]}))

    assert [out[0][0], out[1][0]] == pytest.approx([2.2828427, 0.2828427], abs=1e-6)


# ============================================================================= back-gradient


def _logreg_problem(steps: int, lr: float) -> tuple[UnrolledProblem, tuple[torch.Tensor, torch.Tensor]]:
    """A float64 logistic regression (2 features, 3 classes) with random start, clean
    batches (5 samples), validation set (6) and poison set (4), weight phi = 0.3."""
    g = torch.Generator().manual_seed(3)
    start = {
        "weight": torch.randn(3, 2, generator=g, dtype=torch.float64),
        "bias": torch.randn(3, generator=g, dtype=torch.float64),
    }
    poison = (torch.randn(4, 2, generator=g, dtype=torch.float64), torch.tensor([0, 2, 1, 2]))
    clean = [
        (torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g))
        for _ in range(steps)
    ]
    val = (torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g))
    problem = UnrolledProblem(
        model=nn.Linear(2, 3).double(), start=start, clean=clean, validation=val, lr=lr, weight=0.3
    )
    return problem, poison


@pytest.mark.parametrize("steps", [1, 3])
def test_poison_gradient_matches_central_finite_differences(steps: int) -> None:
    # dA/dx_p[i, k] ~ (A(x + h e_ik) - A(x - h e_ik)) / 2h, h = 1e-6, in float64
    problem, (xp, yp) = _logreg_problem(steps, lr=0.7)

    value, grad = problem.gradient((xp, yp))
    h = 1e-6
    fd = torch.zeros_like(xp)
    for i in range(xp.shape[0]):
        for k in range(xp.shape[1]):
            e = torch.zeros_like(xp)
            e[i, k] = h
            fd[i, k] = (problem.value((xp + e, yp)) - problem.value((xp - e, yp))) / (2 * h)

    assert value == pytest.approx(problem.value((xp, yp)), abs=1e-12)
    assert float(grad.abs().max()) > 1e-3  # the poison does move the validation loss
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_one_unrolled_step_is_sgd_on_the_weighted_clean_plus_poison_loss() -> None:
    # T = 1 by hand: w1 = w0 - lr * grad[(1 - phi) CE(clean) + phi CE(poison)], then A = CE(val; w1)
    problem, poison = _logreg_problem(1, lr=0.5)
    w = {n: t.clone().requires_grad_(True) for n, t in problem.start.items()}
    (xc, yc), (xv, yv) = problem.clean[0], problem.validation
    loss = 0.7 * nn.functional.cross_entropy(
        nn.functional.linear(xc, w["weight"], w["bias"]), yc
    ) + 0.3 * nn.functional.cross_entropy(nn.functional.linear(poison[0], w["weight"], w["bias"]), poison[1])
    gw, gb = torch.autograd.grad(loss, [w["weight"], w["bias"]])
    expected = nn.functional.cross_entropy(
        nn.functional.linear(xv, problem.start["weight"] - 0.5 * gw, problem.start["bias"] - 0.5 * gb), yv
    )

    assert problem.value(poison) == pytest.approx(expected.item(), abs=1e-12)


def _bg_own(seed: int = 5) -> OwnTraining:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    vector = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()
    images = torch.rand(60, 1, 28, 28).sub(0.1307).div(0.3081)  # valid normalised MNIST pixels
    return _own(model, vector.tolist(), images, torch.randint(0, 10, (60,)), lr=0.1, seed=seed, batch_size=8)


def _back_gradient(**params: object):
    attack = build_attack("back_gradient", {"points": 4, "validation": 16, "unroll": 2, "iterations": 3, **params})
    attack.bind(MNIST)
    return attack


def test_back_gradient_raises_the_validation_loss_and_stays_in_the_pixel_box() -> None:
    attack = _back_gradient(step=0.5)

    (xp, yp), (first, best) = attack.optimise(_bg_own())

    assert best > first
    low, high = (0.0 - 0.1307) / 0.3081, (1.0 - 0.1307) / 0.3081
    assert float(xp.min()) >= low - 1e-6 and float(xp.max()) <= high + 1e-6


def test_back_gradient_poison_labels_are_flipped_and_fixed() -> None:
    # the poison points are the first 4 of the round's permutation of the shard, labels
    # moved by r in 1..9: none keeps its label
    own = _bg_own()
    attack = _back_gradient()
    (x0, y0), _ = attack.problem(own)
    order = torch.randperm(60, generator=own.generator(0x42475244))[:4]

    (xp, yp), _ = attack.optimise(own)

    assert torch.equal(yp, y0)
    assert bool((yp != own.labels[order]).all())


def test_back_gradient_is_deterministic_per_round_seed() -> None:
    a, b, c = _back_gradient(), _back_gradient(), _back_gradient()

    pa, pb, pc = a.optimise(_bg_own(seed=5))[0][0], b.optimise(_bg_own(seed=5))[0][0], c.optimise(_bg_own(seed=6))[0][0]

    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_back_gradient_batch_hook_mixes_ceil_fraction_b_poison_rows() -> None:
    # B = 8, fraction 0.3 -> ceil(2.4) = 3 rows replaced by poison points, 5 untouched
    attack = _back_gradient(fraction=0.3)
    attack.prepare(1, _bg_own())
    xp, yp = attack._poison
    images, labels = torch.full((8, 1, 28, 28), 7.0), torch.full((8,), 9)

    x, y = attack.batch_hook()(images, labels, torch.Generator().manual_seed(0))

    poisoned = [i for i in range(8) if not torch.equal(x[i], images[i])]
    assert len(poisoned) == 3
    for i in poisoned:
        j = next(j for j in range(len(yp)) if torch.equal(x[i], xp[j]))
        assert y[i] == yp[j]
    assert all(y[i] == 9 for i in range(8) if i not in poisoned)


def test_back_gradient_checkpoint_state_leaves_out_the_round_poison() -> None:
    attack = _back_gradient()
    attack.prepare(1, _bg_own())

    state = attack.state_dict()

    assert "_poison" not in state and state["points"] == 4


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("back_gradient", {"points": 0}, "points=0 must be an integer >= 1"),
        ("back_gradient", {"unroll": 0}, "unroll=0 must be an integer >= 1"),
        ("back_gradient", {"fraction": 1.0}, "fraction=1.0 must be in (0.0, 1.0)"),
        ("back_gradient", {"step": 0}, "step=0 must be in (0.0, 1.0]"),
        ("back_gradient", {"flip": "swap"}, "flip='swap' is unknown; choose one of random, reverse"),
        ("back_gradient", {"lr": -1}, "lr=-1 must be a finite number > 0"),
        ("alie_backdoor", {"alpha": 2}, "alpha=2 must be in [0.0, 1.0]"),
        ("alie_backdoor", {"samples": 0}, "samples=0 must be an integer >= 1"),
        ("alie_backdoor", {"from_mu": "yes"}, "from_mu='yes' must be true or false"),
    ],
)
def test_bad_parameters_are_one_line_registry_errors(name: str, params: dict, message: str) -> None:
    with pytest.raises(RegistryError) as exc:
        build_attack(name, params)

    assert str(exc.value) == f"byzantine.attack={name!r}: {message}"


# ============================================================================= in a node core


def _byzantine_core(attack: str, params: dict) -> NodeCore:
    cfg = from_dict(
        {
            "name": "own-training",
            "seed": 4,
            "nodes": 3,
            "rounds": 2,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "root": "", "synthetic_size": 90, "test_samples": 20},
            "model": {"name": "logreg"},
            "train": {"local_steps": 2, "batch_size": 8, "lr": 0.1},
            "chunks": {"count": 4, "per_neighbor": 2},
            "byzantine": {"count": 1, "attack": attack, "params": params},
        }
    )
    plan = build_plan(cfg)
    node = next(n for n in range(3) if plan.assignment(n).role.byzantine)
    train = datasets.load("synthetic", None, train=True, synthetic_size=90, seed=4)
    test = test_subset(datasets.load("synthetic", None, train=False, synthetic_size=90, seed=4), 20)
    return NodeCore(plan.assignment(node), train_data=train, test_set=test)


def test_a_byzantine_core_runs_back_gradient_before_training_and_reports_its_loss() -> None:
    cores = [_byzantine_core("back_gradient", {"points": 4, "iterations": 2}) for _ in range(2)]

    for core in cores:
        core.train(1)
    metrics = [core.end_round(1, {}).metrics for core in cores]

    first, best = metrics[0]["back_gradient_loss"]
    assert best >= first
    assert metrics[0] == metrics[1]  # same digest and loss: deterministic


def test_a_byzantine_core_hands_alie_backdoor_its_model_at_craft_time() -> None:
    core = _byzantine_core("alie_backdoor", {"samples": 16, "epochs": 1})
    core.train(1)

    core.outgoing(1, Knowledge())
    metrics = core.end_round(1, {}).metrics

    before, after = metrics["alie_backdoor_loss"]
    assert after < before
