"""Tests for the Byzantine attacks under peer/attacks/ (expected values derived by hand)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from peer.attacks import ATTACKS, AttackContext, build_attack, ops
from peer.attacks.backdoor import BackdoorAttack
from peer.attacks.base import Attack, DataInfo, Knowledge, Neighborhood
from peer.attacks.dba import DistributedBackdoorAttack
from peer.attacks.krum_attack import lambda_upper_bound
from peer.attacks.ops import alie_z
from peer.defenses import ChunkContext, build_defense
from peer.registry import RegistryError
from peer.training import BatchHook

# MNIST-like: 10 classes, 1x28x28, the usual normalisation
MNIST = DataInfo(num_classes=10, image_shape=(1, 28, 28), mean=0.1307, std=0.3081)
#: normalise(255) by hand: (255/255 - 0.1307) / 0.3081
WHITE = (1.0 - 0.1307) / 0.3081


def _ctx(
    *,
    own: list[float] | None = None,
    before: list[float] | None = None,
    benign: list[list[float]] | None = None,
    degree: int = 6,
    byzantine: int = 2,
    seed: int = 0,
) -> AttackContext:
    """One chunk (index 0) covering the whole vector; ``benign`` rows are the round-t
    chunks of honest senders 10, 11, ... as observed by this attacker."""
    own_v = np.asarray(own if own is not None else [0.0, 0.0], dtype=np.float32)
    before_v = np.asarray(before if before is not None else np.zeros(own_v.size), dtype=np.float32)
    observed = {10 + i: {0: np.asarray(b, dtype=np.float32)} for i, b in enumerate(benign or [])}
    return AttackContext(
        node=0,
        round=1,
        neighbor=1,
        own_vector=own_v,
        own_before=before_v,
        bounds=[(0, own_v.size)],
        knowledge=Knowledge(observed=observed),
        neighborhood=Neighborhood(degree=degree, byzantine=byzantine),
        neighbor_is_colluder=False,
        rng=np.random.default_rng(seed),
    )


def _craft(name: str, params: dict, ctx: AttackContext) -> np.ndarray:
    attack = build_attack(name, params)
    attack.bind(MNIST)
    payload = {0: np.array(ctx.own_vector, dtype=np.float32)}
    return attack.craft(payload, ctx)[0]


# ----------------------------------------------------------------------------- ALIE


def test_alie_z_for_fifty_workers_and_twenty_four_byzantine_is_the_papers_1_43() -> None:
    # s = floor(50/2 + 1) - 24 = 2; Phi(z) < (50 - 24 - 2) / (50 - 24) = 24/26 = 0.9231
    # -> z = Phi^-1(0.9231) = 1.426 (normal table: Phi(1.42) = 0.9222, Phi(1.43) = 0.9236)
    assert round(alie_z(50, 24), 2) == 1.43


def test_alie_z_for_seven_candidates_and_two_byzantine() -> None:
    # s = floor(7/2 + 1) - 2 = 4 - 2 = 2; (7 - 2 - 2) / (7 - 2) = 3/5 = 0.6
    # table: Phi(0.25) = 0.5987, Phi(0.26) = 0.6026 -> z = 0.25 + 0.0013/0.0039 * 0.01 = 0.2533
    assert alie_z(7, 2) == pytest.approx(0.2533, abs=5e-4)


def test_alie_z_is_zero_when_the_quantile_is_one_half() -> None:
    # n = 5, f = 1: s = 3 - 1 = 2; (4 - 2) / 4 = 0.5 -> Phi^-1(0.5) = 0
    assert alie_z(5, 1) == 0.0


@pytest.mark.parametrize(("n", "f"), [(1, 0), (3, 2), (2, 2), (4, 3)])
def test_alie_z_without_enough_benign_supporters_is_zero(n: int, f: int) -> None:
    # (3, 2): s = floor(2.5) - 2 = 0 -> clamped to 1; n - f - s = 1 - 1 = 0 -> z = 0
    assert alie_z(n, f) == 0.0


def test_alie_sends_mean_minus_z_sample_std() -> None:
    # stack [[1,2],[3,4],[5,6]]: mu = [3, 4]; deviations (-2, 0, 2) per column ->
    # sample variance 8/2 = 4 -> sigma = [2, 2]; z = 1 -> mu - sigma = [1, 2]
    ctx = _ctx(benign=[[1, 2], [3, 4], [5, 6]])

    out = _craft("alie", {"z": 1.0}, ctx)

    assert out.tolist() == [1.0, 2.0]


def test_alie_takes_z_from_the_receivers_neighborhood() -> None:
    # degree 6, 2 Byzantine -> n = 7, f = 2 -> z = 0.2533; mu - z*2 = [3 - 0.5067, 4 - 0.5067]
    ctx = _ctx(benign=[[1, 2], [3, 4], [5, 6]], degree=6, byzantine=2)

    out = _craft("alie", {}, ctx)

    assert out == pytest.approx([3 - 2 * alie_z(7, 2), 4 - 2 * alie_z(7, 2)], abs=1e-6)
    assert out[0] == pytest.approx(2.4933, abs=1e-3)


def test_alie_with_one_benign_chunk_sends_it() -> None:
    # k = 1: sigma = 0 -> mu = the one benign chunk
    out = _craft("alie", {"z": 3.0}, _ctx(own=[9, 9], benign=[[1, 2]]))

    assert out.tolist() == [1.0, 2.0]


def test_alie_with_no_benign_chunk_sends_the_own_chunk() -> None:
    # k = 0: the own chunk is the only sample, sigma = 0
    out = _craft("alie", {"z": 3.0}, _ctx(own=[9, 8], benign=[]))

    assert out.tolist() == [9.0, 8.0]


def test_alie_backdoor_clips_the_own_chunk_into_mu_plus_minus_z_sigma() -> None:
    # benign mu = [3, 4], sigma = [2, 2], z = 1 -> interval [1, 5] x [2, 6];
    # own [10, 3] -> [5, 3]
    out = _craft("alie_backdoor", {"z": 1.0}, _ctx(own=[10, 3], benign=[[1, 2], [3, 4], [5, 6]]))

    assert out.tolist() == [5.0, 3.0]


def test_alie_backdoor_uses_the_magnitude_of_a_negative_z() -> None:
    # n = 4 (degree 3), f = 1 -> z = -0.4307; width |z| * 2 = 0.8614 -> own 10 clipped to 3.8614
    ctx = _ctx(own=[10, 4], benign=[[1, 2], [3, 4], [5, 6]], degree=3, byzantine=1)

    out = _craft("alie_backdoor", {"z_rule": "neighbourhood"}, ctx)

    assert out == pytest.approx([3 + 2 * 0.43073, 4.0], abs=1e-4)


# ----------------------------------------------------------------------------- own-model attacks


def test_sign_flip_negates_the_model() -> None:
    out = _craft("sign_flip", {}, _ctx(own=[1, -2, 3]))

    assert out.tolist() == [-1.0, 2.0, -3.0]


def test_sign_flip_scale_multiplies_the_negated_model() -> None:
    out = _craft("sign_flip", {"scale": 2.0}, _ctx(own=[1, -2, 3]))

    assert out.tolist() == [-2.0, 4.0, -6.0]


def test_sign_flip_of_update_reverses_the_own_update() -> None:
    # before [0, 0, 1], own [1, -2, 3] -> update [1, -2, 2] -> before - update = [-1, 2, -1]
    out = _craft("sign_flip", {"of": "update"}, _ctx(own=[1, -2, 3], before=[0, 0, 1]))

    assert out.tolist() == [-1.0, 2.0, -1.0]


def test_scaling_multiplies_the_own_update() -> None:
    # before [1, 1], own [2, 0] -> update [1, -1]; scale 10 -> [1 + 10, 1 - 10] = [11, -9]
    out = _craft("scaling", {}, _ctx(own=[2, 0], before=[1, 1]))

    assert out.tolist() == [11.0, -9.0]


def test_backdoor_boost_scales_the_own_update() -> None:
    # before [1, 1], own [2, 0], boost 3 -> [1 + 3, 1 - 3]
    out = _craft("backdoor", {"boost": 3.0}, _ctx(own=[2, 0], before=[1, 1]))

    assert out.tolist() == [4.0, -2.0]


def test_bit_flip_default_flips_the_sign_bit_of_every_value() -> None:
    out = _craft("bit_flip", {}, _ctx(own=[1.5, -2.0, 0.25]))

    assert out.tolist() == [-1.5, 2.0, -0.25]


def test_bit_flip_exponent_and_mantissa_bits() -> None:
    # 2.0 = 0x40000000; flipping bit 30 -> 0x00000000 = 0.0
    # 1.0 = 0x3F800000; flipping bit 22 (top mantissa bit) -> 0x3FC00000 = 1.5
    assert _craft("bit_flip", {"bits": [30]}, _ctx(own=[2.0]))[0] == 0.0
    assert _craft("bit_flip", {"bits": 22}, _ctx(own=[1.0]))[0] == 1.5


def test_bit_flip_fraction_negates_only_some_coordinates_and_depends_on_seed() -> None:
    own = list(np.arange(1, 201, dtype=float))
    a = _craft("bit_flip", {"fraction": 0.5}, _ctx(own=own, seed=1))
    b = _craft("bit_flip", {"fraction": 0.5}, _ctx(own=own, seed=1))
    c = _craft("bit_flip", {"fraction": 0.5}, _ctx(own=own, seed=2))

    flipped = a < 0
    assert np.array_equal(np.abs(a), np.asarray(own, np.float32))
    assert 50 < flipped.sum() < 150
    assert a.tobytes() == b.tobytes() and not np.array_equal(a, c)


# ----------------------------------------------------------------------------- knowledge attacks


def test_max_sends_the_negated_coordinate_maximum() -> None:
    # columns (1, 4, 3) and (5, 2, 3): max = [4, 5] -> [-4, -5]
    out = _craft("max", {}, _ctx(benign=[[1, 5], [4, 2], [3, 3]]))

    assert out.tolist() == [-4.0, -5.0]


def test_max_with_no_benign_chunk_negates_the_own_chunk() -> None:
    assert _craft("max", {}, _ctx(own=[2, -1], benign=[])).tolist() == [-2.0, 1.0]


def test_ipm_sends_before_minus_epsilon_mean_benign_update() -> None:
    # before [1, 1]; benign [[3, 1], [1, 5]] -> updates [[2, 0], [0, 4]], mean [1, 2];
    # epsilon 0.5 -> [1 - 0.5, 1 - 1] = [0.5, 0]; default 0.1 -> [0.9, 0.8]
    ctx = _ctx(before=[1, 1], benign=[[3, 1], [1, 5]])

    assert _craft("ipm", {"epsilon": 0.5}, ctx).tolist() == [0.5, 0.0]
    assert _craft("ipm", {}, ctx) == pytest.approx([0.9, 0.8])


def test_ipm_with_no_benign_chunk_reverses_the_own_update() -> None:
    # own [3, 3], before [1, 1] -> update [2, 2]; epsilon 0.5 -> [0, 0]
    out = _craft("ipm", {"epsilon": 0.5}, _ctx(own=[3, 3], before=[1, 1], benign=[]))

    assert out.tolist() == [0.0, 0.0]


def test_krum_attack_upper_bound_by_hand() -> None:
    # benign (1-D) 1.0, 1.1, 0.9; w_ref = 0; f = 1 -> m = 4, m - 2c - 1 = 1, m - c - 2 = 1
    # nearest-benign distance of each is 0.1 -> min sum 0.1 -> term 0.1 / (1 * sqrt(1));
    # max distance to w_ref = 1.1 -> bound 0.1 + 1.1 = 1.2.  f = 2: m - 2c - 1 = 0 -> 1.1
    benign = np.array([[1.0], [1.1], [0.9]])

    assert lambda_upper_bound(benign, np.zeros(1), 1) == pytest.approx(1.2)
    assert lambda_upper_bound(benign, np.zeros(1), 2) == pytest.approx(1.1)


def test_krum_attack_with_two_byzantine_copies_sends_the_bound() -> None:
    # s = sign(mean 1.0 - 0) = +1. Two identical crafted copies are each other's nearest
    # (distance 0) -> Krum (n = 5, f = 2, 1 neighbor) selects them at once: 0 - 1.1 * 1
    out = _craft("krum_attack", {}, _ctx(own=[0.5], before=[0.0], benign=[[1.0], [1.1], [0.9]], byzantine=2))

    assert out[0] == pytest.approx(-1.1)


def test_krum_attack_gives_up_when_krum_never_selects_it() -> None:
    # f = 1: the crafted chunk w_ref - lambda <= 0 is >= 0.9 away from every benign chunk
    # (score >= 0.81) while benign chunks score 0.01 -> no lambda works -> lambda = 0
    out = _craft("krum_attack", {}, _ctx(own=[0.5], before=[0.0], benign=[[1.0], [1.1], [0.9]], byzantine=1))

    assert out.tolist() == [0.0]


def test_krum_attack_without_enough_chunks_for_krum_uses_the_bound() -> None:
    # k = 1 benign [2, 2], w_ref [0, 0]: bound = ||[2, 2]|| / sqrt(2) = 2; s = [1, 1]
    out = _craft("krum_attack", {}, _ctx(own=[1, 1], benign=[[2, 2]], byzantine=1))

    assert out.tolist() == [-2.0, -2.0]


def _krum_rounds(reference: str, before: float) -> list[float]:
    """One attacker with pre-training chunk ``before`` crafting in round 1 against benign
    1.0, 1.1, 0.9 and in round 2 against benign 2.0, 2.2, 1.8 (f = 2)."""
    attack = build_attack("krum_attack", {"reference": reference})
    attack.bind(MNIST)
    out = []
    for round_, benign in ((1, [[1.0], [1.1], [0.9]]), (2, [[2.0], [2.2], [1.8]])):
        ctx = dataclasses.replace(_ctx(own=[before], before=[before], benign=benign, byzantine=2), round=round_)
        out.append(float(attack.craft({0: np.array([before], dtype=np.float32)}, ctx)[0][0]))
    return out


def test_krum_attack_with_own_reference_deviates_from_the_attackers_model() -> None:
    # round 2, w_ref = own before 5.0: s = sign(2.0 - 5.0) = -1; f = 2 -> bound =
    # max |b_i - 5| = 3.2 (m - 2c - 1 = 0: no first term) -> 5.0 + 3.2 = 8.2
    assert _krum_rounds("own", 5.0)[1] == pytest.approx(8.2)


def test_krum_attack_with_benign_reference_deviates_from_the_last_benign_mean() -> None:
    # round 1: no earlier benign mean -> w_ref = own before 0: s = +1, bound = 1.1 -> -1.1.
    # round 2: w_ref = round 1's benign mean 1.0: s = sign(2.0 - 1.0) = +1, bound =
    # max |b_i - 1.0| = 1.2 -> 1.0 - 1.2 = -0.2
    assert _krum_rounds("benign", 0.0) == pytest.approx([-1.1, -0.2])


def test_krum_attack_with_benign_reference_sends_colluders_the_same_vector() -> None:
    # two attackers whose own models differ (0.0 and 5.0) know the same benign chunks:
    # from round 2 on their w_ref is the same benign mean, so their crafted chunks agree
    assert _krum_rounds("benign", 5.0)[1] == pytest.approx(_krum_rounds("benign", 0.0)[1])


def test_krum_attack_rejects_an_unknown_reference() -> None:
    with pytest.raises(ValueError, match=r"reference='global': valid choices are own, benign"):
        build_attack("krum_attack", {"reference": "global"})


def test_mhamdi_fixed_factor_moves_only_the_last_coordinates() -> None:
    # mean of [[1,2,3],[3,4,5]] = [2, 3, 4]; factor 5 on the last coordinate -> [2, 3, 9]
    ctx = _ctx(own=[0, 0, 0], benign=[[1, 2, 3], [3, 4, 5]])

    assert _craft("mhamdi", {"factor": 5.0}, ctx).tolist() == [2.0, 3.0, 9.0]
    assert _craft("mhamdi", {"factor": 5.0, "coordinates": 2}, ctx).tolist() == [2.0, 8.0, 9.0]


def test_mhamdi_search_with_two_copies_keeps_the_largest_factor() -> None:
    # two identical crafted copies are at distance 0 of each other -> selected at max_factor
    ctx = _ctx(own=[0, 0], benign=[[0, 0], [0, 0.3], [0.3, 0]], byzantine=2)

    out = _craft("mhamdi", {"max_factor": 4.0}, ctx)

    assert out == pytest.approx([0.1, 0.1 + 4.0])


def test_mhamdi_search_result_is_selected_by_local_krum_or_zero() -> None:
    ctx = _ctx(own=[0, 0, 0], benign=[[0, 0, 0], [0, 0.1, 0.2], [0.1, 0, 0.1], [0.2, 0.1, 0]], byzantine=1)
    benign = ctx.knowledge.benign_stack(0, ctx.bounds)

    out = _craft("mhamdi", {}, ctx).astype(np.float64)
    gamma = out[-1] - benign[:, -1].mean()

    assert gamma == 0.0 or ops.krum_picks_crafted(benign, out, 1, 1)


@pytest.mark.parametrize(("crafted", "picked"), [(1.1, True), (1.0, False)])
def test_local_krum_is_the_krum_defense(crafted: float, picked: bool) -> None:
    # Arrange: benign 0, 1, 2 and two copies of the crafted value, f = 1, so n = 5 and
    # each score sums the 2 nearest squared distances. crafted = 1.1: benign 1 scores
    # 0.01 + 0.01, a copy 0 + 0.01, so a copy wins; crafted = 1.0: benign 1 and a copy both
    # score 0 + 0 and the tie goes to the benign row, listed first.
    benign = np.array([[0.0], [1.0], [2.0]])
    krum = build_defense("krum", {"f": 1})

    # Act
    probe = ops.krum_picks_crafted(benign, np.array([crafted]), 2, 1)
    received = [torch.tensor([v], dtype=torch.float32) for v in (1.0, 2.0, crafted, crafted)]
    chosen = krum.aggregate(
        torch.tensor([0.0]), received, ChunkContext(node=0, round=1, index=0, senders=(1, 2, 3, 4), degree=4)
    )

    # Assert: the attacker's probe and a Krum receiver with the same rows agree
    assert probe is picked
    assert float(chosen) == pytest.approx(crafted if picked else 1.0)


# ----------------------------------------------------------------------------- k = 0 and k = 1


KNOWLEDGE_ATTACKS = sorted(n for n in ATTACKS.names() if ATTACKS.get(n).needs_knowledge)


def test_knowledge_attacks_are_the_rushing_ones() -> None:
    assert KNOWLEDGE_ATTACKS == ["alie", "alie_backdoor", "ipm", "krum_attack", "max", "mhamdi", "mimic"]


@pytest.mark.parametrize("name", KNOWLEDGE_ATTACKS)
@pytest.mark.parametrize("benign", [[], [[1.0, -1.0, 0.5]]], ids=["k0", "k1"])
def test_knowledge_attack_with_few_benign_chunks_returns_finite_payload(name: str, benign: list) -> None:
    ctx = _ctx(own=[0.2, 0.3, -0.4], before=[0.1, 0.1, 0.1], benign=benign, degree=1, byzantine=1)

    out = _craft(name, {}, ctx)

    assert out.dtype == np.float32 and out.shape == (3,) and np.isfinite(out).all()


@pytest.mark.parametrize("name", KNOWLEDGE_ATTACKS)
def test_knowledge_attack_with_unknown_neighborhood_does_not_crash(name: str) -> None:
    # the core passes (0, 0) for a neighbor it has no neighborhood for
    ctx = _ctx(own=[0.2, 0.3], benign=[[1, 2], [2, 1], [0, 0]], degree=0, byzantine=0)

    assert np.isfinite(_craft(name, {}, ctx)).all()


# ----------------------------------------------------------------------------- every attack


def _rich_ctx(seed: int = 0) -> AttackContext:
    """Two chunks ([0, 4) and [4, 7)); benign chunks of both from three honest senders."""
    rng = np.random.default_rng(123)
    own = rng.normal(size=7).astype(np.float32)
    before = (own - 0.1).astype(np.float32)
    bounds = [(0, 4), (4, 7)]
    observed = {
        s: {
            c: (own[lo:hi] + rng.normal(scale=0.05, size=hi - lo)).astype(np.float32)
            for c, (lo, hi) in enumerate(bounds)
        }
        for s in (10, 11, 12)
    }
    return AttackContext(
        node=0,
        round=3,
        neighbor=1,
        own_vector=own,
        own_before=before,
        bounds=bounds,
        knowledge=Knowledge(observed=observed),
        neighborhood=Neighborhood(degree=5, byzantine=2),
        neighbor_is_colluder=False,
        rng=np.random.default_rng(seed),
    )


def _rich_payload(ctx: AttackContext) -> dict[int, np.ndarray]:
    return {c: ctx.own_vector[lo:hi].copy() for c, (lo, hi) in enumerate(ctx.bounds)}


def _bound(name: str) -> Attack:
    attack = build_attack(name, {})
    attack.bind(MNIST, colluder_rank=1, colluders=3)
    return attack


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_returns_float32_arrays_with_the_payload_keys_and_shapes(name: str) -> None:
    ctx = _rich_ctx()
    payload = _rich_payload(ctx)

    out = _bound(name).craft(payload, ctx)

    assert sorted(out) == sorted(payload)
    assert all(out[c].dtype == np.float32 and out[c].shape == payload[c].shape for c in out)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_leaves_its_inputs_unchanged(name: str) -> None:
    ctx = _rich_ctx()
    payload = _rich_payload(ctx)
    copies = ({c: v.copy() for c, v in payload.items()}, ctx.own_vector.copy(), ctx.own_before.copy())
    known = {s: {c: v.copy() for c, v in ch.items()} for s, ch in ctx.knowledge.observed.items()}

    _bound(name).craft(payload, ctx)

    assert all(np.array_equal(payload[c], copies[0][c]) for c in payload)
    assert np.array_equal(ctx.own_vector, copies[1]) and np.array_equal(ctx.own_before, copies[2])
    assert all(np.array_equal(ctx.knowledge.observed[s][c], known[s][c]) for s in known for c in known[s])


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_is_deterministic_for_the_same_rng_seed(name: str) -> None:
    attack = _bound(name)

    a = attack.craft(_rich_payload(_rich_ctx(seed=4)), _rich_ctx(seed=4))
    b = attack.craft(_rich_payload(_rich_ctx(seed=4)), _rich_ctx(seed=4))

    assert all(a[c].tobytes() == b[c].tobytes() for c in a)


#: attack -> (samples of a batch of 8 it poisons, trigger pixels it stamps on each), with
#: the defaults: fraction 0.5 -> ceil(0.5 * 8) = 4 samples relabelled to target 0; backdoor
#: and scaling (Bagdasaryan et al.'s model replacement trains on the same backdoor) stamp a
#: 4x4 square = 16 pixels, alie_backdoor a 5x5 one = 25; DBA colluder 1 of 3 stamps its part
#: of the 16 pixels split 6/5/5 = 5; label_flip (mode reverse, fraction 1.0) relabels all 8
#: to 9 - y and stamps nothing. Every other attack trains on clean batches (no hook).
BATCH_HOOKS = {
    "alie_backdoor": (4, 25),
    "backdoor": (4, 16),
    "backdoor_replacement": (4, 16),
    "dba": (4, 5),
    "label_flip": (8, 0),
    "scaling": (4, 16),
}
#: hooks whose poison is built by ``prepare`` from the attacker's own training (its batches
#: are tested in tests/test_attacks_training.py: ceil(fraction * B) rows of the poison set)
PREPARED_HOOKS = {"back_gradient"}


def test_exactly_the_poisoning_attacks_have_a_batch_hook() -> None:
    hooked = [name for name in ATTACKS.names() if _bound(name).batch_hook() is not None]

    assert hooked == sorted(BATCH_HOOKS.keys() | PREPARED_HOOKS)


@pytest.mark.parametrize("name", sorted(BATCH_HOOKS))
def test_every_batch_hook_poisons_the_expected_samples_deterministically(name: str) -> None:
    # labels 1..8: no sample is already of target class 0, so every poisoned label changes
    poisoned, pixels = BATCH_HOOKS[name]
    images, labels = torch.zeros(8, 1, 28, 28), torch.arange(1, 9)
    hook = _hook(_bound(name))

    x1, y1 = hook(images, labels, torch.Generator().manual_seed(7))
    x2, y2 = hook(images, labels, torch.Generator().manual_seed(7))

    changed = y1 != labels
    assert x1.shape == images.shape and y1.shape == labels.shape and y1.dtype == labels.dtype
    assert int(changed.sum()) == poisoned
    expected = 9 - labels if name == "label_flip" else torch.zeros_like(labels)
    assert torch.equal(y1[changed], expected[changed])
    assert [int((x1[i] != 0).sum()) for i in range(8)] == [pixels if c else 0 for c in changed.tolist()]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not images.any() and labels.tolist() == list(range(1, 9))


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_rejects_start_round_zero(name: str) -> None:
    with pytest.raises(RegistryError, match=rf"^byzantine\.attack='{name}': start_round=0 must be >= 1"):
        build_attack(name, {"start_round": 0})


# ----------------------------------------------------------------------------- backdoor


def _backdoor(**params: object) -> BackdoorAttack:
    attack = build_attack("backdoor", params)
    attack.bind(MNIST)
    assert isinstance(attack, BackdoorAttack)
    return attack


def _dba(params: dict[str, object], *, colluder_rank: int = 0, colluders: int = 1) -> DistributedBackdoorAttack:
    attack = build_attack("dba", params)
    attack.bind(MNIST, colluder_rank=colluder_rank, colluders=colluders)
    assert isinstance(attack, DistributedBackdoorAttack)
    return attack


def _hook(attack: Attack) -> BatchHook:
    """The batch hook of a poisoning attack (the others have none)."""
    hook = attack.batch_hook()
    assert hook is not None, attack
    return hook


def _asr_set(attack: Attack, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The triggered test set of an attack that has one."""
    got = attack.triggered_test_set(images, labels)
    assert got is not None, attack
    return got


