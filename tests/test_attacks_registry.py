"""Tests for peer.attacks (none, gaussian, activity gating) and peer.registry."""

from __future__ import annotations

import numpy as np
import pytest

from peer.attacks import ATTACKS, AttackContext, build_attack
from peer.attacks.base import Knowledge, Neighborhood
from peer.attacks.dba import DistributedBackdoorAttack
from peer.attacks.gaussian import GaussianAttack
from peer.attacks.honest import NoAttack
from peer.registry import Registry, RegistryError


def _ctx(seed: int = 0, neighbor: int = 1) -> AttackContext:
    return AttackContext(
        node=0,
        round=1,
        neighbor=neighbor,
        own_vector=np.zeros(10, np.float32),
        own_before=np.zeros(10, np.float32),
        bounds=[(0, 5), (5, 10)],
        knowledge=Knowledge(),
        neighborhood=Neighborhood(degree=3, byzantine=1),
        neighbor_is_colluder=False,
        rng=np.random.default_rng(seed),
    )


def _payload() -> dict[int, np.ndarray]:
    return {0: np.arange(5, dtype=np.float32), 3: np.ones(2, dtype=np.float32)}


# ----------------------------------------------------------------------------- none


def test_none_attack_returns_the_honest_payload() -> None:
    payload = _payload()

    out = build_attack("none", {}).craft(payload, _ctx())

    assert out is payload


def test_none_attack_has_no_batch_hook() -> None:
    assert build_attack("none", {}).batch_hook() is None


def test_none_attack_is_active_from_round_one() -> None:
    attack = build_attack("none", {})

    assert attack.active(1) and attack.active(2)


# ----------------------------------------------------------------------------- gaussian


def test_gaussian_replaces_every_chunk_with_float32_of_same_shape() -> None:
    out = build_attack("gaussian", {"sigma": 1.0}).craft(_payload(), _ctx())

    assert sorted(out) == [0, 3]
    assert [(out[c].dtype, out[c].shape) for c in (0, 3)] == [(np.float32, (5,)), (np.float32, (2,))]


def test_gaussian_output_differs_from_the_honest_chunks() -> None:
    payload = _payload()

    out = build_attack("gaussian", {"sigma": 1.0}).craft(payload, _ctx())

    assert not np.array_equal(out[0], payload[0])


def test_gaussian_does_not_modify_the_honest_payload() -> None:
    payload = _payload()

    build_attack("gaussian", {}).craft(payload, _ctx())

    assert payload[0].tolist() == [0, 1, 2, 3, 4] and payload[3].tolist() == [1, 1]


def test_gaussian_is_deterministic_for_the_same_rng_seed() -> None:
    attack = build_attack("gaussian", {"sigma": 2.0})

    a = attack.craft(_payload(), _ctx(seed=5))
    b = attack.craft(_payload(), _ctx(seed=5))

    assert all(a[c].tobytes() == b[c].tobytes() for c in a)


def test_gaussian_differs_for_different_rng_seeds() -> None:
    attack = build_attack("gaussian", {"sigma": 2.0})

    a = attack.craft(_payload(), _ctx(seed=5))
    b = attack.craft(_payload(), _ctx(seed=6))

    assert not np.array_equal(a[0], b[0])


def test_gaussian_empirical_mean_and_std_match_params() -> None:
    # 200k samples: standard error of the mean = 3/sqrt(2e5) ~ 0.0067.
    out = build_attack("gaussian", {"sigma": 3.0, "mean": -2.0}).craft({0: np.zeros(200_000, np.float32)}, _ctx(seed=1))

    assert out[0].mean() == pytest.approx(-2.0, abs=0.04)
    assert out[0].std() == pytest.approx(3.0, rel=0.01)


def test_gaussian_sigma_zero_sends_the_constant_mean() -> None:
    out = build_attack("gaussian", {"sigma": 0, "mean": 1.5}).craft(_payload(), _ctx())

    assert out[0].tolist() == [1.5] * 5


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"sigma": -1}, r"sigma=-1 must be >= 0"),
        ({"sigma": float("nan")}, r"sigma=nan must be >= 0"),
        ({"start_round": 0}, r"start_round=0 must be >= 1"),
        ({"interval": 0}, r"interval=0 must be >= 1"),
    ],
)
def test_gaussian_bad_params_are_registry_errors(params: dict, pattern: str) -> None:
    with pytest.raises(RegistryError, match=r"^byzantine\.attack='gaussian': " + pattern):
        build_attack("gaussian", params)


def test_none_attack_rejects_start_round_zero() -> None:
    with pytest.raises(RegistryError, match=r"start_round=0"):
        build_attack("none", {"start_round": 0})


# ----------------------------------------------------------------------------- active()


