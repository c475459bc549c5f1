"""A documented number that the code no longer produces fails the suite.

Each cell of configs/drift.toml is a run whose results are committed under results/ and
rendered into the docs. It is run again here, in process, from its shipped sweep file:
on the platform that recorded it the model digests and metrics must equal the committed
row bit for bit; elsewhere the accuracy must be within the file's measured tolerance
(docs/EXPERIMENTS.md, *Determinism*).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.analysis import published

CELLS, TOLERANCE = published.drift_cells()


def test_drift_cells_name_committed_runs() -> None:
    assert len(CELLS) >= 3
    for cell in CELLS:
        rows = published.read_csv(published.PROJECT_ROOT / cell.results / "runs.csv")
        assert any(r["cell"] == cell.cell and int(r["rep"]) == cell.rep for r in rows), cell.id


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_documented_cell_still_gives_its_recorded_numbers(cell: published.DriftCell, tmp_path: Path) -> None:
    # Act
    drift = published.rerun_cell(cell, tmp_path / "run")

    # Assert: a failure says which field moved; re-run, collect and render the table
    assert drift.differences(TOLERANCE) == [], (
        f"{cell.id} drifted from its committed row "
        f"({'same platform: bit-identity expected' if drift.same_platform else 'other platform'})"
    )
