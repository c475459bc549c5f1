"""The soak benchmark's short version (``bench/soak.py``): a few hundred very cheap rounds
of a real ``byzemu launch``, and nothing in a peer or the launcher may grow with them.

Every 60 rounds it reads each peer's private memory (USS), open file descriptors, sockets
and threads, and the launcher's (the coordinator's) USS and descriptors from ``/proc``
(``bench/procstat.py``, the benchmark's own reader). The bounds are the benchmark's: under
1 MiB per peer per 1,000 rounds (the launcher's growth counted per peer), and not one
descriptor, socket or thread more at the end than after the warm-up. A coordinator that
kept every round's whole record (what it did before: ~1.6 kB per peer and round) grows
~1.6 MiB per peer per 1,000 rounds here and fails; a socket opened per round fails the
descriptor count at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.support import commands
from tests.support.harness import read_rounds
from tests.support.runs import small_config
from tests.support.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # as bench's scripts import it
import procstat  # noqa: E402

pytestmark = pytest.mark.cluster

NODES = 4
#: a span long enough that the growth fitted per 1,000 rounds is not the noise of a few
#: pages: at 420 rounds one full-suite run in four measured 1.13 MiB for a peer that grows
#: ~0.2 MiB per 1,000 rounds over 2,000 (bench/soak.py)
ROUNDS = 840
EVERY = 60
#: the run's length: far beyond the last sample, so the run cannot end (its peers gone)
#: before the test, lagging on a loaded machine, has sampled round ROUNDS; the test stops
#: it with Ctrl-C once it has
RUN_ROUNDS = 1_000_000


def test_hundreds_of_cheap_rounds_grow_nothing(tmp_path: Path) -> None:
    # Arrange: logistic regression on 200 synthetic samples, one local step, one evaluation
    cfg = tmp_path / "soak.toml"
    cfg.write_text(small_config("soak", seed=3, nodes=NODES, rounds=RUN_ROUNDS, eval={"every": RUN_ROUNDS}))
    out = tmp_path / "run"
    proc = commands.start(["launch", str(cfg), "--out", str(out), "--quiet"], tmp_path / "launch.log")
    samples = []
    try:
        # Act: sample at rounds 60, 120, ..., 840 (the first is the warm-up), then Ctrl-C
        pids: list[int] = []
        for target in range(EVERY, ROUNDS + 1, EVERY):
            done = wait_until(
                partial(_reached, out, target),
                timeout=120,
                what=f"round {target} in rounds.jsonl",
                alive=lambda: proc.poll() is None,
                details=lambda: (tmp_path / "launch.log").read_text()[-2000:],
                interval=0.005,
            )
            if not pids:
                pids = [n["pid"] for n in json.loads((out / "topology.json").read_text())["nodes"]]
            records = read_rounds(out)[done - EVERY : done]
            samples.append(
                {
                    "round": done,
                    "peers": procstat.peers(pids),
                    "launcher": procstat.process(proc.pid),
                    "round_ms": sorted(r["round_s"] for r in records)[len(records) // 2] * 1e3,
                }
            )
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130, (tmp_path / "launch.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # Assert
    assert [s["peers"]["sampled"] for s in samples] == [NODES] * len(samples)
    verdict = procstat.growth(samples, nodes=NODES, bound_mib=1.0)
    assert verdict["ok_handles"], verdict
    assert verdict["peer_uss_mib_per_1000_rounds"] < 1.0, verdict
    assert verdict["launcher_uss_mib_per_peer_1000_rounds"] < 1.0, verdict


def _reached(run_dir: Path, target: int) -> int:
    """The complete lines of ``rounds.jsonl`` once there are ``target`` or more, else 0
    (counted, not parsed: polled every 5 ms)."""
    try:
        n = (run_dir / "rounds.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
    return n if n >= target else 0
