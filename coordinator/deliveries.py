"""The delivery log writer: one line of ``deliveries.jsonl`` per round, for both drivers.

A peer's round report carries ``delivery``: the senders each of its inbox reads found
(``peer/rounds.py``: ``observed``, ``oracle``, ``collude`` and ``chunk``, the chunks it
aggregated). Where deadlines dropped chunks, that is what the run's result depended on;
``byzemu reference --replay RUN_DIR`` feeds the log back to the round schedule and
reproduces the run bit for bit in one process. ``protocol/rundir.py`` names the file and
reads it back (:func:`protocol.rundir.read_deliveries`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from protocol.rundir import RunDir, write_all


def well_formed(delivery: Any) -> bool:
    """Whether a peer's ``delivery`` is a map of labels to lists of sender ids (a report
    with anything else gets no line of the log, and the run cannot be replayed)."""
    return isinstance(delivery, Mapping) and all(
        isinstance(label, str)
        and isinstance(senders, list)
        and all(isinstance(j, int) and not isinstance(j, bool) for j in senders)
        for label, senders in delivery.items()
    )


class DeliveryLog:
    """Appends ``{"round": t, "peers": {"i": {label: [senders]}}}`` lines to the run's log
    (a fresh run starts it empty; a resumed one appends, later lines win). The file stays
    open, unbuffered, from the first round to :meth:`close`: each line reaches the OS in
    one write, as ``rounds.jsonl``'s, and the coordinator holds the same descriptors in
    every round (``tests/test_soak.py`` counts them)."""

    def __init__(self, run: RunDir, *, fresh: bool) -> None:
        self.path = run.deliveries
        self._file = open(self.path, "wb" if fresh else "ab", buffering=0)

    def append(self, round_: int, deliveries: Mapping[int, Mapping[str, Any]]) -> None:
        line = json.dumps({"round": round_, "peers": {str(n): dict(d) for n, d in sorted(deliveries.items())}})
        write_all(self._file, (line + "\n").encode())

    def close(self) -> None:
        self._file.close()
