"""The ``assign.config`` table of docs/PROTOCOL.md: the committed table equals the
generator's output, and it lists exactly the fields, with their wire types, that the
coordinator puts in a real ``assign`` message."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import msgpack

from coordinator.plan import build_plan
from launch.tools import protocol_reference
from protocol import assignment as assignment_mod
from protocol import config as config_mod
from protocol.codec import encode

#: wire type of a decoded msgpack value, as the table names it
_WIRE = {bool: "bool", int: "int", float: "float", str: "str", dict: "map, free-form"}


def _table_rows(text: str) -> dict[str, dict[str, str]]:
    """section -> {field: type} parsed from the committed table ("" = top level)."""
    rows: dict[str, dict[str, str]] = {}
    for line in protocol_reference.committed(text).splitlines():
        match = re.match(r"^\| (top level|`(\w+)`) \| (.+) \|$", line)
        if match:
            cells = re.findall(r"`(\w+)` \(([^)]+)\)", match.group(3))
            rows[match.group(2) or ""] = dict(cells)
    return rows


def _sent_config() -> dict[str, Any]:
    """The ``config`` map of node 0's ``assign`` as it leaves the coordinator, decoded."""
    cfg = config_mod.from_dict(
        {"nodes": 3, "topology": {"kind": "complete"}, "data": {"dataset": "synthetic"}, "model": {"name": "logreg"}}
    )
    plan = build_plan(cfg)
    a = plan.assignment(0)
    msg = assignment_mod.to_message(a, {j: f"tcp://127.0.0.1:{j + 1}" for j in a.linked()})
    header = msgpack.unpackb(bytes(encode(msg)[0]), raw=False)
    return header["config"]


def _wire_type(value: Any) -> str:
    if isinstance(value, list):
        return "array of " + (_wire_type(value[0]) if value else "?")
    return _WIRE[type(value)]


def test_committed_table_equals_the_generators_output() -> None:
    page = protocol_reference.PAGE.read_text()

    assert protocol_reference.committed(page) == protocol_reference.render(), (
        "the assign.config table is stale: run python -m launch.tools.protocol_reference --write"
    )


def test_the_table_lists_exactly_the_fields_the_coordinator_sends_with_their_types() -> None:
    table = _table_rows(protocol_reference.PAGE.read_text())
    sent = _sent_config()

    sent_sections = {k: v for k, v in sent.items() if isinstance(v, dict) and k != ""}
    assert set(table) - {""} == set(sent_sections)
    assert set(table[""]) == set(sent) - set(sent_sections)
    for section, fields in sent_sections.items():
        assert set(table[section]) == set(fields), section
        for name, value in fields.items():
            if isinstance(value, list) and not value:
                assert table[section][name].startswith("array of"), f"{section}.{name}"
            elif table[section][name] != "map, free-form" or not isinstance(value, dict):
                assert table[section][name] == _wire_type(value), f"{section}.{name}"
    # the fields revision 1's hand-written table lacked
    assert {"lr_schedule", "lr_fading", "lr_step_epochs", "lr_step_gamma"} <= set(table["train"])
    assert {"pre", "pre_params"} <= set(table["defense"]) and "byzantine" in table["eval"]


def test_check_mode_passes_on_the_committed_page() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "launch.tools.protocol_reference", "--check"], capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
