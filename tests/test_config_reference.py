"""The generated configuration reference: the committed page equals the generator's output,
every schema field has a row and a description, and the allowed values it lists are the
ones the config checks accept."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from launch.tools import config_reference
from protocol import config

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "CONFIGURATION.md"


def _schema_fields(cls: type = config.RunConfig, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _schema_fields(hints[f.name], f"{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def test_committed_page_equals_the_generators_output() -> None:
    assert PAGE.read_text() == config_reference.render(), (
        "docs/CONFIGURATION.md is stale: run python -m launch.tools.config_reference --out docs/CONFIGURATION.md"
    )


def test_every_schema_field_has_one_row_with_a_description() -> None:
    rows = [row for _, cls in config_reference.tables() for row in config_reference.rows(cls, "")]
    assert len(rows) == len(_schema_fields()) == 91
    assert [name for name, *_, doc in rows if not doc] == []
    assert config_reference.field_docs(config.TrainConfig)["lr_fading"] == "c of the fading schedule, > 0"


def test_a_row_renders_name_type_default_and_choices() -> None:
    row = '| `runtime.curve` | string | `"auto"` | `auto`, `on`, `off` |'
    assert row in PAGE.read_text()
    assert "| `byzantine.nodes` | list of integer | `[]` |  | explicit Byzantine ids |" in PAGE.read_text()


@pytest.mark.parametrize("field", sorted(config_reference.CHOICES))
def test_listed_choices_are_exactly_what_the_checks_accept(field: str) -> None:
    table, key = field.split(".")
    choices = config_reference.CHOICES[field]()
    assert choices, field
    if field in ("chunks.policy", "byzantine.knowledge", "train.lr_schedule", "runtime.curve"):
        for value in choices:  # field-level checks: protocol.config.check
            config.from_dict({table: {key: value}})
        with pytest.raises(config.ConfigError, match=field.replace(".", r"\.")):
            config.from_dict({table: {key: "no_such_value"}})


def test_module_runs_and_writes_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # one process proves `python -m` runs (a second one only paid its imports again); the
    # printing path is the same main() in process
    out = tmp_path / "CONFIGURATION.md"
    subprocess.run([sys.executable, "-m", "launch.tools.config_reference", "--out", str(out)], cwd=ROOT, check=True)
    config_reference.main([])
    printed = capsys.readouterr().out
    assert out.read_text() == printed == PAGE.read_text()