def test_backdoor_stamps_exactly_the_trigger_and_relabels_ceil_fraction_samples() -> None:
    # B = 7, fraction 0.5 -> ceil(3.5) = 4 poisoned samples. bottom_right, size 4, 1-pixel
    # margin on a 28x28 image -> rows 23..26, cols 23..26 set to normalise(255) = 2.8215
    images = torch.full((7, 1, 28, 28), -0.5)
    labels = torch.tensor([1, 2, 3, 4, 5, 6, 7])

    x, y = _hook(_backdoor())(images, labels, torch.Generator().manual_seed(0))

    poisoned = y != labels
    assert int(poisoned.sum()) == 4 and (y[poisoned] == 0).all()
    expected = torch.full((1, 28, 28), -0.5)
    expected[:, 23:27, 23:27] = WHITE
    for i in range(7):
        assert torch.allclose(x[i], expected) if poisoned[i] else torch.equal(x[i], images[i])
    assert (images == -0.5).all() and labels.tolist() == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(("fraction", "batch", "count"), [(0.5, 7, 4), (0.3, 10, 3), (1.0, 5, 5), (0.01, 5, 1)])
def test_poison_count_is_the_ceiling(fraction: float, batch: int, count: int) -> None:
    # 0.3 * 10 = 3.0000000000000004 in floating point; the ceiling must still be 3
    assert ops.poison_count(fraction, batch) == count


