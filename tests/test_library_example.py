"""docs/examples/defenses_as_library.py (docs/LIBRARY.md) runs as a script (``runpy``, as
``python FILE`` runs it, in this process: a new one would only pay torch's import again), and
prints each rule's result on its stack of five vectors as worked out by hand."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "defenses_as_library.py"


def _results(stdout: str) -> dict[str, list[float]]:
    out = {}
    for line in stdout.splitlines():
        if "->" in line:
            name, _, values = line.partition("->")
            out[name.split()[0]] = [float(v) for v in values.strip(" []").split(",")]
    return out


def test_library_example_prints_the_hand_computed_aggregates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: rows (own first) (1, 2), (2, 3), (0, 1), (1, 2) and the Byzantine (100, -100)
    clipped = [1 + 99 * 2 / math.hypot(99, 102), 2 - 102 * 2 / math.hypot(99, 102)]  # its deviation cut to norm 2
    expected = {
        "mean": [104 / 5, -92 / 5],
        "median": [1.0, 2.0],  # middle of 0, 1, 1, 2, 100 and of -100, 1, 2, 2, 3
        "trimmed_mean": [4 / 3, 5 / 3],  # the lowest and the highest value dropped per coordinate
        "krum": [1.0, 2.0],  # (1, 2): squared distances 0 and 2 to its two nearest, the least
        "norm_clip": [(1 + 2 + 0 + 1 + clipped[0]) / 5, (2 + 3 + 1 + 2 + clipped[1]) / 5],
    }

    # Act
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    stdout = capsys.readouterr().out

    # Assert: printed to 4 decimals
    got = _results(stdout)
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        assert got[name] == [round(v, 4) for v in values], name
    assert "(did you mean 'trimmed_mean'?)" in stdout
