"""Validation without repeated work (coordinator/plan.py): the model is built once per
(model, image shape, classes), a Planner plans each distinct config once and reads each
dataset's training labels once; failures are never cached."""

from __future__ import annotations

from typing import Any

import pytest
from torch import nn

from coordinator import plan as plan_mod
from coordinator.plan import Planner, model_size
from peer.models import MODELS, ModelError
from protocol.config import RunConfig, from_dict


def _cfg(**over: Any) -> RunConfig:
    data = {
        "nodes": 4,
        "topology": {"kind": "complete"},
        "data": {"dataset": "synthetic", "synthetic_size": 40},
        "model": {"name": "probe"},
        "chunks": {"count": 2, "per_neighbor": 1},
    }
    return from_dict({**data, **over})


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Register model "probe" (a linear layer on 28x28 images: 784 * classes + classes
    parameters) and record every build as (in_channels, image_size, num_classes)."""
    calls: list[tuple[int, int, int]] = []

    def probe(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
        calls.append((in_channels, image_size, num_classes))
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, num_classes))

    monkeypatch.setitem(MODELS, "probe", probe)
    return calls


def test_the_model_is_built_once_per_shape(builds: list[tuple[int, int, int]]) -> None:
    # Act: three configs with the same model and dataset, different seeds and rules
    planner = Planner()
    for cfg in (_cfg(seed=1), _cfg(seed=2), _cfg(seed=3, defense={"name": "median"})):
        planner.check(cfg)

    # Assert: one build, for 1x28x28 images and 10 classes
    assert builds == [(1, 28, 10)]
    assert model_size("probe", "synthetic") == 784 * 10 + 10


def test_a_repeated_config_is_planned_once(builds: list, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: count the plans built
    planned: list[int] = []
    real = plan_mod.build_plan

    def counting(cfg: RunConfig, **kw: Any) -> plan_mod.Plan:
        planned.append(cfg.seed)
        return real(cfg, **kw)

    monkeypatch.setattr(plan_mod, "build_plan", counting)
    planner = Planner()

    # Act
    for seed in (1, 1, 2, 1):
        planner.check(_cfg(seed=seed))

    # Assert
    assert planned == [1, 2]


def test_training_labels_are_read_once_per_dataset_source(builds: list, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: count the label reads
    reads: list[tuple[int, int]] = []
    real = plan_mod.read_train_labels

    def counting(cfg: RunConfig) -> Any:
        reads.append((cfg.data.synthetic_size, cfg.seed))
        return real(cfg)

    monkeypatch.setattr(plan_mod, "read_train_labels", counting)
    planner = Planner()

    # Act: the synthetic labels depend on size and seed, not on the rule
    for cfg in (_cfg(seed=1), _cfg(seed=1, defense={"name": "median"}), _cfg(seed=2)):
        planner.check(cfg)

    # Assert
    assert reads == [(40, 1), (40, 2)]


def test_a_model_that_does_not_fit_fails_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: a model that needs 3-channel images, on the 1-channel synthetic set
    monkeypatch.setitem(MODELS, "rgb_only", lambda **_: nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 10)))
    planner = Planner()

    # Act / Assert: no failure is remembered as a size
    for seed in (1, 2):
        with pytest.raises(ModelError, match="model.name='rgb_only' does not fit data.dataset='synthetic'"):
            planner.check(_cfg(seed=seed, model={"name": "rgb_only"}))