@pytest.mark.parametrize(
    ("position", "rows", "cols"),
    [
        ("top_left", (1, 5), (1, 5)),
        ("top_right", (1, 5), (23, 27)),
        ("bottom_left", (23, 27), (1, 5)),
        ([0, 2], (0, 4), (2, 6)),
    ],
)
def test_backdoor_trigger_positions(position, rows, cols) -> None:
    expected = torch.zeros(28, 28, dtype=torch.bool)
    expected[rows[0] : rows[1], cols[0] : cols[1]] = True

    assert torch.equal(_backdoor(trigger_position=position).mask, expected)


def test_triggered_test_set_excludes_target_samples_and_labels_the_rest_target() -> None:
    images = torch.zeros(5, 1, 28, 28)
    labels = torch.tensor([0, 3, 0, 9, 4])

    x, y = _asr_set(_backdoor(target=0), images, labels)

    assert y.tolist() == [0, 0, 0] and x.shape == (3, 1, 28, 28)
    assert torch.allclose(x[:, 0, 23:27, 23:27], torch.full((3, 4, 4), WHITE))
    assert int((x != 0).sum()) == 3 * 16


def test_trigger_value_is_normalised() -> None:
    # raw 0 -> (0 - 0.1307) / 0.3081 = -0.4242
    x, _ = _asr_set(_backdoor(trigger_value=0.0), torch.ones(1, 1, 28, 28), torch.tensor([5]))

    assert x[0, 0, 24, 24].item() == pytest.approx(-0.1307 / 0.3081)


