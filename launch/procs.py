"""Starting and stopping peer processes (kept free of heavy imports so that the
forkserver can be started before this process imports torch).

Two ways to start a local cluster's peers, both from a process that has imported torch
already, so that a peer starts in milliseconds and shares torch's pages copy-on-write:

* **forked from this process** (:func:`fork_peers`): byzemu's own commands (``byzemu
  launch``, ``byzemu sweep`` and its workers) call :func:`claim_fork_start` before they
  import torch; this process then keeps one torch thread (no OpenMP pool a fork could
  break) and, having planned the run, forks the peers itself. Each waits at a gate (a
  pipe) until the coordinator is bound and its address known. This spares the separate
  forkserver interpreter and its own torch import (about 2 CPU-seconds per run);
* **from the forkserver** (:func:`start_peers`): everywhere else (``byzemu peer``,
  :func:`launch.local.launch_local` called from a user's Python, which may have run torch
  with many threads, or from a process with other threads running).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import multiprocessing.forkserver
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Iterator

from peer.options import PeerOptions

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_PRELOAD = ["peer.preload"]
#: exit status of a process stopped by SIGINT (128 + 2, as a shell reports it)
INTERRUPTED_EXIT = 130


def _single_threaded_env() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def preload_data(cfg: object) -> None:
    """Have the forkserver load the run's dataset and evaluation set once for all peers
    (``peer/preload.py``): set before :func:`start_forkserver`. ``cfg`` is a RunConfig."""
    d = cfg.data  # type: ignore[attr-defined]
    os.environ["BYZEMU_PRELOAD_DATA"] = json.dumps({
        "dataset": d.dataset, "root": str(d.root) if d.root else "",
        "synthetic_size": d.synthetic_size, "seed": cfg.seed,  # type: ignore[attr-defined]
        "test_samples": d.test_samples, "model": cfg.model.name,  # type: ignore[attr-defined]
    })


#: set by :func:`claim_fork_start`: this process may fork its peers itself
_FORK_CLAIMED = False


def claim_fork_start() -> bool:
    """Let :func:`launch.local.launch_local` fork the peers from this process: call it
    before torch is imported here (it pins torch to one thread through the environment;
    threads started by an OpenMP pool would not survive a fork). Refused (False, the
    forkserver is used) when torch is already imported or other threads run."""
    global _FORK_CLAIMED
    import threading

    if "torch" in sys.modules or threading.active_count() > 1 or not hasattr(os, "fork"):
        return False
    _single_threaded_env()
    _FORK_CLAIMED = True
    return True


def fork_claimed() -> bool:
    """Whether :func:`claim_fork_start` succeeded in this process and it is still safe
    to fork (no thread started since)."""
    import threading

    return _FORK_CLAIMED and threading.active_count() == 1


def prepare_forkserver(cfg: object) -> None:
    """Start the forkserver for ``cfg``'s peers now: it imports torch and the peer code
    on one core while this process goes on (call it before this process imports torch:
    this module does not), and loads the run's dataset and evaluation set once for all
    peers (``peer/preload.py``). :func:`start_peers` starts it anyway if nobody did.
    ``cfg`` is a RunConfig."""
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


def peer_process(options: PeerOptions, index: int = 0) -> None:
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
    its peers at once)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if index > 0:
        _log_shared_failures_once()
    try:
        from peer.runtime import run_peer

        code = run_peer(options)
    except KeyboardInterrupt:  # a SIGINT that came before the line above
        code = INTERRUPTED_EXIT
    sys.exit(code)


#: log lines every peer of one command would print alike (first words of the message)
_SHARED_FAILURES = ("peer cannot join",)


def _log_shared_failures_once() -> None:
    import logging

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith(_SHARED_FAILURES)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Drop())


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """The first SIGINT raises KeyboardInterrupt as usual; later ones are ignored until the
    block ends, so that a second Ctrl-C cannot cut short the writing of the run's state
    (``interrupted.json``) or the stopping of its peers. Outside the main thread (where
    Python cannot set handlers) the block runs as it is."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def first(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_peers(count: int, options: PeerOptions, *, preload: bool = True) -> list[mp.process.BaseProcess]:
    """Start ``count`` peer processes with ``options``: forked from the torch-preloaded
    forkserver, or (with ``preload=False``) as plain fresh interpreters (``spawn``) for
    comparison."""
    _single_threaded_env()
    if preload:
        start_forkserver()
        ctx = mp.get_context("forkserver")
    else:
        ctx = mp.get_context("spawn")
    procs: list[mp.process.BaseProcess] = []
    with _without_main_reimport():
        try:
            for index in range(count):
                p = ctx.Process(target=peer_process, args=(options, index), daemon=False)
                p.start()
                procs.append(p)
        except BaseException:  # e.g. Ctrl-C: peers ignore SIGINT, so stop those started
            stop_peers(procs, grace=0)
            raise
    return procs


class GatedPeers:
    """Peer processes forked from this one (:func:`fork_peers`), each waiting at its gate
    for the :class:`PeerOptions` that name the coordinator."""

    def __init__(self, procs: list[mp.process.BaseProcess], gates: list[int]) -> None:
        self.procs = procs
        self._gates = gates

    def release(self, options: PeerOptions) -> None:
        """Hand every peer ``options``; from here on they run as started peers."""
        payload = pickle.dumps(options)
        record = struct.pack("!I", len(payload)) + payload
        for fd in self._gates:
            try:
                os.write(fd, record)  # a few hundred bytes into an empty pipe: never blocks
            except BrokenPipeError:  # that peer died before its start: the run notices
                pass
        self.close()

    def close(self) -> None:
        """Close the gates not yet released: those peers exit at once, starting nothing."""
        for fd in self._gates:
            os.close(fd)
        self._gates = []


def fork_peers(count: int) -> GatedPeers:
    """Fork ``count`` peer processes from this one (see :func:`claim_fork_start`); each
    waits at a gate until :meth:`GatedPeers.release`. Call it before this process opens
    sockets or files the peers should not inherit."""
    import gc

    for stream in (sys.stdout, sys.stderr):  # a child must not write our buffered output again
        stream.flush()
    ctx = mp.get_context("fork")
    procs: list[mp.process.BaseProcess] = []
    gates: list[int] = []
    gc.freeze()  # what the peers inherit: the collector would otherwise write to those shared pages
    try:
        for index in range(count):
            read_end, write_end = os.pipe()
            gates.append(write_end)
            p = ctx.Process(target=_gated_peer, args=(read_end, list(gates), index), daemon=False)
            p.start()
            os.close(read_end)
            procs.append(p)
    except BaseException:  # e.g. Ctrl-C: close the gates, so the peers started exit
        GatedPeers(procs, gates).close()
        stop_peers(procs, grace=0)
        raise
    finally:
        gc.unfreeze()
    return GatedPeers(procs, gates)


def _gated_peer(gate: int, inherited: list[int], index: int) -> None:
    """Target of a forked peer: wait at ``gate`` for the options, then run as a peer;
    exit quietly if the gate closes first (the launcher gave up before the run)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in inherited:  # the gates' write ends: held here, they would hide a launcher's death
        os.close(fd)
    header = _read_exactly(gate, 4)
    payload = _read_exactly(gate, struct.unpack("!I", header)[0]) if len(header) == 4 else b""
    os.close(gate)
    if not payload:
        sys.exit(0)
    peer_process(pickle.loads(payload), index)


def _read_exactly(fd: int, n: int) -> bytes:
    """``n`` bytes from ``fd``, or fewer if it reaches end of file first."""
    parts: list[bytes] = []
    while n > 0:
        chunk = os.read(fd, n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


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
