"""Every registered attack and defense runs in a real multi-process run from a config,
and gives the same models and metrics as the in-process reference (so the rushing,
collusion and oracle message flows are ordered exactly as the reference assumes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from launch.local import launch_local
from peer.attacks import ATTACKS
from peer.attacks.base import DataInfo
from peer.defenses import DEFENSES
from launch.reference import run_reference
from protocol import config as config_mod

BASE = {
    "name": "registry",
    "seed": 4,
    "nodes": 7,
    "rounds": 2,
    # a ring: Byzantine peers 1 and 4 are not neighbors, so collusion and oracle
    # messages travel over links outside the graph
    "topology": {"kind": "ring"},
    "data": {"dataset": "synthetic", "synthetic_size": 350, "root": ""},
    "model": {"name": "logreg"},
    "train": {"local_steps": 2, "batch_size": 16},
    "chunks": {"count": 4, "per_neighbor": 2},
    "eval": {"every": 1},
    "runtime": {"register_timeout": 60.0, "round_timeout": 60.0, "chunk_timeout": 30.0},
}


#: issue 15's rules and attacks run through real peers in one test below
#: (test_new_rules_and_a_pre_chain_run_multiprocess_like_reference), not one run each;
#: their behaviour is tested in-process (tests/test_defenses_catalogue.py, test_defenses_dfl.py)
ISSUE_15 = {
    "bridge_m", "caf", "dfl_detector", "dfl_dual", "geomed", "mda", "meamed", "mean", "monna",
    "smea", "mimic", "inf", "back_gradient",
}


def _config(**tables: dict) -> config_mod.RunConfig:
    data = json.loads(json.dumps(BASE))
    for key, value in tables.items():
        data[key] = {**data.get(key, {}), **value}
    return config_mod.from_dict(data)


def _rounds(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]


def _run_both(cfg: config_mod.RunConfig, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    launch_local(cfg, tmp_path / "mp", show_progress=False)
    run_reference(cfg, tmp_path / "ref")
    return _rounds(tmp_path / "mp"), _rounds(tmp_path / "ref")


def _assert_identical(mp: list[dict], ref: list[dict]) -> None:
    assert [r["round"] for r in mp] == [1, 2]
    for a, b in zip(mp, ref):
        for node, peer in a["peers"].items():
            assert peer["status"] == "ok", (a["round"], node)
            assert peer["metrics"] == b["peers"][node]["metrics"], (a["round"], node)


@pytest.mark.parametrize("attack", [n for n in ATTACKS.names() if n not in ISSUE_15])
def test_attack_runs_multiprocess_like_reference(attack: str, tmp_path: Path) -> None:
    cfg = _config(byzantine={"placement": "explicit", "nodes": [1, 4], "attack": attack})

    mp, ref = _run_both(cfg, tmp_path)

    _assert_identical(mp, ref)
    roles = [p["role"] for p in mp[0]["peers"].values()]
    assert roles.count(f"byzantine:{attack}") == 2
    probe = ATTACKS.build(attack, {})
    probe.bind(DataInfo(num_classes=10, image_shape=(1, 28, 28), mean=0.0, std=1.0))
    images, labels = torch.zeros(20, 1, 28, 28), torch.arange(20) % 10
    has_trigger = probe.triggered_test_set(images, labels) is not None
    assert ("attack_success_rate" in mp[-1]["honest"]) == has_trigger


@pytest.mark.parametrize("attack", [n for n in ATTACKS.names() if ATTACKS.get(n).needs_knowledge][:1])
def test_oracle_knowledge_mode_runs_multiprocess_like_reference(attack: str, tmp_path: Path) -> None:
    cfg = _config(
        byzantine={"placement": "explicit", "nodes": [1, 4], "attack": attack, "knowledge": "oracle"}
    )

    mp, ref = _run_both(cfg, tmp_path)

    _assert_identical(mp, ref)
    # on the ring every peer sends 2 chunk messages a round; honest peers also send their
    # whole model to both Byzantine peers, Byzantine peers one collusion message each
    for node, peer in mp[0]["peers"].items():
        expected = 2 + (1 if peer["role"] != "honest" else 2)
        assert peer["traffic"]["sent_msgs"] == expected, node
    summary = json.loads((tmp_path / "mp" / "summary.json").read_text())
    assert summary["knowledge"] == "oracle"


#: Guo et al.'s named variants run the code of krum / median / bulyan / trimmed_mean with
#: other defaults (tests/test_fidelity.py covers them in-process): no extra cluster run
_VARIANTS = {"dkrum", "dmedian", "dbulyan", "dbridge"}


@pytest.mark.parametrize("defense", [n for n in DEFENSES.names() if n not in _VARIANTS | ISSUE_15])
def test_defense_runs_multiprocess_like_reference(defense: str, tmp_path: Path) -> None:
    cfg = _config(defense={"name": defense}, byzantine={"count": 1, "attack": "gaussian"})

    mp, ref = _run_both(cfg, tmp_path)

    _assert_identical(mp, ref)
    # the aggregation time of the rule is in every peer's round record
    assert all(p["timing"]["aggregate_s"] >= 0 for p in mp[0]["peers"].values())
    assert mp[0]["aggregate_s"]["n"] == 7


@pytest.mark.parametrize(
    ("defense", "attack"),
    [
        # NNM then Krum against Mimic: a composed chain and a rushing attack
        ({"name": "krum", "pre": ["nnm"], "pre_params": {"nnm": {"f": 1}}, "params": {"f": 0}}, "mimic"),
        # DFL-Dual with its model inversion (bounded: 2 steps, 1 sample per class)
        ({"name": "dfl_dual", "params": {"inversion_steps": 2, "samples_per_class": 1}}, "inf"),
    ],
    ids=["nnm+krum/mimic", "dfl_dual/inf"],
)
def test_new_rules_and_a_pre_chain_run_multiprocess_like_reference(
    defense: dict, attack: str, tmp_path: Path
) -> None:
    cfg = _config(defense=defense, byzantine={"placement": "explicit", "nodes": [1, 4], "attack": attack})

    mp, ref = _run_both(cfg, tmp_path)

    _assert_identical(mp, ref)
    assert all(p["timing"]["aggregate_s"] >= 0 for p in mp[0]["peers"].values())
