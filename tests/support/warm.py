"""A `byzemu peer` process started ahead of time and held warm until the test lets it
register: its forkserver has already imported torch (the slow part, tens of seconds on a
loaded machine) and it has imported the CLI, so once triggered it registers within a round
deadline however busy the machine is. Used for a restarted peer (refused) and for a new
peer registering late (a churn slot)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.waiting import output, running, wait_until

#: the warm peer's script: argv = trigger file, ready file, coordinator address
WARM_PEER = """
import multiprocessing, os, pathlib, sys, time
from launch.run.procs import start_forkserver
start_forkserver()
probe = multiprocessing.get_context("forkserver").Process(target=os.getpid)
probe.start(); probe.join()  # the forkserver has run its preload (torch, peer code)
from launch.cli import main
trigger, ready, address = sys.argv[1:4]
pathlib.Path(ready).touch()
while not pathlib.Path(trigger).exists():
    time.sleep(0.01)
main(["peer", "--coordinator", address, "--count", "1", "--bind-host", "127.0.0.1"], prog_name="byzemu")
"""


@contextmanager
def warm_peer(folder: Path, address: str, timeout: float) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Start the warm peer for the coordinator at ``address``, wait until it is ready and
    yield it with its trigger file (touch it to let the peer register); the peer's process
    group is killed on the way out if it is still running."""
    trigger, ready = folder / "warm-trigger", folder / "warm-ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", WARM_PEER, str(trigger), str(ready), address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(ready.exists, timeout=timeout, what="the warm peer", alive=running(proc), details=output(proc))
        yield proc, trigger
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
