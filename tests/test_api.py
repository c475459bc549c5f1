"""The Python API's runnable example (docs/examples/api_example.py) runs as a user would
run it: a real local cluster and an in-process run, results as DataFrames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "api_example.py"


@pytest.mark.cluster
def test_api_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("pandas")

    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )

    assert proc.returncode == 0, proc.stderr
    assert "Byzantine peers: [1]" in proc.stdout
    assert "cluster and reference agree on all 16 (round, peer) models" in proc.stdout
    assert (tmp_path / "cluster" / "summary.json").is_file() and (tmp_path / "reference" / "summary.json").is_file()
