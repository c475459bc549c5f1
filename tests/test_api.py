"""The Python API's runnable example (docs/examples/api_example.py) runs as a script
(``runpy``, as ``python FILE DIR`` runs it, in this process: a new interpreter would only
pay torch's and pandas' imports again): a real local cluster and an in-process run,
results as DataFrames."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "api_example.py"


@pytest.mark.cluster
def test_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(tmp_path)])

    runpy.run_path(str(EXAMPLE), run_name="__main__")
    stdout = capsys.readouterr().out

    assert "Byzantine peers: [1]" in stdout
    assert "cluster and reference agree on all 16 (round, peer) models" in stdout
    assert (tmp_path / "cluster" / "summary.json").is_file() and (tmp_path / "reference" / "summary.json").is_file()
