"""``byzemu`` commands as real processes, forked from the test worker's forkserver.

A ``byzemu coordinator`` or ``byzemu peer`` started with :func:`subprocess.Popen` is a new
interpreter that imports torch (~1.7 s of CPU), and ``byzemu peer`` then starts a forkserver
that imports it again (~1.8 s): over three seconds of CPU per cluster before a message is
sent, most of the suite's time on a 2-core machine. :func:`start` forks the command instead
from the worker's forkserver (``launch.run.procs.start_forkserver``: torch and the peer code
already imported, what ``byzemu launch`` forks its peers from); a ``byzemu peer`` command
forks its peers straight from itself (``launch.run.procs.PEERS_START = "fork"``), and a
``byzemu launch`` or ``byzemu sweep`` command gets its forkserver forked from itself
(:func:`_fork_forkserver`) before it starts (it starts threads later, so its peers cannot
be forked from it directly).

What a test sees is what it saw of a subprocess: a process of its own, with its own pid and
process group (``os.setsid``, so ``os.killpg`` ends the command and the peers it forked),
its output appended to a log file, its exit status (``-N`` when a signal N ended it), real
sockets. What it does not see: the interpreter's start and torch's import, and the CLI's
``atexit`` handlers (a forkserver's child ends in ``os._exit``; byzemu registers none). A
test of a command's own start-up (its environment, its ``python`` on ``PATH``, a signal
that arrives during the import) starts the command with :func:`subprocess.Popen`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _command(argv: list[str], log: str, err: str | None, env: dict[str, str], cwd: str, trigger: str | None) -> None:
    """The forked process: a session of its own, stdout to ``log`` and stderr to ``err``
    (or ``log``), then (once ``trigger`` exists, when given) the CLI."""
    os.setsid()
    os.chdir(cwd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, log), (2, err or log)):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, fd)
        os.close(out)
    os.environ.update(env)
    while trigger is not None and not os.path.exists(trigger):
        time.sleep(0.01)
    if argv and argv[0] == "peer":
        from launch.run import procs

        procs.PEERS_START = "fork"
    elif argv and argv[0] in ("launch", "sweep"):
        _fork_forkserver()
    from launch.cli import main

    sys.argv = ["byzemu", *argv]
    main(list(argv), prog_name="byzemu")  # ends in SystemExit: the process's exit status


def _fork_forkserver() -> None:
    """Start this process's multiprocessing forkserver as ``ForkServer.ensure_running``
    does, but forked from here (torch and the peer code are imported already) instead of
    as a new interpreter that imports them again; the command's ``start_forkserver`` then
    finds it running. The peers it forks are what they are under ``byzemu launch``, except
    that they load the run's data themselves (the data preload of ``peer/preload.py`` is
    not run), as in ``api.launch`` from the tests."""
    import socket
    from multiprocessing import connection, forkserver, resource_tracker

    new_address: Any = getattr(connection, "arbitrary_address")  # noqa: B009  (private: not in the stubs)

    resource_tracker.ensure_running()
    with socket.socket(socket.AF_UNIX) as listener:
        address = new_address("AF_UNIX")
        listener.bind(address)
        listener.listen()
        alive_r, alive_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the forkserver: serves until every holder of alive_w has exited
            code = 0
            try:
                os.close(alive_w)
                forkserver.main(listener.fileno(), alive_r, [])
            except BaseException:  # noqa: BLE001  (its exit status says it)
                code = 1
            finally:
                os._exit(code)
        os.close(alive_r)
    server: Any = getattr(forkserver, "_forkserver")  # noqa: B009  (the module's ForkServer)
    server._forkserver_address, server._forkserver_alive_fd, server._forkserver_pid = address, alive_w, pid


class Command:
    """A forked ``byzemu`` command, with the part of :class:`subprocess.Popen` the tests use
    (``pid``, ``poll``, ``wait``, ``returncode``, ``kill``, ``terminate``)."""

    def __init__(self, process: mp.process.BaseProcess, argv: Sequence[str], log: Path, err: Path | None) -> None:
        self._process = process
        self.args = ["byzemu", *argv]
        self.log = Path(log)
        self.err = None if err is None else Path(err)

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the exit; (stdout, stderr) as it wrote them, or ``("", both)`` when they
        went to one log."""
        self.wait(timeout)

        def read(path: Path) -> str:
            return path.read_text(errors="replace") if path.exists() else ""

        return ("", read(self.log)) if self.err is None else (read(self.log), read(self.err))

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def kill(self) -> None:
        self._process.kill()

    def terminate(self) -> None:
        self._process.terminate()


def start(
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    err: Path | None = None,
    trigger: Path | None = None,
    cwd: Path | None = None,
) -> Command:
    """Fork ``byzemu ARGV`` from the worker's forkserver, output appended to ``log`` (stderr
    to ``err`` when given); a ``peer`` command forks its peers from itself. With ``trigger``
    the process is there at once but runs the command only once that file exists (a peer
    that must register within a deadline, however busy the machine)."""
    from launch.run.procs import start_forkserver

    start_forkserver()
    ctx = mp.get_context("forkserver")
    args = (
        list(argv),
        str(log),
        None if err is None else str(err),
        dict(env or {}),
        str(cwd) if cwd is not None else os.getcwd(),
        None if trigger is None else str(trigger),
    )
    process = ctx.Process(target=_command, args=args, daemon=False)
    process.start()
    return Command(process, argv, log, err)
