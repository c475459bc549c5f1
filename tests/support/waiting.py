"""Waiting on an event: :func:`wait_until`, the one polling loop of the tests.

A test that waits for something another process does (a round on disk, a socket file, a
log line) polls for it with :func:`wait_until` instead of sleeping a fixed time: it goes
on as soon as the event happens, fails at once (with the logs) when the process it waits
on exits first, and fails with a clear message after a generous ``timeout``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tests.support.commands import Command

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    details: Callable[[], str] | None = None,
    interval: float = 0.02,
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns a true value, and
    return that value.

    Raises :class:`RuntimeError` when ``alive`` (if given) returns false first, and
    :class:`TimeoutError` after ``timeout`` seconds; both messages name ``what`` (the event
    waited for, e.g. ``"round 1 in rounds.jsonl"``) and end with ``details()`` (e.g. the
    processes' logs), read only on failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and not alive():
            value = condition()  # it may have happened just before the exit
            if value:
                return value
            raise RuntimeError(_message(f"exited before {what}", details))
        if time.monotonic() > deadline:
            raise TimeoutError(_message(f"no {what} within {timeout:g} s", details))
        time.sleep(interval)


def _message(head: str, details: Callable[[], str] | None) -> str:
    return f"{head}:\n{details()}" if details is not None else head


def running(proc: subprocess.Popen | Command) -> Callable[[], bool]:
    """``alive`` for :func:`wait_until`: whether ``proc`` still runs."""
    return lambda: proc.poll() is None


def output(proc: subprocess.Popen | Command) -> Callable[[], str]:
    """``details`` for :func:`wait_until`: what ``proc`` (started with pipes) wrote, once it
    has exited; never blocks on a process that still runs."""

    def read() -> str:
        if proc.poll() is None:
            return f"(pid {proc.pid} still running)"
        stdout, stderr = proc.communicate()
        return f"exit status {proc.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"

    return read
