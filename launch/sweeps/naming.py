"""Names in a sweep: a value as ``--set`` writes it, a cell's folder name, a run's result line.

Sweeps name cells after their axis values (``defense.name=median__byzantine.count=2``);
the report names its cells the same way, and the Python API turns values into ``--set``
overrides with :func:`toml_value`.
"""

from __future__ import annotations

import re
from typing import Any

from protocol import config as config_mod


def toml_value(value: Any) -> str:
    """A Python value as the right-hand side of a ``--set`` override (TOML syntax)."""
    # to_toml renders a top-level "params" key inline whatever its type
    return config_mod.to_toml({"params": value}).split("=", 1)[1].strip()


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "_"


def cell_name(values: dict[str, Any]) -> str:
    """Readable, filesystem-safe folder name: ``axis=value__axis=value`` (a field the cell
    does not have, e.g. a parameter only another cell's attack takes, is left out)."""
    if not values:
        return "base"
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        shown = value if isinstance(value, str) else toml_value(value)
        parts.append(f"{safe_name(key)}={safe_name(str(shown))}")
    return "__".join(parts)


def summary_text(summary: dict[str, Any]) -> str:
    """``honest accuracy 0.9712 (worst 0.9632)`` and, when a backdoor-type attack ran,
    ``ASR 0.0312 (worst 0.0625)``: the numbers a sweep line and a run's final lines show."""
    acc = summary.get("final_accuracy") or {}
    text = f"honest accuracy {acc['mean']:.4f} (worst {acc['worst']:.4f})" if "mean" in acc else "honest accuracy n/a"
    asr = summary.get("final_attack_success_rate") or {}
    if "mean" in asr:
        text += f", ASR {asr['mean']:.4f} (worst {asr['worst']:.4f})"
    return text
