"""The drift check: rerun a documented cell and compare it with its committed row."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch.analysis.published.collect import csv_text, run_row
from launch.analysis.published.common import PROJECT_ROOT, PublishError, number, read_csv
from protocol import rundir
from protocol.config_text import read_toml

#: the drift cells and the cross-platform tolerance (configs/drift.toml)
DRIFT_FILE = PROJECT_ROOT / "configs" / "drift.toml"


@dataclass(frozen=True)
class DriftCell:
    """A documented run that the test suite reruns: ``cell``/``rep`` of ``results``."""

    results: str
    cell: str
    rep: int = 0

    @property
    def id(self) -> str:
        return f"{Path(self.results).name}/{self.cell}/rep{self.rep}"


def drift_cells(path: Path = DRIFT_FILE) -> tuple[list[DriftCell], float]:
    """The cells of ``path`` and its ``tolerance`` (absolute, on honest accuracy)."""
    data = read_toml(path, error=PublishError)
    cells = [DriftCell(str(c["results"]), str(c["cell"]), int(c.get("rep", 0))) for c in data.get("cell", [])]
    return cells, float(data["tolerance"])


@dataclass(frozen=True)
class Drift:
    """A rerun of a documented cell beside its committed row."""

    cell: DriftCell
    recorded: dict[str, str]
    now: dict[str, Any]

    @property
    def same_platform(self) -> bool:
        return self.recorded.get("platform") == self.now["platform"]

    def differences(self, tolerance: float) -> list[str]:
        """What differs beyond what the platforms allow: on the recording platform every
        field bit for bit (model digests, accuracy, ASR); elsewhere honest accuracy and ASR
        within ``tolerance``."""
        out = []
        fields = ("acc_mean", "acc_worst", "asr_mean")
        if self.same_platform:
            for key in ("digest", *fields):
                rec, now = self.recorded.get(key, ""), csv_text(self.now.get(key))
                if str(rec) != str(now):
                    out.append(f"{key}: recorded {rec}, now {now}")
        else:
            for key in fields:
                was, value = number(self.recorded.get(key, "")), self.now.get(key)
                if (was is None) != (value is None) or (
                    was is not None and value is not None and abs(was - value) > tolerance
                ):
                    out.append(f"{key}: recorded {was}, now {value} (tolerance {tolerance} across platforms)")
        return out


def rerun_cell(cell: DriftCell, out_dir: Path, *, root: Path = PROJECT_ROOT) -> Drift:
    """Run ``cell`` again, in process (the reference driver, bit-identical to a cluster
    run), from the sweep file its results record; ``out_dir`` receives the run folder."""

    from launch.run.reference import run_reference
    from launch.sweeps.sweepfile import load_sweep

    results = root / cell.results
    prov = json.loads((results / rundir.PROVENANCE).read_text())
    recorded = [r for r in read_csv(results / "runs.csv") if r["cell"] == cell.cell and int(r["rep"]) == cell.rep]
    if not recorded:
        raise PublishError(f"{results / 'runs.csv'}: no run {cell.cell}/rep{cell.rep}")
    cwd = Path.cwd()
    os.chdir(root)  # sweep files name data folders relative to the project, as documented
    try:
        source = root / prov["sweep"]
        text = read_toml(source, error=PublishError)
        if "base" in text or "extends" in text:  # a sweep file
            sweep = load_sweep(source)
            run = next((r for r in sweep.runs if r.cell == cell.cell and r.rep == cell.rep), None)
            if run is None:
                raise PublishError(f"{prov['sweep']}: no cell {cell.cell} rep {cell.rep} (the sweep file changed?)")
            cfg = run.cfg
        else:  # one run's config (byzemu launch)
            from protocol import config as config_mod

            cfg = config_mod.load(source, [])
        run_reference(cfg, out_dir)
    finally:
        os.chdir(cwd)
    now, _, _ = run_row(out_dir, cell.cell, {}, cell.rep)
    return Drift(cell=cell, recorded=recorded[0], now=now)
