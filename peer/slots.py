"""At most N peers of one host computing at once (``runtime.compute_slots``).

With far more peers than cores on a host, every peer starts its local training when the
round starts, and the kernel time-slices them: a LeNet training step (~5 ms of CPU) is
preempted several times, so nearly every peer holds its step's working memory
(activations, gradients) at the same moment. 1,024 LeNet peers on 2 cores grew by 3–5 GiB
within seconds of round 2's start that way (BENCHMARKS.md section 8). With ``N`` slots a
peer computes a step of its round schedule (training, aggregation, evaluation: each
``next()`` of :func:`peer.rounds.round_steps`) only while it holds one of the host's
``N`` locks; it never waits on a message while holding one, so the slots cannot deadlock.
Every number computed is the same; only when each peer computes changes.

The locks are ``fcntl`` byte-range locks on one file per run and host (named after the
coordinator's address, in the temporary folder): the kernel releases a dead process's
locks, so a crashed peer leaves no slot taken. A peer tries every slot without waiting,
then waits on the slot ``node mod N``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ComputeSlots", "slots_path"]


def slots_path(coordinator: str) -> Path:
    """The lock file of the run whose coordinator is at ``coordinator`` (one per user)."""
    safe = re.sub(r"[^A-Za-z0-9.]+", "_", coordinator)
    return Path(tempfile.gettempdir()) / f"byzemu-{os.getuid()}-slots-{safe}.lock"


class ComputeSlots:
    """``count`` slots shared by the peers of a host that open the same ``path`` (the file
    stays open for the process's life: its locks go with it)."""

    def __init__(self, path: Path, count: int, *, home: int = 0) -> None:
        if count < 1:
            raise ValueError(f"compute slots: count={count} must be >= 1")
        self.count = count
        self.home = home % count
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def held(self) -> Iterator[int]:
        """Hold a slot for the body; yields its number."""
        slot = self._acquire()
        try:
            yield slot
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, slot)

    def _acquire(self) -> int:
        for k in range(self.count):
            slot = (self.home + k) % self.count
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                return slot
            except OSError:
                continue
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self.home)
        return self.home
