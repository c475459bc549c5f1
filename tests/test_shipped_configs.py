"""Every config and sweep file shipped under configs/ loads, resolves and plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.plan import build_plan
from launch.sweeps.sweepfile import load_sweep
from protocol import config as config_mod
from tests.support.datagen import overrides_for

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: run configs and sweep files; configs/tables/ (table specs, tests/test_published.py) and
#: configs/drift.toml (tests/test_drift.py) are read by their own tests
FILES = sorted(
    p
    for p in CONFIGS.rglob("*.toml")
    if p.relative_to(CONFIGS).parts[0] != "tables" and p.relative_to(CONFIGS).as_posix() != "drift.toml"
)


def test_configs_folder_holds_the_quickstart_and_the_smoke_sweep() -> None:
    names = {p.relative_to(CONFIGS).as_posix() for p in FILES}

    assert {"quickstart.toml", "sweeps/smoke.toml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_shipped_file_loads_and_plans(path: Path, data_roots: dict[str, str]) -> None:
    extra = overrides_for(path, data_roots)
    text = path.read_text()
    if "axes" in text or "extends" in text:
        sweep = load_sweep(path, extra)  # validates and plans every cell
        assert len(sweep.runs) == len(sweep.cells) * sweep.repeats >= 1
    else:
        plan = build_plan(config_mod.load(path, extra))
        assert len(plan.shards) == plan.config.nodes


def test_quickstart_is_the_documented_setup() -> None:
    cfg = config_mod.load(CONFIGS / "quickstart.toml")

    assert (cfg.nodes, cfg.topology.kind, cfg.topology.degree) == (16, "regular", 3)
    assert (cfg.data.dataset, cfg.data.split, cfg.model.name, cfg.defense.name) == ("mnist", "iid", "lenet", "cdl")