# ----------------------------------------------------------------------------- DBA


def test_dba_parts_are_disjoint_and_their_union_is_the_full_trigger() -> None:
    attack = _dba({}, colluder_rank=0, colluders=4)

    parts = attack.part_masks(4)

    covered = torch.stack([p.int() for p in parts]).sum(dim=0)  # how many parts hold each pixel
    assert len(parts) == 4 and all(int(p.sum()) == 4 for p in parts)
    assert torch.equal(covered.bool(), attack.mask)
    assert int(covered.max()) == 1


def test_dba_colluder_stamps_its_own_strip_only() -> None:
    # 4 colluders, size 4 -> part r is row 23 + r of the square; rank 2 -> row 25
    hook = _hook(_dba({"fraction": 1.0}, colluder_rank=2, colluders=4))
    x, y = hook(torch.zeros(2, 1, 28, 28), torch.tensor([3, 4]), torch.Generator().manual_seed(0))

    stamped = torch.nonzero(x[0, 0] != 0).tolist()
    assert stamped == [[25, 23], [25, 24], [25, 25], [25, 26]] and y.tolist() == [0, 0]


def test_dba_rank_wraps_around_the_parts() -> None:
    attack = _dba({"parts": 2}, colluder_rank=3, colluders=5)

    assert torch.equal(attack.local_mask, attack.part_masks(5)[1])


