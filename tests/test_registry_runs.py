"""Every registered attack and defense runs from a config, and the message flows a rule can
change run as real processes bit-identical to the in-process reference.

A rule does not change the message flow of a run; the knowledge mode does. So:

* every attack and every defense runs from a config through the in-process reference
  driver (which tests/test_reference_equivalence.py proves bit-identical to a real
  multi-process run), and each run must change the models exactly where the rule acts;
* one real multi-process run per flow that depends on the attack side: rushing attackers
  with collusion messages (``knowledge = "observed"``) and whole models sent to the
  attackers (``knowledge = "oracle"``), each compared bit for bit to the reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from launch.run.local import launch_local
from launch.run.reference import run_reference
from peer import data
from peer.attacks import ATTACKS
from peer.attacks.base import DataInfo
from peer.data import cache as data_cache
from peer.defenses import DEFENSES
from protocol import config as config_mod
from tests.support.harness import read_rounds

BASE: dict[str, Any] = {
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

#: Byzantine peers 1 and 4 of the ring (each honest peer but 6 has one as a neighbor)
ON_THE_RING = {"placement": "explicit", "nodes": [1, 4]}
#: the defenses' runs: every peer sees both attackers (on a ring, with only 3 values a
#: chunk, several rules fall back to the mean, which would hide a rule that is not applied)
DEFENDED = {"rounds": 1, "topology": {"kind": "complete"}, "byzantine": {"count": 2, "attack": "gaussian"}}
#: DFL-Dual's model inversion bounded (1 step, 1 sample per class): the rule, not the cost
DEFENSE_PARAMS = {"dfl_dual": {"inversion_steps": 1, "samples_per_class": 1}}
#: rules whose round-1 models equal the plain mean's here, and why: FLDetector flags nobody
#: before its warmup rounds have passed (peer/defenses/dfl_detector.py), so it averages all
SAME_AS_MEAN_IN_ROUND_1 = {"dfl_detector"}


def _config(**tables: Any) -> config_mod.RunConfig:
    data = json.loads(json.dumps(BASE))
    for key, value in tables.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return config_mod.from_dict(data)


def _reference(cfg: config_mod.RunConfig, out: Path) -> list[dict]:
    run_reference(cfg, out)
    return read_rounds(out)


def _honest_digests(record: dict) -> dict[str, str]:
    return {n: p["metrics"]["digest"] for n, p in record["peers"].items() if p["role"] == "honest"}


def _run_both(cfg: config_mod.RunConfig, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    launch_local(cfg, tmp_path / "mp", show_progress=False)
    return read_rounds(tmp_path / "mp"), _reference(cfg, tmp_path / "ref")


def _assert_identical(mp: list[dict], ref: list[dict]) -> None:
    assert [r["round"] for r in mp] == [1, 2]
    for a, b in zip(mp, ref):
        for node, peer in a["peers"].items():
            assert peer["status"] == "ok", (a["round"], node)
            assert peer["metrics"] == b["peers"][node]["metrics"], (a["round"], node)


# ----------------------------------------------------------------------------- every rule, in process


@pytest.fixture(scope="module", autouse=True)
def generated_once() -> Iterator[None]:
    """Generate the synthetic splits once for this module's many in-process runs (the
    forkserver does the same for a cluster's peers), and forget them afterwards."""
    data.preload("synthetic", None, synthetic_size=BASE["data"]["synthetic_size"], seed=BASE["seed"])
    yield
    data_cache.clear()


