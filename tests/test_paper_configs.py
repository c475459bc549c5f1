"""The papers' setups under configs/: every sweep file loads and plans, the reduced
variants are the full grids at fewer rounds, and one round of the first run of each
paper's reduced variant completes: its model, dataset, defense, attack and knowledge mode
together, in process through the reference driver (tests/test_reference_equivalence.py
proves it bit-identical to a real multi-process run, and tests/test_registry_runs.py runs
the oracle flow of Masuda and Shudo as real processes), on fewer peers, one local step.

CIFAR-10 cannot be downloaded here and Fashion-MNIST may be missing, so those sweeps
run on small generated folders in the real formats (``--set data.root=...``), which
exercises the same loaders as the real files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch.run.reference import run_reference
from launch.sweeps.sweepfile import load_sweep
from protocol import config as config_mod
from tests.support.datagen import overrides_for

SWEEPS = Path(__file__).resolve().parents[1] / "configs" / "sweeps"
#: each paper's one round runs on fewer peers (the model, data and rules are the paper's;
#: the message flow is the same), one local step of 16 samples, 40 test samples
SMALLER = {
    "chunked_dl_mnist": ["nodes=8"],
    "chunked_dl_cifar10": ["nodes=8"],
    "masuda_shudo": ["nodes=6"],
    "guo_ubar": ["nodes=7"],
    "alie": ["nodes=8", "byzantine.count=2"],
    "dfl_dual": ["nodes=6"],
}
ONE_SMALL_ROUND = ["rounds=1", "data.test_samples=40", "train.local_steps=1", "train.batch_size=16"]
PAPERS = ["chunked_dl_mnist", "chunked_dl_cifar10", "masuda_shudo", "guo_ubar", "alie", "dfl_dual"]


def test_every_paper_has_a_full_and_a_reduced_sweep() -> None:
    for paper in PAPERS:
        assert (SWEEPS / f"{paper}.toml").is_file() and (SWEEPS / f"{paper}_reduced.toml").is_file()


@pytest.mark.parametrize("paper", PAPERS)
def test_paper_sweep_loads_and_plans_and_reduced_is_the_same_grid(paper: str, data_roots: dict[str, str]) -> None:
    full_path, reduced_path = SWEEPS / f"{paper}.toml", SWEEPS / f"{paper}_reduced.toml"
    full = load_sweep(full_path, overrides_for(full_path, data_roots))
    reduced = load_sweep(reduced_path, overrides_for(reduced_path, data_roots))

    assert [c.name for c in reduced.cells] == [c.name for c in full.cells]
    assert reduced.runs[0].cfg.rounds < full.runs[0].cfg.rounds
    assert len(full.runs) == len(full.cells) * full.repeats


def test_paper_setups_are_the_documented_ones(data_roots: dict[str, str]) -> None:
    def first(paper: str) -> config_mod.RunConfig:
        path = SWEEPS / f"{paper}.toml"
        return load_sweep(path, overrides_for(path, data_roots)).runs[0].cfg

    chunked = first("chunked_dl_mnist")
    assert (chunked.nodes, chunked.topology.degree, chunked.byzantine.count, chunked.rounds) == (16, 3, 3, 300)
    masuda = first("masuda_shudo")
    assert (masuda.nodes, masuda.topology.kind, masuda.topology.p, masuda.model.name) == (
        10,
        "erdos_renyi",
        0.4,
        "cnn_masuda",
    )
    assert (masuda.train.batch_size, masuda.train.lr, masuda.train.local_steps) == (256, 0.01, 1)
    assert masuda.byzantine.knowledge == "oracle"
    # Guo et al.: 30 benign nodes, Byzantine ones added at ratios 0.1 / 0.3 / 0.5
    for name, ratio in (("guo_ubar_br01", 0.1), ("guo_ubar", 0.3), ("guo_ubar_br05", 0.5)):
        guo = first(name)
        byzantine = round(guo.byzantine.fraction * guo.nodes)
        assert (guo.nodes - byzantine, guo.byzantine.fraction, guo.byzantine.placement) == (30, ratio, "added")
    assert (guo.model.name, guo.train.lr_schedule, guo.train.batch_size) == ("cnn_guo", "fading", 256)
    alie = first("alie")
    assert (alie.nodes, alie.byzantine.count, alie.byzantine.params) == (51, 12, {"z": 1.5})
    dual = first("dfl_dual")
    assert (dual.data.dataset, dual.data.split, dual.data.p, dual.byzantine.fraction) == (
        "fashion_mnist",
        "fltrust",
        0.8,
        0.6,
    )


@pytest.mark.parametrize("paper", PAPERS)
def test_one_round_of_the_reduced_variant_runs(paper: str, data_roots: dict[str, str], tmp_path: Path) -> None:
    path = SWEEPS / f"{paper}_reduced.toml"
    extra = overrides_for(path, data_roots) + ONE_SMALL_ROUND + SMALLER[paper]
    run = load_sweep(path, extra).runs[0]

    summary = run_reference(run.cfg, tmp_path / "run")

    records = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()
    assert len(records) == 1 and summary["failed_peers"] == []
    assert 0.0 <= summary["final_accuracy"]["mean"] <= 1.0
    peers = json.loads(records[0])["peers"]
    assert len(peers) == run.cfg.nodes and {p["status"] for p in peers.values()} == {"ok"}