def test_dba_asr_set_uses_the_full_trigger() -> None:
    x, _ = _asr_set(_dba({}, colluder_rank=1, colluders=4), torch.zeros(1, 1, 28, 28), torch.tensor([1]))

    assert int((x != 0).sum()) == 16


def test_dba_with_one_colluder_uses_the_whole_trigger() -> None:
    attack = _dba({})

    assert torch.equal(attack.local_mask, attack.mask)


# ----------------------------------------------------------------------------- label flip


def _flip(params: dict, labels: list[int], seed: int = 0) -> list[int]:
    attack = build_attack("label_flip", params)
    attack.bind(MNIST)
    images = torch.zeros(len(labels), 1, 28, 28)
    return _hook(attack)(images, torch.tensor(labels), torch.Generator().manual_seed(seed))[1].tolist()


def test_label_flip_reverse_maps_y_to_c_minus_one_minus_y() -> None:
    # C = 10: 3 -> 10 - 1 - 3 = 6, 0 -> 9, 9 -> 0
    assert _flip({}, [3, 0, 9]) == [6, 9, 0]


def test_label_flip_targeted_changes_only_the_source_class() -> None:
    assert _flip({"mode": "targeted", "source": 1, "target": 7}, [0, 1, 2, 1, 7]) == [0, 7, 2, 7, 7]


