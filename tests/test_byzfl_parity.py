"""byzemu's versions of ByzFL's rules against ByzFL 0.0.11 on random stacks.

Skipped without ByzFL (``pip install -e .[parity]``). Where byzemu departs from ByzFL on
purpose (CAF's and SMEA's exact eigenvectors, CAF's maximum over weighted rows), the
test shows the documented difference instead. Results are recorded in docs/DEFENSES.md."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch

from peer.defenses import PRE_STEPS, ChunkContext, Kept, build_defense, ops
from peer.defenses.base import RobustDefense


class _ByzFL:
    """ByzFL's aggregators and pre-aggregators (every name these tests use), imported by
    the first test that uses them (skipped without ByzFL). Its package's ``__init__``
    imports its benchmark too (torchvision, seaborn, scipy.stats: ~5 s of CPU), so the
    package is entered without running that file: a bare package module stands for it, and
    ``byzfl.aggregators`` is imported beneath it. Only this file imports ByzFL."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # pytest's collection asks every module attribute for __test__
            raise AttributeError(name)
        if "byzfl" not in sys.modules:
            spec = importlib.util.find_spec("byzfl")
            if spec is None or spec.submodule_search_locations is None:
                pytest.skip("ByzFL is not installed (pip install -e .[parity])")
            package = types.ModuleType("byzfl")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["byzfl"] = package
        return getattr(importlib.import_module("byzfl.aggregators"), name)


byzfl = _ByzFL()

N, D, F = 7, 5, 2


def _stacks(d: int = D, count: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(15)
    return [rng.normal(size=(N, d)) * rng.uniform(0.1, 3.0) for _ in range(count)]


def _ctx() -> ChunkContext:
    return ChunkContext(node=0, round=1, index=0, senders=tuple(range(1, N)), degree=N - 1)


def _ours(name: str, params: dict, x: np.ndarray) -> np.ndarray:
    rows = [torch.from_numpy(r) for r in x]
    kept = Kept(rows[0], tuple(rows[1:]), tuple(range(1, len(rows))))
    rule = build_defense(name, params)
    assert isinstance(rule, RobustDefense)  # every rule compared here combines a stack
    return rule.combine(torch.from_numpy(x), _ctx(), kept).numpy()


@pytest.mark.parametrize(
    ("ours", "params", "theirs"),
    [
        ("geomed", {"eps": 0.1, "max_iter": 3, "tol": 0.0}, lambda: byzfl.GeometricMedian(nu=0.1, T=3)),
        ("mda", {"f": F}, lambda: byzfl.MDA(f=F)),
        ("monna", {"f": F}, lambda: byzfl.MoNNA(f=F, idx=0)),
        ("meamed", {"f": F}, lambda: byzfl.Meamed(f=F)),
        ("mean", {}, lambda: byzfl.Average()),
    ],
)
def test_rule_matches_byzfl(ours: str, params: dict, theirs) -> None:
    for x in _stacks():
        assert np.allclose(_ours(ours, params, x), theirs()(x.copy()), atol=1e-9, rtol=1e-9)


def test_smea_matches_byzfl_in_one_dimension() -> None:
    # ByzFL's single power iteration is exact for d = 1 (the eigenvector is +-1)
    for x in _stacks(d=1):
        assert np.allclose(_ours("smea", {"f": F}, x), byzfl.SMEA(f=F)(x.copy()), atol=1e-9)


def test_caf_departs_from_byzfl_where_a_dropped_outlier_keeps_the_maximum() -> None:
    # rows 0, 2, 100 (f = 1): byzemu stops after two passes at 6664/6532 (see
    # test_defenses_catalogue); ByzFL divides by the zero-weight outlier's tau and crawls
    # on, down-weighting 0 and 2 by nearly equal factors, so it ends near their mean 1
    x = np.array([[0.0], [2.0], [100.0]])

    ours = float(_ours("caf", {"f": 1}, x)[0])
    theirs = float(byzfl.CAF(f=1)(x.copy())[0])

    assert ours == pytest.approx(6664 / 6532)
    assert theirs != pytest.approx(ours, abs=1e-6) and abs(theirs - 1.0) < 0.05


def test_nnm_matches_byzfl() -> None:
    for x in _stacks():
        out = PRE_STEPS.build("nnm", {"f": F}).apply(torch.from_numpy(x), _ctx()).numpy()
        assert np.allclose(out, byzfl.NNM(f=F)(x.copy()), atol=1e-12)


def test_arc_matches_byzfl_on_the_deviations_from_the_own_row() -> None:
    for x in _stacks():
        out = PRE_STEPS.build("arc", {"f": F}).apply(torch.from_numpy(x), _ctx()).numpy()
        assert np.allclose(out - x[0], byzfl.ARC(f=F)((x - x[0]).copy()), atol=1e-12)


def test_bucketing_matches_byzfl_for_the_same_permutation() -> None:
    for s in (2, 3):
        x = _stacks()[0]
        np.random.seed(7)
        theirs = byzfl.Bucketing(s=s)(x.copy())
        np.random.seed(7)
        order = np.random.permutation(N)
        ours = ops.bucket_means(torch.from_numpy(x[order]), s).numpy()
        assert np.allclose(ours, theirs, atol=1e-12)
