"""Auto-named results folders (``runs/NAME-TIMESTAMP``, :func:`launch.run.local.default_out_dir`)
claimed by one launch each, and given back when the launch fails before its run begins.
Free of heavy imports, so that a launch that fails early stays fast."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path


def claim_out_dir(path: Path) -> Path:
    """Create the auto-named results folder ``path`` for this run alone and return it: a
    launch that got the same name (the same config in the same second) gets ``path-2``
    (``-3``, ...). Creating a folder is atomic, so two launches never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def release_out_dir(path: Path | None) -> None:
    """Remove a claimed results folder that stayed empty (its run failed before it began)."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.rmdir()
