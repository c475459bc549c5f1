"""Timing behaviours, stragglers and the replay command, in one process.

The timing attacks (``peer/attacks/timing.py``) run through the in-process reference,
an ideal network with deadlines: a withheld chunk is missed, a flood's copies are
dropped as duplicates, a held chunk arrives all the same. Which peers straggle and how
much (``peer/stragglers.py``) is a function of the config alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.run.reference import run_reference
from peer.attacks import build_attack
from peer.stragglers import slowdown, stragglers
from protocol import config as config_mod
from protocol.config import ConfigError
from tests.support.harness import read_rounds
from tests.support.runs import small_config

NODES = 4
BYZ = 1  # on the ring 0-1-2-3-0 its neighbors are 0 and 2


def _run(tmp_path: Path, name: str, attack: str, params: dict) -> list[dict]:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        small_config(
            name,
            seed=5,
            nodes=NODES,
            rounds=2,
            byzantine={"nodes": [BYZ], "placement": "explicit", "attack": attack, "params": params},
        )
    )
    run_reference(config_mod.load(path), tmp_path / name)
    return read_rounds(tmp_path / name)


def _digests(rounds: list[dict]) -> list[list[str]]:
    return [[r["peers"][str(n)]["metrics"]["digest"] for n in range(NODES)] for r in rounds]


def test_withholding_from_every_neighbor_leaves_them_without_its_chunks(tmp_path: Path) -> None:
    rounds = _run(tmp_path, "withhold", "withhold", {"fraction": 1.0})

    for r in rounds:
        for node in ("0", "2"):
            metrics = r["peers"][node]["metrics"]
            assert metrics["missed"] == [BYZ]
            assert metrics["senders"] == 1  # only its other ring neighbor
            assert sum(metrics["candidates"]) == metrics["chunks_received"] == 4  # chunks.per_neighbor
        assert r["peers"]["3"]["metrics"]["missed"] == []
        assert r["peers"][str(BYZ)]["traffic"]["sent_msgs"] == 0


def test_withholding_half_the_neighbors_skips_one_of_two_each_round(tmp_path: Path) -> None:
    rounds = _run(tmp_path, "half", "withhold", {"fraction": 0.5})

    for r in rounds:
        missing = [n for n in ("0", "2") if r["peers"][n]["metrics"]["missed"] == [BYZ]]
        assert len(missing) == 1
        assert r["peers"][str(BYZ)]["traffic"]["sent_msgs"] == 1


def test_a_flood_costs_duplicates_and_changes_no_model(tmp_path: Path) -> None:
    flood = _run(tmp_path, "flood", "flood", {"copies": 5})
    control = _run(tmp_path, "none", "none", {})

    assert _digests(flood) == _digests(control)  # the receivers keep the first copy
    for r in flood:
        for node in ("0", "2"):
            assert r["peers"][node]["traffic"]["dropped"] == 4
        assert r["peers"][str(BYZ)]["traffic"]["sent_msgs"] == 2 * 5
    assert flood[-1]["peers"]["0"]["traffic"]["drops_total"] == {"duplicate": 8}


def test_held_chunks_arrive_in_the_ideal_network(tmp_path: Path) -> None:
    held = _run(tmp_path, "edge", "deadline_edge", {"at": 0.99})
    control = _run(tmp_path, "none", "none", {})

    assert _digests(held) == _digests(control)
    assert all(p["metrics"]["missed"] == [] for r in held for p in r["peers"].values())


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("withhold", {"fraction": 1.5}, "fraction=1.5 must be in [0, 1]"),
        ("flood", {"copies": 0}, "copies=0 must be in [1, 500]"),
        ("deadline_edge", {"at": -0.1}, "at=-0.1 must be in [0, 10]"),
    ],
)
def test_timing_attacks_refuse_out_of_range_parameters(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_attack(name, params)


def test_withhold_draws_its_subset_from_the_rng() -> None:
    attack = build_attack("withhold", {"fraction": 0.5})
    picks = {tuple(attack.recipients([2, 5, 7, 9], np.random.default_rng([0, 1, r]))) for r in range(20)}

    assert all(len(p) == 2 and set(p) <= {2, 5, 7, 9} and list(p) == sorted(p) for p in picks)
    assert len(picks) > 1


def _cfg(**stragglers: object) -> config_mod.RunConfig:
    return config_mod.from_dict({"nodes": 10, "seed": 4, "stragglers": stragglers})


def test_stragglers_are_the_listed_nodes_with_the_factor() -> None:
    cfg = _cfg(factor=3.0, nodes=[4, 1])

    assert stragglers(cfg) == [1, 4]
    assert [slowdown(cfg, n) for n in range(5)] == [1.0, 3.0, 1.0, 1.0, 3.0]


def test_a_fraction_of_stragglers_is_drawn_with_the_seed_and_uniform_factors_lie_in_range() -> None:
    cfg = _cfg(factor=5.0, fraction=0.25, distribution="uniform")

    chosen = stragglers(cfg)
    assert len(chosen) == 3  # 2.5 rounded half up
    assert chosen == stragglers(_cfg(factor=5.0, fraction=0.25, distribution="uniform"))
    factors = [slowdown(cfg, n) for n in chosen]
    assert all(1.0 <= f <= 5.0 for f in factors) and len(set(factors)) == 3
    assert stragglers(_cfg(factor=1.0, fraction=0.5)) == []  # factor 1: nobody is slower


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"factor": 0.5}, "stragglers.factor=0.5: must be >= 1"),
        ({"factor": 2.0, "fraction": 0.2, "nodes": [1]}, "stragglers: give fraction or nodes, not both"),
        ({"factor": 2.0, "nodes": [10]}, "stragglers.nodes=[10]: ids must be in 0..9"),
        ({"distribution": "normal"}, "stragglers.distribution='normal': valid values are fixed, uniform"),
    ],
)
def test_bad_straggler_settings_fail_with_one_line(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(**table)

    assert str(err.value).startswith(message)


def test_replay_of_a_folder_without_a_run_is_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["reference", "--replay", str(tmp_path)])

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "no config.toml" in lines[0], result.stderr


@pytest.mark.parametrize(
    ("delivery", "ok"),
    [
        ({"chunk": [0, 2], "observed": []}, True),
        ({}, True),
        ({"chunk": "0"}, False),
        ({"chunk": [True]}, False),
        ([0, 2], False),
        (None, False),
    ],
)
def test_the_delivery_log_keeps_only_maps_of_labels_to_sender_ids(delivery: object, ok: bool) -> None:
    from coordinator.deliveries import well_formed

    assert well_formed(delivery) is ok
