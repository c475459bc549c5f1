"""Stress check: Ctrl-C a real ``byzemu launch`` N times and count libzmq assertion aborts.

Each try writes the run of ``tests/test_interrupt.py`` (4 peers on a ring, logistic
regression, 200 rounds; ``--nodes``, ``--topology`` and ``--model`` change it), starts
``byzemu launch`` in its own process group, waits for round 1 in the run folder, sends
SIGINT to the group (what Ctrl-C does) and reads the launch's stderr. A line such as
``Resource temporarily unavailable (src/session_base.cpp:233)`` is libzmq's failed
assertion; the process that printed it aborted. With ``--faulthandler`` every process
also prints its Python stacks when it aborts, which names the process and the call it
was in. Run it with the cores busy to shake out the race, e.g. six busy loops beside it
(and kill them afterwards)::

    for k in $(seq 6); do timeout 900 python3 -c "while True: pass" & done
    .venv/bin/python bench/interrupt_abort.py 40 --nodes 8 --topology complete --model mlp

``--socket-level close|leave`` runs the libzmq race alone, without byzemu: a DEALER
(LINGER 0) stalled part-way through a multi-frame message is closed, or left to
``os._exit``, within 2 ms of its receiver's exit.

The data sockets were meant to be left to the process's exit (``PeerRuntime.close``), but
the garbage collector closed them when ``run_peer`` returned (pyzmq's ``Context.__del__``
destroys its sockets; ``-W always::ResourceWarning`` shows "Unclosed socket"). With six
busy loops on the 2 cores (load average 30-45), before the runtime held them to the exit:
``60 --nodes 8 --topology complete --model mlp --faulthandler``: 1/60 tries aborted, in a
peer, in ``Context.__del__`` -> ``destroy`` -> ``term`` under ``peer_process``;
``--socket-level close``: 7/200, ``leave``: 0/200 (the fix's way). After, same loop and
load: 0/60 tries aborted. One hit in 60 makes the launch loop a slow witness; the
stack above, the socket-level counts and the regression test in tests/test_interrupt.py
(the data sockets outlive ``run_peer``) carry the evidence.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.harness import read_rounds  # noqa: E402
from tests.support.runs import small_config  # noqa: E402

BYZEMU = str(Path(sys.executable).parent / "byzemu")
#: libzmq's zmq_assert / errno_assert line: "<text> (src/<file>.cpp:<line>)"
ASSERTION = re.compile(r"\(src/[\w/]+\.\w+:\d+\)")
WAIT_S = 300.0


def config(nodes: int, topology: str, model: str) -> str:
    return small_config(
        "interrupt",
        seed=5,
        nodes=nodes,
        rounds=200,
        topology={"kind": topology},
        model={"name": model},
        train={"local_steps": 2},
        runtime={"register_timeout": 120.0, "round_timeout": 120.0, "chunk_timeout": 60.0, "checkpoint_every": 1},
    )


def one_try(cfg: Path, out: Path, env: dict[str, str]) -> tuple[int, str]:
    """Launch, SIGINT the group after round 1; (exit status, stderr)."""
    proc = subprocess.Popen(
        [BYZEMU, "launch", str(cfg), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not read_rounds(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stderr


#: a data frame larger than the sender's and receiver's socket buffers together
_FRAME = b"x" * 65536


def _receiver(ports: Queue, at: Synchronized) -> None:
    """A data ROUTER that reads nothing (its queue holds one message) and exits at ``at``."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 4096)
    ports.put(sock.bind_to_random_port("tcp://127.0.0.1"))
    while time.monotonic() < at.value:
        time.sleep(0.0002)
    os._exit(0)


def _sender(port: int, at: Synchronized, close: bool) -> None:
    """A data DEALER (LINGER 0) stalled part-way through a multi-frame message; at ``at``
    it is closed with its context (``close``, what the garbage collector did) or left to
    ``os._exit`` (what a peer does)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDBUF, 4096)
    sock.connect(f"tcp://127.0.0.1:{port}")
    for _ in range(50):
        try:
            sock.send_multipart([b"header", _FRAME, _FRAME, _FRAME], flags=zmq.NOBLOCK)
        except zmq.Again:
            break
    while time.monotonic() < at.value:
        time.sleep(0.0002)
    if close:
        sock.close(linger=0)
        ctx.term()
    time.sleep(0.05)  # the I/O thread's time to meet the closed connection
    os._exit(0)


def socket_level(tries: int, close: bool) -> None:
    """The libzmq race alone: a receiver exits within 2 ms of the moment its sender, stalled
    mid-message, is closed or left; count the senders that abort."""
    mp_ctx = mp.get_context("fork")
    aborted = 0
    for i in range(tries):
        ports: Queue = mp_ctx.Queue()
        t_recv, t_send = mp_ctx.Value("d", 1e18), mp_ctx.Value("d", 1e18)
        receiver = mp_ctx.Process(target=_receiver, args=(ports, t_recv))
        receiver.start()
        sender = mp_ctx.Process(target=_sender, args=(ports.get(timeout=60), t_send, close))
        sender.start()
        time.sleep(0.3)  # the sender's queue and both socket buffers fill
        at = time.monotonic() + 0.05
        t_send.value, t_recv.value = at, at + random.uniform(-0.002, 0.002)
        sender.join(30)
        receiver.join(30)
        if sender.exitcode != 0:
            aborted += 1
            print(f"try {i + 1}: sender exit status {sender.exitcode}", flush=True)
    print(f"{aborted}/{tries} senders aborted ({'closed' if close else 'left to os._exit'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tries", type=int)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--topology", default="ring")
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--faulthandler", action="store_true", help="Python stacks of a process that aborts")
    ap.add_argument(
        "--socket-level",
        choices=["close", "leave"],
        help="no byzemu: the libzmq race alone, the sender's socket closed or left",
    )
    args = ap.parse_args()
    if args.socket_level:
        socket_level(args.tries, args.socket_level == "close")
        return
    env = dict(os.environ)
    if args.faulthandler:
        env["PYTHONFAULTHANDLER"] = "1"
    aborted = other = 0
    with tempfile.TemporaryDirectory(prefix="byzemu-interrupt-") as tmp:
        cfg = Path(tmp) / "run.toml"
        cfg.write_text(config(args.nodes, args.topology, args.model))
        for i in range(args.tries):
            t0 = time.monotonic()
            code, stderr = one_try(cfg, Path(tmp) / f"run{i}", env)
            lines = stderr.strip().splitlines()
            hits = [line for line in lines if ASSERTION.search(line)]
            aborted += bool(hits)
            other += code != 130 or (not hits and len(lines) != 1)
            print(
                f"try {i + 1}: exit {code}, {len(lines)} stderr lines, {len(hits)} assertion(s), "
                f"{time.monotonic() - t0:.1f} s",
                flush=True,
            )
            if hits or (len(lines) != 1 and not args.faulthandler):
                print("  " + "\n  ".join(lines[-60:]), flush=True)
    print(f"{aborted}/{args.tries} tries with a libzmq assertion; {other} other failures")


if __name__ == "__main__":
    main()
