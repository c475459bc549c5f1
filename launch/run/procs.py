"""Starting and stopping peer processes (kept free of heavy imports so that the
forkserver can be started before this process imports torch)."""

from __future__ import annotations

import _thread
import contextlib
import json
import logging
import multiprocessing as mp
import multiprocessing.forkserver
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from peer.options import PeerOptions

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PRELOAD = ["peer.preload"]
#: how :func:`start_peers` starts peers: ``"forkserver"`` (from the torch-preloaded
#: forkserver) or ``"fork"`` (straight from this process: only for a process that has
#: imported torch and the peer code already and runs no other thread, such as the test
#: suite's commands, themselves forked from its forkserver: ``tests/support/commands.py``)
PEERS_START = "forkserver"
#: exit status of a process stopped by SIGINT (128 + 2, as a shell reports it)
INTERRUPTED_EXIT = 130


def _single_threaded_env() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def preload_data(cfg: object) -> None:
    """Have the forkserver load the run's dataset and evaluation set once for all peers
    (``peer/preload.py``): set before :func:`start_forkserver`. ``cfg`` is a RunConfig."""
    d = cfg.data  # type: ignore[attr-defined]
    os.environ["BYZEMU_PRELOAD_DATA"] = json.dumps(
        {
            "dataset": d.dataset,
            "root": str(d.root) if d.root else "",
            "synthetic_size": d.synthetic_size,
            "seed": cfg.seed,  # type: ignore[attr-defined]
            "test_samples": d.test_samples,
            "model": cfg.model.name,  # type: ignore[attr-defined]
        }
    )


def prepare_forkserver(cfg: object) -> None:
    """Start the forkserver for ``cfg``'s peers now: it imports torch and the peer code
    on one core while this process goes on (call it before this process imports torch;
    this module does not import it), and loads the run's dataset and evaluation set once
    for all peers (``peer/preload.py``). :func:`start_peers` starts it anyway if nobody
    did. ``cfg`` is a RunConfig."""
    preload_data(cfg)
    start_forkserver()


def start_forkserver() -> None:
    """Start the forkserver now; it imports torch (``peer.preload``) while we go on."""
    _single_threaded_env()
    mp.get_context("forkserver").set_forkserver_preload(_PRELOAD)
    multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def _without_main_reimport() -> Iterator[None]:
    """Stop children from re-running the parent's ``__main__`` (a script, ``-c`` or stdin):
    the peer entry point lives in an importable module, so they never need it."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__.pop(k) for k in ("__file__",) if main and k in main.__dict__}
    spec = getattr(main, "__spec__", None)
    if main is not None:
        main.__spec__ = None
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
            main.__spec__ = spec


def peer_process(options: PeerOptions, index: int = 0, *extra: Any) -> None:
    """Target of each forked peer process (``index``: its place among the peers this
    command started).

    A failure every peer of one command meets alike (the coordinator's CURVE key missing
    or wrong) is logged by the first of them only, so the terminal shows one line, not
    one per peer.

    Ctrl-C in a terminal sends SIGINT to every process of its group, so to each peer as
    well as to the launcher. Peers ignore it: a KeyboardInterrupt raised at an arbitrary
    point (inside a zmq call, a ``__del__``) would print a traceback per peer. The
    launcher alone handles it: it sends ``stop`` (peers exit quietly), terminates any peer
    still running after a grace period, and says what was kept (``byzemu peer`` terminates
    its peers at once).

    The process ends in ``os._exit``, as a forkserver's child does anyway: a ``spawn``
    child would otherwise finalize its interpreter, and pyzmq's ``__del__`` would close
    the data sockets the peer leaves to the process's exit (``PeerRuntime.close``).

    ``extra``: a runtime factory (``PeerOptions -> PeerRuntime``) to run instead of the
    plain one, for :func:`start_peers`'s ``runtime``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if options.netns is not None:  # before any socket: its namespace is this thread's
        from launch.net.namespaces import enter

        enter(options.netns)
    if index > 0:
        _log_shared_failures_once()
    try:
        from peer.runtime import run_peer

        code = run_peer(options, *extra)
    except KeyboardInterrupt:  # a SIGINT that came before the line above
        code = INTERRUPTED_EXIT
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


#: log lines every peer of one command would print alike (first words of the message)
_SHARED_FAILURES = ("peer cannot join",)


def _log_shared_failures_once() -> None:
    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith(_SHARED_FAILURES)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Drop())


def _interrupt_main_soon() -> None:
    time.sleep(0.005)
    _thread.interrupt_main(signal.SIGINT)


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """The first SIGINT raises KeyboardInterrupt as usual; later ones are ignored until the
    block ends, so that a second Ctrl-C cannot cut short the writing of the run's state
    (``interrupted.json``) or the stopping of its peers. Outside the main thread (where
    Python cannot set handlers) the block runs as it is.

    A KeyboardInterrupt raised while a destructor runs (pyzmq's ``Frame.__dealloc__`` when a
    received message is freed) cannot propagate: Python prints it as "Exception ignored"
    and goes on, and the Ctrl-C would be lost. Inside the block such an interrupt is not
    printed but delivered again, once the destructor has returned (``sys.unraisablehook``,
    ``_thread.interrupt_main`` from another thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    previous_hook = sys.unraisablehook

    def first(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            # not from here: the handler would run before this hook returns, in the
            # destructor still; another thread's interrupt_main, a moment later, lands after
            signal.signal(signal.SIGINT, first)
            _thread.start_new_thread(_interrupt_main_soon, ())
            return
        previous_hook(info)

    signal.signal(signal.SIGINT, first)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a SIGINT that arrives inside the block and act on it (with the handler that
    was in force) when the block ends, so that the block runs to its end. Outside the
    main thread (where Python delivers no signals) the block runs as it is."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


def start_peers(
    count: int,
    options: PeerOptions | list[PeerOptions],
    *,
    preload: bool = True,
    runtime: Callable[..., Any] | None = None,
) -> list[mp.process.BaseProcess]:
    """Start ``count`` peer processes with ``options`` (one for all, or one per peer):
    forked from the torch-preloaded forkserver, or (with ``preload=False``) as plain
    fresh interpreters (``spawn``) for comparison. ``runtime`` (picklable: a module-level
    class or a partial of one) builds each process's runtime instead of ``PeerRuntime``."""
    each = options if isinstance(options, list) else [options] * count
    _single_threaded_env()
    ctx: mp.context.BaseContext
    if preload and PEERS_START == "fork":
        ctx = mp.get_context("fork")
    elif preload:
        start_forkserver()
        ctx = mp.get_context("forkserver")
    else:
        ctx = mp.get_context("spawn")
    procs: list[mp.process.BaseProcess] = []
    with _without_main_reimport():
        try:
            for index in range(count):
                extra = () if runtime is None else (runtime,)
                p = ctx.Process(target=peer_process, args=(each[index], index, *extra), daemon=False)
                # A Ctrl-C inside start() could land after the fork and before the
                # append: that peer would be left running, unknown to stop_peers.
                with sigint_deferred():
                    p.start()
                    procs.append(p)
        except BaseException:  # e.g. Ctrl-C: peers ignore SIGINT, so stop those started
            stop_peers(procs, grace=0)
            raise
    return procs


def stop_peers(procs: list[mp.process.BaseProcess], *, grace: float = 10.0) -> None:
    """Wait up to ``grace`` seconds for peers to exit, then terminate, then kill."""
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join()
