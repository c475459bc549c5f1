"""peer.slots: a host's compute slots, held by real processes (fcntl locks on one file)."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
from multiprocessing.connection import Connection
from pathlib import Path

from peer.slots import ComputeSlots, slots_path

_CTX = mp.get_context("fork")


def _hold(path: str, home: int, conn: Connection) -> None:
    """Take a slot, say which, keep it until told (or killed)."""
    slots = ComputeSlots(Path(path), 2, home=home)
    with slots.held() as k:
        conn.send(k)
        conn.poll(120)


def _free(path: Path, slot: int) -> bool:
    """Whether ``slot`` can be locked now (probed from this process, not kept)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
    except OSError:
        return False
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot)
        return True
    finally:
        os.close(fd)


def test_two_slots_held_by_two_processes_and_freed_when_one_ends_or_dies(tmp_path: Path) -> None:
    path = tmp_path / "slots.lock"
    pipes = [_CTX.Pipe() for _ in range(2)]
    # both prefer slot 0: the second takes slot 1 without waiting
    procs = [_CTX.Process(target=_hold, args=(str(path), 0, child)) for _, child in pipes]
    try:
        slots = []
        for proc, (ours, _) in zip(procs, pipes):
            proc.start()
            assert ours.poll(60)
            slots.append(ours.recv())
        assert slots == [0, 1]
        assert not _free(path, 0) and not _free(path, 1)

        pipes[0][0].send("release")  # the first lets go of its slot and ends
        procs[0].join(60)
        assert procs[0].exitcode == 0
        assert _free(path, 0) and not _free(path, 1)

        procs[1].kill()  # SIGKILL: a dead holder leaves no slot taken
        procs[1].join(60)
        assert _free(path, 0) and _free(path, 1)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join(60)


def test_a_run_has_one_lock_file_per_coordinator_address() -> None:
    a, b = slots_path("tcp://127.0.0.1:5555"), slots_path("tcp://127.0.0.1:5556")

    assert a != b
    assert a.name == f"byzemu-{os.getuid()}-slots-tcp_127.0.0.1_5555.lock"