def test_label_flip_random_always_changes_the_label() -> None:
    labels = [i % 10 for i in range(100)]

    flipped = _flip({"mode": "random"}, labels, seed=3)

    assert all(a != b and 0 <= b < 10 for a, b in zip(labels, flipped))
    assert flipped == _flip({"mode": "random"}, labels, seed=3)


def test_label_flip_fraction_relabels_ceil_fraction_samples() -> None:
    # reverse of 4 is 5; ceil(0.5 * 5) = 3
    assert _flip({"fraction": 0.5}, [4] * 5).count(5) == 3


def test_label_flip_targeted_asr_set_is_the_source_class() -> None:
    attack = build_attack("label_flip", {"mode": "targeted", "source": 1, "target": 7})
    attack.bind(MNIST)

    x, y = _asr_set(attack, torch.zeros(4, 1, 28, 28), torch.tensor([1, 2, 1, 3]))

    assert x.shape[0] == 2 and y.tolist() == [7, 7]
    assert build_attack("label_flip", {}).triggered_test_set(x, y) is None


# ----------------------------------------------------------------------------- parameter errors


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("backdoor", {"fraction": 0}, r"fraction=0 must be in \(0.0, 1.0\]"),
        ("backdoor", {"fraction": 1.5}, r"fraction=1.5 must be in"),
        ("backdoor", {"trigger_size": 0}, r"trigger_size=0 must be an integer >= 1"),
        ("backdoor", {"trigger_value": 300}, r"trigger_value=300 must be in \[0.0, 255.0\]"),
        ("backdoor", {"trigger_position": "middle"}, r"trigger_position='middle' is unknown; choose"),
        ("backdoor", {"trigger_position": [1, 2, 3]}, r"trigger_position=\[1, 2, 3\] must be one of"),
        ("backdoor", {"boost": -1}, r"boost=-1 must be a finite number > 0"),
        ("backdoor", {"target": -1}, r"target=-1 must be an integer >= 0"),
        ("dba", {"parts": 0}, r"parts=0 must be an integer >= 1"),
        ("label_flip", {"mode": "swap"}, r"mode='swap' is unknown; choose one of reverse, random, targeted"),
        ("label_flip", {"mode": "targeted", "source": 1}, r"mode='targeted' needs both source and target"),
        ("label_flip", {"mode": "targeted", "source": 2, "target": 2}, r"source=2 and target=2 must differ"),
        ("label_flip", {"source": 1}, r"source and target apply only to mode='targeted'"),
        ("sign_flip", {"scale": -1}, r"scale=-1 must be a finite number > 0"),
        ("sign_flip", {"of": "gradient"}, r"of='gradient' is unknown; choose one of model, update"),
        ("bit_flip", {"bits": [32]}, r"bits=\[32\]: bit position 32 is not in 0..31"),
        ("bit_flip", {"bits": []}, r"bits=\[\] must be a non-empty list"),
        ("bit_flip", {"fraction": 0}, r"fraction=0 must be in"),
        ("scaling", {"scale": 0}, r"scale=0 must be a finite number > 0"),
        ("alie", {"z": float("nan")}, r"z=nan must be a finite number"),
        ("alie_backdoor", {"z": "big"}, r"z='big' must be a number"),
        ("ipm", {"epsilon": -0.1}, r"epsilon=-0.1 must be a finite number > 0"),
        ("krum_attack", {"tolerance": 0}, r"tolerance=0 must be a finite number > 0"),
        ("mhamdi", {"factor": 0}, r"factor=0 would send the plain benign mean"),
        ("mhamdi", {"coordinates": 0}, r"coordinates=0 must be an integer >= 1"),
        ("mhamdi", {"max_factor": float("inf")}, r"max_factor=inf must be a finite number > 0"),
    ],
)
def test_bad_params_are_registry_errors(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(RegistryError, match=rf"^byzantine\.attack='{name}': " + pattern):
        build_attack(name, params)


@pytest.mark.parametrize("name", ["backdoor", "dba", "alie_backdoor"])
def test_bind_rejects_a_target_outside_the_dataset(name: str) -> None:
    attack = build_attack(name, {"target": 12})

    with pytest.raises(ValueError, match=r"^target=12 is not a class of this dataset \(0\.\.9\)$"):
        attack.bind(MNIST)


def test_bind_rejects_label_flip_classes_outside_the_dataset() -> None:
    attack = build_attack("label_flip", {"mode": "targeted", "source": 10, "target": 1})

    with pytest.raises(ValueError, match=r"^source=10 is not a class of this dataset \(0\.\.9\)$"):
        attack.bind(MNIST)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"trigger_position": [26, 0]}, "trigger of size 4 at [26, 0] does not fit the 28x28 image"),
        ({"trigger_position": [-1, 3]}, "trigger of size 4 at [-1, 3] does not fit the 28x28 image"),
        (
            {"trigger_size": 28},
            "trigger of size 28 at 'bottom_right' (1-pixel margin) does not fit the 28x28 image",
        ),
    ],
)
def test_bind_rejects_a_trigger_outside_the_image(params: dict, message: str) -> None:
    attack = build_attack("backdoor", params)

    with pytest.raises(ValueError) as exc:
        attack.bind(MNIST)

    assert str(exc.value) == message


