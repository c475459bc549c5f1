"""Stress check: three peers without the coordinator's CURVE key, N times in a row.

Each try starts ``byzemu coordinator`` with CURVE on and ``byzemu peer --count 3``
without ``--coordinator-key`` (the cluster of ``tests/test_peer_cli.py``) and waits for
the peers' command to exit. A try whose peers do not exit within LIMIT seconds prints
the Python and native stacks of every process of the peer command (``py-spy dump``, when
installed) and its logs, then the loop stops. Run it with the cores busy to shake out
races, e.g. eight busy loops beside it::

    for k in $(seq 8); do timeout 600 python3 -c "while True: pass" & done
    .venv/bin/python bench/stress_keyless.py 25 60

Before ``ControlChannel.send`` stopped blocking, the second try hung (the peers sat in
``send`` of their ``register``); after it, 25 of 25 exited in 6-10 s (tests/README.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.harness import Cluster, write_config  # noqa: E402
from tests.test_peer_cli import CONFIG  # noqa: E402


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (via ``pgrep -P``)."""
    found: list[int] = []
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        found += [int(child), *descendants(int(child))]
    return found


def main(tries: int, limit: float) -> int:
    spy = shutil.which("py-spy")
    for attempt in range(tries):
        folder = Path(tempfile.mkdtemp(prefix="keyless-"))
        started = time.monotonic()
        with Cluster(write_config(folder, CONFIG), folder / "run", peers=3) as cluster:
            cluster.start_coordinator()
            cluster.wait_listening()
            cluster.coordinator_key = None  # the user left out --coordinator-key
            cluster.start_peers()
            assert cluster.peers is not None
            try:
                code = cluster.peers.wait(limit)
            except subprocess.TimeoutExpired:
                print(f"try {attempt}: peers still running after {limit:g} s ({folder})", flush=True)
                for pid in descendants(cluster.peers.pid):
                    if spy:
                        subprocess.run([spy, "dump", "--native", "--pid", str(pid)])
                print(cluster.logs())
                return 1
        print(f"try {attempt}: exit {code} after {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10, float(sys.argv[2]) if len(sys.argv) > 2 else 60.0))