@pytest.fixture(scope="module")
def unattacked(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The ring with peers 1 and 4 Byzantine but running attack ``none``."""
    return _reference(_config(byzantine={**ON_THE_RING, "attack": "none"}), tmp_path_factory.mktemp("none"))


@pytest.fixture(scope="module")
def plain_mean(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The defenses' run with the plain mean (no defense)."""
    return _reference(_config(**DEFENDED, defense={"name": "mean"}), tmp_path_factory.mktemp("mean"))


def test_attack_none_is_honest_behaviour(unattacked: list[dict], tmp_path: Path) -> None:
    all_honest = _reference(_config(byzantine={"count": 0}), tmp_path / "honest")

    assert [_honest_digests(r) for r in unattacked] == [
        {n: d for n, d in _honest_digests(r).items() if n not in ("1", "4")} for r in all_honest
    ]


#: timing behaviours that send true chunks: in the ideal network of the reference they
#: arrive all the same (docs/ATTACKS.md, *Timing behaviours*)
ON_TIME_IN_AN_IDEAL_NETWORK = ("deadline_edge", "flood")


@pytest.mark.parametrize("attack", [n for n in ATTACKS.names() if n not in ("none", *ON_TIME_IN_AN_IDEAL_NETWORK)])
def test_every_attack_runs_from_a_config_and_moves_its_neighbors(
    attack: str, unattacked: list[dict], tmp_path: Path
) -> None:
    cfg = _config(byzantine={**ON_THE_RING, "attack": attack})

    rounds = _reference(cfg, tmp_path / "run")

    assert [r["round"] for r in rounds] == [1, 2]
    assert all(p["status"] == "ok" for r in rounds for p in r["peers"].values())
    roles = [p["role"] for p in rounds[0]["peers"].values()]
    assert roles.count(f"byzantine:{attack}") == 2
    # ring 0-1-...-6-0: honest 0, 2, 3, 5 have an attacker as neighbor, 6 does not; in
    # round 1 only what the attackers sent (or trained on) differs from attack "none"
    got, clean = _honest_digests(rounds[0]), _honest_digests(unattacked[0])
    assert sorted(n for n in got if got[n] != clean[n]) == ["0", "2", "3", "5"]
    probe = ATTACKS.build(attack, {})
    probe.bind(DataInfo(num_classes=10, image_shape=(1, 28, 28), mean=0.0, std=1.0))
    images, labels = torch.zeros(20, 1, 28, 28), torch.arange(20) % 10
    has_trigger = probe.triggered_test_set(images, labels) is not None
    assert ("attack_success_rate" in rounds[-1]["honest"]) == has_trigger


@pytest.mark.parametrize("attack", ON_TIME_IN_AN_IDEAL_NETWORK)
def test_timing_attacks_that_send_true_chunks_change_nothing_in_an_ideal_network(
    attack: str, unattacked: list[dict], tmp_path: Path
) -> None:
    rounds = _reference(_config(byzantine={**ON_THE_RING, "attack": attack}), tmp_path / "run")

    assert [_honest_digests(r) for r in rounds] == [_honest_digests(r) for r in unattacked]


@pytest.mark.parametrize("defense", [n for n in DEFENSES.names() if n != "mean"])
def test_every_defense_runs_from_a_config_and_is_applied(defense: str, plain_mean: list[dict], tmp_path: Path) -> None:
    cfg = _config(**DEFENDED, defense={"name": defense, "params": DEFENSE_PARAMS.get(defense, {})})

    rounds = _reference(cfg, tmp_path / "run")

    assert [r["round"] for r in rounds] == [1]
    assert all(p["status"] == "ok" for p in rounds[0]["peers"].values())
    # every peer (Byzantine ones too) timed its aggregation, and the models are the rule's:
    # on a complete graph each honest peer averages in both Gaussian attackers under the
    # mean, so a rule that is applied changes honest models (bulyan, which needs
    # n >= 4f + 3 values, changes only some here)
    assert rounds[0]["aggregate_s"]["n"] == 7
    mean = _honest_digests(plain_mean[0])
    changed = [n for n, d in _honest_digests(rounds[0]).items() if d != mean[n]]
    assert (changed == []) == (defense in SAME_AS_MEAN_IN_ROUND_1), changed


# ----------------------------------------------------------------------------- one real run per flow


@pytest.mark.cluster
def test_observed_knowledge_flow_runs_multiprocess_like_reference(tmp_path: Path) -> None:
    # a rushing attack (Mimic waits for the round's honest chunks) with collusion
    # messages between 1 and 4, against a composed chain (NNM then Krum)
    defense = {"name": "krum", "pre": ["nnm"], "pre_params": {"nnm": {"f": 1}}, "params": {"f": 0}}
    cfg = _config(defense=defense, byzantine={**ON_THE_RING, "attack": "mimic"})

    mp, ref = _run_both(cfg, tmp_path)

    _assert_identical(mp, ref)
    assert [p["role"] for p in mp[0]["peers"].values()].count("byzantine:mimic") == 2
    # ring: 2 chunk messages a peer a round; each attacker also sends its colluder one
    # collusion message
    for node, peer in mp[0]["peers"].items():
        assert peer["traffic"]["sent_msgs"] == (2 if peer["role"] == "honest" else 3), node


@pytest.mark.cluster
def test_oracle_knowledge_flow_runs_multiprocess_like_reference(tmp_path: Path) -> None:
    cfg = _config(byzantine={**ON_THE_RING, "attack": "alie", "knowledge": "oracle"})

    mp, ref = _run_both(cfg, tmp_path)

    _assert_identical(mp, ref)
    # on the ring every peer sends 2 chunk messages a round; honest peers also send their
    # whole model to both Byzantine peers, Byzantine peers one collusion message each
    for node, peer in mp[0]["peers"].items():
        expected = 2 + (1 if peer["role"] != "honest" else 2)
        assert peer["traffic"]["sent_msgs"] == expected, node
    summary = json.loads((tmp_path / "mp" / "summary.json").read_text())
    assert summary["knowledge"] == "oracle"