def test_bind_rejects_more_dba_parts_than_trigger_pixels() -> None:
    attack = build_attack("dba", {"parts": 17})

    with pytest.raises(ValueError, match=r"parts=17 exceeds the 16 pixels of a trigger of size 4"):
        attack.bind(MNIST)


def test_registered_names() -> None:
    assert ATTACKS.names() == [
        "alie", "alie_backdoor", "back_gradient", "backdoor", "backdoor_replacement", "bit_flip", "dba",
        "deadline_edge", "flood", "gaussian", "inf", "ipm", "krum_attack", "label_flip", "max", "mhamdi",
        "mimic", "none", "scaling", "sign_flip", "withhold",
    ]  # fmt: skip


def test_attack_gating_is_inherited() -> None:
    attack = build_attack("alie", {"start_round": 2, "interval": 3})

    assert [t for t in range(1, 10) if attack.active(t)] == [2, 5, 8]


def test_backdoor_replacement_scales_by_the_receivers_model_count() -> None:
    # before [1, 1], own [2, 0] -> update [1, -1]; receiver degree 3 -> n = 4 models averaged,
    # gamma = n / eta: eta 1 -> [1 + 4, 1 - 4]; eta 2 -> gamma 2 -> [3, -1]
    ctx = _ctx(own=[2, 0], before=[1, 1], degree=3)

    assert _craft("backdoor_replacement", {}, ctx).tolist() == [5.0, -3.0]
    assert _craft("backdoor_replacement", {"eta": 2.0}, ctx).tolist() == [3.0, -1.0]


def test_gaussian_shared_draw_is_one_vector_for_every_attacker_and_receiver() -> None:
    # two attackers' contexts differ in their generators; shared: both send the vector of
    # default_rng([seed, round, chunk, 0x6A55]) scaled by sigma; independent: they differ
    first, second = _ctx(own=[0, 0, 0], seed=1), _ctx(own=[0, 0, 0], seed=2)
    expected = np.random.default_rng([0, 1, 0, 0x6A55]).normal(0.0, 0.5, size=3).astype(np.float32)

    shared = [_craft("gaussian", {"sigma": 0.5, "draw": "shared"}, ctx) for ctx in (first, second)]
    independent = [_craft("gaussian", {"sigma": 0.5}, ctx) for ctx in (first, second)]

    assert shared[0].tolist() == shared[1].tolist() == expected.tolist()
    assert independent[0].tolist() != independent[1].tolist()
