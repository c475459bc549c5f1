"""The coordinator answers the barrier first: once round t's last ``round_done`` is in,
it sends round t+1's ``round_start``, and only then writes round t's record.

A real Coordinator (in a thread, its ROUTER on loopback TCP) and two scripted peers
(tests/support/harness.py, plain pyzmq). The results writer, while appending round t's line,
waits for the test to see ``round_start`` t+1 arrive at a peer: with the old order
(record first, then the next start) that start cannot arrive while the writer waits.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from coordinator.plan import build_plan
from coordinator.results import ResultsWriter
from coordinator.server import Coordinator
from protocol.config import from_dict
from tests.support.harness import ScriptedPeer

ROUNDS = 3


class WatchingWriter(ResultsWriter):
    """Appends as usual, after noting whether the next round had started meanwhile."""

    def __init__(self, *args: Any, started: dict[int, threading.Event], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.started = started
        self.next_started_before_write: dict[int, bool] = {}

    def append_round(self, record: dict[str, Any]) -> None:
        t = record["round"]
        if t < ROUNDS:
            self.next_started_before_write[t] = self.started[t + 1].wait(timeout=5.0)
        super().append_round(record)


def test_next_round_starts_before_the_record_is_written(tmp_path: Path) -> None:
    cfg = from_dict(
        {
            "name": "barrier",
            "seed": 1,
            "nodes": 2,
            "rounds": ROUNDS,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "root": "", "synthetic_size": 20, "test_samples": 10},
            "model": {"name": "logreg"},
            "runtime": {"curve": "off", "round_timeout": 60, "chunk_timeout": 30},
        }
    )
    started = {t: threading.Event() for t in range(1, ROUNDS + 1)}
    writer = WatchingWriter(tmp_path / "run", cfg, mode="launch", started=started)
    coord = Coordinator(build_plan(cfg), bind="tcp://127.0.0.1:0", results=writer)
    thread = threading.Thread(target=coord.run, daemon=True)
    thread.start()
    with ScriptedPeer(coord.address) as a, ScriptedPeer(coord.address) as b:
        for sp in (a, b):
            sp.register()
        for sp in (a, b):
            sp.accept_assignment()
            sp.ready()
        for t in range(1, ROUNDS + 1):
            for sp in (a, b):
                sp.expect("round_start", round_=t, timeout=30)
            started[t].set()
            for sp in (a, b):
                sp.round_done(t, metrics={"train_loss": 1.0, "chunks_received": 0, "senders": 0, "digest": "0" * 16})
        for sp in (a, b):
            sp.expect("stop", timeout=30)
    thread.join(timeout=30)
    coord.close()

    assert writer.next_started_before_write == {1: True, 2: True}
    assert len((tmp_path / "run" / "rounds.jsonl").read_text().splitlines()) == ROUNDS
