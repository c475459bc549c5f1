"""A ``byzemu peer`` process started ahead of time and held until the test lets it register
(a restarted peer, refused; a new peer registering late for a churn slot): once triggered it
registers within a round deadline however busy the machine is, because it is forked from the
worker's forkserver with torch and the CLI already imported (``tests/support/commands.py``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import commands


@contextmanager
def warm_peer(folder: Path, address: str) -> Iterator[tuple[commands.Command, Path]]:
    """Start the held peer for the coordinator at ``address`` and yield it with its trigger
    file (touch it to let the peer register; ``communicate`` then gives its output); its
    process group is killed on the way out if it is still running."""
    trigger = folder / "warm-trigger"
    proc = commands.start(
        ["peer", "--coordinator", address, "--count", "1", "--bind-host", "127.0.0.1"],
        folder / "warm-peer.log",
        trigger=trigger,
    )
    try:
        yield proc, trigger
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
