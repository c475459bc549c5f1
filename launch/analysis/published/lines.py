"""The provenance line under a rendered table and the commands that regenerate it."""

from __future__ import annotations

import shlex
from typing import Any

from launch.analysis.published.specs import TableSpec
from protocol import provenance as prov_mod


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def provenance_line(spec: TableSpec, prov: dict[str, Any]) -> str:
    """One line under a table: where its numbers came from and how to regenerate them."""
    example = prov.get("example") or {}
    commits = sorted(prov.get("commits") or {})
    platforms = prov.get("platforms") or {}
    where = prov_mod.short_line(example)
    if len(commits) > 1:
        where += f" (runs from {len(commits)} commits: {', '.join(c[:7] for c in commits)})"
    if len(platforms) > 1:
        where += f" ({len(platforms)} platforms)"
    command = ", ".join(f"`{c}`" for c in regenerate_commands(spec))
    wall = f"{prov.get('runs')} run(s), {minutes(prov.get('wall_s', 0.0))} of run wall time"
    return f"<sub>Measured: {where}; {wall}. Regenerate: {command}.</sub>"


def regenerate_commands(spec: TableSpec) -> list[str]:
    """The shell commands that rerun, collect and render ``spec``'s table."""
    if spec.commands:
        return [*spec.commands, "byzemu publish render"]
    results = spec.results.relative_to(spec.root)
    out = f"runs/{results.name}"
    return [
        shlex.join(["byzemu", "launch" if spec.launch else "sweep", spec.sweep, "--out", out]),
        shlex.join(["byzemu", "publish", "collect", out, str(results)]),
        "byzemu publish render",
    ]
