"""A node core's checkpoint holds everything it carries across rounds: fresh cores loaded
from round-t checkpoints continue bit-identically to cores that never stopped (in one
process; the multi-process resume is in tests/test_resume.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.plan import build_plan
from launch.run.reference import MemoryNetwork
from peer import checkpoint
from peer import data as datasets
from peer.core import NodeCore
from peer.data import test_subset as eval_subset
from protocol import config as config_mod

CONFIG = """
seed = 5
nodes = 4
rounds = 4

[topology]
kind = "ring"

[data]
dataset = "synthetic"
synthetic_size = 300

[model]
name = "mlp"

[train]
local_steps = 3
batch_size = 16
momentum = 0.9

[chunks]
count = 4
per_neighbor = 2

[defense]
name = "adaptive_norm_clip"
params = { momentum = 0.5, pool = "chunk" }

[byzantine]
count = 1
attack = "label_flip"
params = { mode = "random", fraction = 0.5 }

[eval]
every = 2
"""


def _cores(cfg: config_mod.RunConfig) -> list[NodeCore]:
    plan = build_plan(cfg)
    train = datasets.load("synthetic", None, train=True, synthetic_size=cfg.data.synthetic_size, seed=cfg.seed)
    test = datasets.load("synthetic", None, train=False, synthetic_size=cfg.data.synthetic_size, seed=cfg.seed)
    return [NodeCore(plan.assignment(i), train_data=train, test_set=eval_subset(test, 0)) for i in range(cfg.nodes)]


def _round(cores: list[NodeCore], round_: int) -> list[dict]:
    results = MemoryNetwork(cores).run_round(round_)
    return [results[c.node].metrics for c in cores]


def test_cores_loaded_from_a_checkpoint_continue_bit_identically(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(CONFIG)
    cfg = config_mod.load(cfg_path)
    straight = _cores(cfg)
    expected = [_round(straight, t) for t in range(1, 5)]

    first = _cores(cfg)
    for t in (1, 2):
        _round(first, t)
    for core in first:
        checkpoint.save(tmp_path / "ckpt", 2, core.node, core.state_dict(2))
    resumed = _cores(cfg)
    for core in resumed:
        assert core.load_state_dict(checkpoint.load(tmp_path / "ckpt", 2, core.node)) == 2
    got = [_round(resumed, t) for t in (3, 4)]

    # digests (models), train losses (batches, momentum, poisoning RNG), accuracies
    assert got == expected[2:]


def test_a_checkpoint_refuses_another_node_or_config(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(CONFIG)
    cores = _cores(config_mod.load(cfg_path))
    state = cores[0].state_dict(1)
    with pytest.raises(ValueError, match="node 0"):
        cores[1].load_state_dict(state)
    other = _cores(config_mod.load(cfg_path, ["train.lr=0.2"]))
    with pytest.raises(ValueError, match="another config"):
        other[0].load_state_dict(state)