def test_active_with_start_three_interval_two() -> None:
    attack = build_attack("gaussian", {"start_round": 3, "interval": 2})

    assert [t for t in range(1, 9) if attack.active(t)] == [3, 5, 7]


def test_active_default_is_every_round() -> None:
    attack = build_attack("gaussian", {})

    assert all(attack.active(t) for t in range(1, 6))


# ----------------------------------------------------------------------------- registry


def test_unknown_attack_name_lists_the_choices() -> None:
    with pytest.raises(RegistryError) as exc:
        build_attack("no-such-attack", {})

    head, _, choices = str(exc.value).partition("; choose one of ")
    assert head == "byzantine.attack='no-such-attack': unknown attack"
    assert {"gaussian", "none"} <= set(choices.split(", "))


def test_unknown_attack_parameter_lists_the_valid_parameters() -> None:
    with pytest.raises(RegistryError) as exc:
        build_attack("gaussian", {"std": 1.0})

    assert str(exc.value) == (
        "byzantine.params.std: unknown parameter 'std' of attack 'gaussian'; "
        "valid parameters: draw, interval, mean, seed, sigma, start_round"
    )


def test_registered_classes_and_names() -> None:
    assert {"gaussian", "none"} <= set(ATTACKS.names()) and ATTACKS.names() == sorted(ATTACKS.names())
    assert ATTACKS.get("gaussian") is GaussianAttack and ATTACKS.get("none") is NoAttack


def test_registry_rejects_a_second_class_under_the_same_name() -> None:
    reg: Registry[object] = Registry("thing", "x.name")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(RuntimeError, match="registered twice"):

        @reg.register("a")
        class B:
            pass


def test_registry_with_no_keyword_parameters_says_none() -> None:
    reg: Registry[object] = Registry("thing", "x.name")

    @reg.register("plain")
    class Plain:
        pass

    with pytest.raises(RegistryError, match=r"valid parameters: none$"):
        reg.build("plain", {"k": 1})


TRIGGER_PARAMETERS = [
    "interval",
    "start_round",
    "target",
    "fraction",
    "trigger_position",
    "trigger_size",
    "trigger_value",
]


@pytest.mark.parametrize(
    ("name", "own"),
    [
        ("backdoor", ["boost"]),
        ("dba", ["boost", "parts"]),
        ("alie_backdoor", ["z", "z_rule", "alpha", "samples", "epochs", "lr", "batch_size", "from_mu"]),
    ],
)
def test_trigger_attacks_take_the_parameters_declared_on_their_bases(name: str, own: list[str]) -> None:
    # Act: an unknown parameter makes the registry list the valid ones
    with pytest.raises(RegistryError) as exc:
        build_attack(name, {"nope": 1})

    # Assert: the trigger parameters of peer/attacks/trigger.py plus the class's own
    valid = str(exc.value).partition("valid parameters: ")[2].split(", ")
    assert valid == sorted(TRIGGER_PARAMETERS + own)


def test_an_inherited_parameter_reaches_the_base_constructor() -> None:
    # Act
    attack = build_attack("dba", {"parts": 2, "trigger_size": 3, "target": 7, "boost": 2.0, "start_round": 4})
    assert isinstance(attack, DistributedBackdoorAttack)

    # Assert
    assert (attack.parts, attack.trigger_size, attack.target, attack.boost, attack.start_round) == (2, 3, 7, 2.0, 4)
    assert (attack.fraction, attack.trigger_value, attack.trigger_position, attack.interval) == (
        0.5,
        255.0,
        "bottom_right",
        1,
    )


def test_registry_reads_parameters_through_kwargs_only() -> None:
    # Arrange: Child passes **kwargs on, so Base's parameters are Child's too; Other does not
    reg: Registry[object] = Registry("thing", "x.name")

    class Base:
        def __init__(self, *, a: int = 1, b: int = 2) -> None:
            self.a, self.b = a, b

    @reg.register("child")
    class Child(Base):
        def __init__(self, *, c: int = 3, b: int = 20, **kwargs: int) -> None:
            super().__init__(b=b, **kwargs)
            self.c = c

    @reg.register("other")
    class Other(Base):
        def __init__(self, *, c: int = 3) -> None:
            super().__init__()

    # Act
    child = reg.build("child", {"a": 5})
    assert isinstance(child, Child)

    # Assert: a reaches Base, the subclass's default for b wins; Other does not take a
    assert (child.a, child.b, child.c) == (5, 20, 3)
    with pytest.raises(
        RegistryError, match=r"x.params.a: unknown parameter 'a' of thing 'other'; valid parameters: c$"
    ):
        reg.build("other", {"a": 5})


def test_registry_turns_constructor_type_error_into_registry_error() -> None:
    with pytest.raises(RegistryError, match=r"^byzantine\.attack='gaussian': "):
        build_attack("gaussian", {"sigma": "loud"})
