"""Sweep files: a grid of configs × repeats, read and checked before anything runs.

A sweep file (TOML)::

    base = "../quickstart.toml"        # relative to the sweep file
    repeats = 3                        # repeat r runs with seed = base seed + r
    [set]                              # fixed overrides for every run (dotted keys)
    rounds = 10
    [axes]                             # dotted config field -> list of values
    "byzantine.attack" = ["none", "backdoor"]
    "defense.name" = ["cdl", "norm_clip"]

The grid is the cartesian product of the axes (in file order) × repeats. Run r of cell
``c`` goes to ``OUT/<c>/rep<r>`` (:mod:`launch.sweeps.runner` runs them). ``extends``
starts from another sweep file (:func:`read_sweep_file`).

Every cell's config is loaded and planned (``Planner.check``) before the first run starts,
so a bad sweep file fails with one ``ConfigError`` line and nothing runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.sweeps.naming import cell_name, toml_value
from protocol import config as config_mod
from protocol.config import ConfigError, RunConfig
from protocol.config_text import extends_parent, read_toml
from protocol.rundir import CONFIG_TOML, flatten_config

SWEEP_KEYS = ("extends", "base", "repeats", "set", "axes")


@dataclass
class Run:
    cell: str
    rep: int
    seed: int
    overrides: list[str]
    cfg: RunConfig
    rel_dir: str


@dataclass
class Cell:
    name: str
    values: dict[str, Any]
    runs: list[Run] = field(default_factory=list)


@dataclass
class Sweep:
    path: Path
    base: Path
    repeats: int
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]
    cells: list[Cell]

    @property
    def runs(self) -> list[Run]:
        return [r for c in self.cells for r in c.runs]

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_file": str(self.path.resolve()),
            "base": str(self.base),
            "repeats": self.repeats,
            "set": self.fixed,
            "axes": self.axes,
            "total_runs": len(self.runs),
            "cells": [
                {
                    "name": c.name,
                    "values": c.values,
                    "runs": [{"rep": r.rep, "seed": r.seed, "dir": r.rel_dir} for r in c.runs],
                }
                for c in self.cells
            ],
        }


def read_sweep_file(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The sweep file's table, with ``extends`` resolved (``base`` made absolute).

    ``extends = "other.toml"`` (relative to this file) starts from that sweep file:
    this file's ``base`` and ``repeats`` replace its, ``[set]`` is merged over its
    ``[set]`` (dotted keys), and each axis given here replaces that axis.
    """
    data = read_toml(path, "sweep file")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a sweep file has {', '.join(SWEEP_KEYS)}")
    for key in ("set", "axes"):
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key}: expected a table of dotted field = value")
    if isinstance(data.get("base"), str) and data["base"]:
        data["base"] = str((path.resolve().parent / data["base"]).resolve())
    parent_path = extends_parent(path, data, chain, "sweep file")
    if parent_path is None:
        return data
    merged = read_sweep_file(parent_path, chain + (path.resolve(),))
    for key in ("base", "repeats"):
        if key in data:
            merged[key] = data[key]
    merged["set"] = {**_flat_set(merged.get("set", {})), **_flat_set(data.get("set", {}))}
    merged["axes"] = {**merged.get("axes", {}), **data.get("axes", {})}
    return merged


def load_sweep(path: str | Path, extra: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Parse and check a sweep file; load and plan every cell's config. Raises ConfigError.

    ``extra`` are ``--set KEY=VALUE`` overrides applied to every run after the file's
    ``[set]`` and axis values (so they win over both).
    """
    path = Path(path)
    data = read_sweep_file(path)
    if not isinstance(data.get("base"), str) or not data["base"]:
        raise ConfigError(f'{path}: missing base = "path/to/{CONFIG_TOML}" (relative to the sweep file)')
    base = Path(data["base"])
    if not base.is_file():
        raise ConfigError(f"{path}: base={str(base)!r}: no such file")
    repeats = data.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"{path}: repeats={repeats!r}: must be an integer >= 1")
    fixed = data.get("set", {})
    axes = data.get("axes", {})
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ConfigError(f"{path}: axes.{key!r}: expected a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"{path}: axes.{key!r}: empty list; give at least one value")
        if key == "seed":
            raise ConfigError(f"{path}: axes.'seed': use repeats (seed = base seed + repeat)")
    fixed_over = [f"{k}={toml_value(v)}" for k, v in _flat_set(fixed).items()]

    from coordinator.plan import Planner

    planner = Planner()  # each distinct config planned once, the model built once per shape
    cells: list[Cell] = []
    used: set[str] = set()
    for combo in itertools.product(*axes.values()) if axes else [()]:
        values = dict(zip(axes.keys(), combo))
        name = cell_name(values)
        if name in used:  # two values that read the same once made filesystem-safe
            name = f"{name}__{len(cells)}"
        used.add(name)
        overrides = fixed_over + [f"{k}={toml_value(v)}" for k, v in values.items()] + list(extra)
        cfg0 = _load(base, overrides, values)
        cell = Cell(name, values)
        for rep in range(repeats):
            seed = cfg0.seed + rep
            run_over = overrides + [f"seed={seed}"]
            cfg = config_mod.load(base, run_over)
            planner.check(cfg)  # graph, roles, data, model, defense, attack: fail before any run
            cell.runs.append(Run(name, rep, seed, run_over, cfg, f"{name}/rep{rep}"))
        cells.append(cell)
    return Sweep(path, base, repeats, fixed, axes, cells)


def _load(base: Path, overrides: list[str], values: dict[str, Any]) -> RunConfig:
    try:
        return config_mod.load(base, overrides)
    except ConfigError as exc:
        where = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ConfigError(f"{exc} (sweep cell {where})" if where else str(exc)) from None


def _flat_set(data: dict[str, Any]) -> dict[str, Any]:
    """A ``[set]`` table as dotted overrides; a ``params`` table stays whole, so that it
    replaces the config's table as ``--set defense.params={...}`` does."""
    return flatten_config(data, whole=("params",))
