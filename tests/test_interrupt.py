"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) of a real `byzemu
launch` and a real `byzemu sweep`: only a finished run has a summary.json, an interrupted
one keeps its rounds and says in interrupted.json how to go on, the sweep's rerun goes on
with it instead of skipping it, report flags it, and the terminal gets one line, not a
traceback per peer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from launch.cli import main
from tests.support import BYZEMU, commands
from tests.support.harness import read_rounds
from tests.support.runs import small_config
from tests.support.waiting import output, running, wait_until


def config(rounds: int, stragglers: dict[str, Any] | None = None) -> str:
    return small_config(
        "interrupt",
        seed=5,
        rounds=rounds,
        train={"local_steps": 2},
        runtime={"register_timeout": 120.0, "round_timeout": 120.0, "chunk_timeout": 60.0, "checkpoint_every": 1},
        stragglers=stragglers,
    )


#: generous: every wait below ends on an event (a round on disk, the process exiting)
WAIT_S = 480.0


def _interrupt_after_first_round(argv: list[str], run_dir: Path, logs: Path) -> tuple[int, str, str]:
    """Start ``byzemu ARGV`` in its own process group (``tests/support/commands.py``), wait
    for round 1 in ``run_dir``, send SIGINT to the group (what Ctrl-C does), return
    (status, stdout, stderr)."""
    proc = commands.start(argv, logs / "stdout.log", err=logs / "stderr.log")
    try:
        wait_until(
            lambda: read_rounds(run_dir), timeout=WAIT_S, what="round 1", alive=running(proc), details=output(proc)
        )
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.wait(), stdout, stderr


@pytest.mark.cluster
def test_interrupted_launch_writes_no_summary_and_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(config(200))
    out = tmp_path / "run"

    code, _, stderr = _interrupt_after_first_round(["launch", str(cfg), "--out", str(out), "--quiet"], out, tmp_path)

    assert code == 130, stderr
    assert not (out / "summary.json").exists()
    state = json.loads((out / "interrupted.json").read_text())
    assert 1 <= state["rounds_completed"] < 200 and state["rounds"] == 200
    assert state["reason"] == "interrupted (SIGINT)"
    assert state["resume"] == f"byzemu launch --resume {out}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # not one KeyboardInterrupt traceback per peer
    assert lines[0].startswith("interrupted: stopped at round ") and f"byzemu launch --resume {out}" in lines[0]


SWEEP_ROUNDS = 20
SWEEP = """\
base = "base.toml"
repeats = 2
"""


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    # The SIGINT must land while rep0 runs: after its round 1 is on disk and before its
    # round 20. A round of this run computes for ~2 ms (20 rounds in 0.4 s), too short a
    # window for a test process starved by a loaded machine (it failed so); every peer
    # straggles 25-fold (peer/stragglers.py: it sleeps after training until 25 times its
    # training time has passed, every number it computes unchanged), ~0.1 s a round, ~2 s
    # for the window, a window that widens as load slows the training it is a multiple of.
    (tmp_path / "base.toml").write_text(config(SWEEP_ROUNDS, stragglers={"factor": 25.0, "fraction": 1.0}))
    (tmp_path / "grid.toml").write_text(SWEEP)
    return tmp_path


@pytest.mark.cluster
def test_interrupted_sweep_run_is_unfinished_and_the_rerun_completes_it(sweep_dir: Path) -> None:
    out = sweep_dir / "out"
    argv = ["sweep", str(sweep_dir / "grid.toml"), "--out", str(out), "--jobs", "1"]

    code, _, stderr = _interrupt_after_first_round(argv, out / "base" / "rep0", sweep_dir)
    report = subprocess.run([BYZEMU, "report", str(out)], capture_output=True, text=True, timeout=WAIT_S)
    rerun = CliRunner().invoke(main, argv)  # the same command, in this process: its runs are real clusters

    assert code == 130, stderr
    assert stderr.strip().splitlines() == [
        "interrupted: sweep stopped; 0/2 runs finished and kept; interrupted: base/rep0 (kept as unfinished, "
        "with interrupted.json); rerun the same command to go on"
    ]
    assert report.returncode == 2, report.stderr  # nothing finished yet: no table to make
    assert "base/rep0: interrupted at round" in report.stderr
    assert rerun.exit_code == 0, rerun.output
    assert "runs already done" not in rerun.stdout  # rep0 is not skipped
    assert "base/rep0: unfinished, interrupted at round" in rerun.stdout
    assert "going on from its round-" in rerun.stdout
    summary = json.loads((out / "base" / "rep0" / "summary.json").read_text())
    assert summary["rounds_completed"] == SWEEP_ROUNDS
    assert not (out / "base" / "rep0" / "interrupted.json").exists()
    assert json.loads((out / "base" / "rep1" / "summary.json").read_text())["rounds_completed"] == SWEEP_ROUNDS


@pytest.mark.cluster
def test_sigint_to_a_parallel_sweep_alone_stops_it_without_starting_a_queued_run(tmp_path: Path) -> None:
    # --jobs 2 with 3 runs: the pool has already queued rep2 for the first free worker.
    # SIGINT to the sweep process only (`kill -INT`, not the group): both running runs are
    # stopped, rep2 never starts, and the sweep exits instead of waiting for it.
    # 2000 rounds: on a loaded machine one run could finish 40 rounds before the other's
    # first, and the test would see a finished run; it is interrupted long before 2000
    (tmp_path / "base.toml").write_text(config(2000))
    (tmp_path / "grid.toml").write_text('base = "base.toml"\nrepeats = 3\n')
    out = tmp_path / "out"
    argv = ["sweep", str(tmp_path / "grid.toml"), "--out", str(out), "--jobs", "2"]
    proc = commands.start(argv, tmp_path / "stdout.log", err=tmp_path / "stderr.log")
    try:
        wait_until(
            lambda: all(read_rounds(out / "base" / f"rep{i}") for i in (0, 1)),
            timeout=WAIT_S,
            what="round 1 of rep0 and rep1",
            alive=running(proc),
            details=output(proc),
        )
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    assert proc.returncode == 130, stderr
    # one line besides the sweep's progress lines ("[0/3 done] running: ..."): a peer told
    # to stop does not log its neighbours' closed connections
    # (peer/runtime.py, PeerRuntime._take_queued_control)
    assert [line for line in stderr.strip().splitlines() if not line.startswith("[0/3 done] running: ")] == [
        (
            "interrupted: sweep stopped; 0/3 runs finished and kept; interrupted: base/rep0, base/rep1 (kept as "
            "unfinished, with interrupted.json); rerun the same command to go on"
        )
    ]
    assert not (out / "base" / "rep2").exists()
    for i in (0, 1):
        assert (out / "base" / f"rep{i}" / "interrupted.json").exists()
        assert len(read_rounds(out / "base" / f"rep{i}")) < 2000


def test_a_sigint_inside_a_peer_start_is_held_until_the_peer_is_recorded() -> None:
    """start_peers starts each peer inside launch.run.procs.sigint_deferred: a Ctrl-C that
    lands after the fork and before the peer is appended to the list stop_peers reads
    (it did, under load: a sweep interrupted while starting left one peer per run
    running until its assignment timeout) is acted on once the block ends."""
    from launch.run.procs import interrupt_once, sigint_deferred

    before = signal.getsignal(signal.SIGINT)
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt), interrupt_once():
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("started")  # the handler ran nowhere in between
            steps.append("recorded")
        steps.append("not reached")
    assert steps == ["started", "recorded"]
    assert signal.getsignal(signal.SIGINT) is before
    with sigint_deferred():  # no SIGINT: nothing raised, handler restored
        steps.append("quiet")
    assert steps[-1] == "quiet" and signal.getsignal(signal.SIGINT) is before


def test_a_sigint_that_lands_in_a_destructor_is_delivered_again(capfd: pytest.CaptureFixture[str]) -> None:
    """The KeyboardInterrupt of a Ctrl-C that arrives while a destructor runs (pyzmq's
    ``Frame.__dealloc__``: a sweep under load printed "Exception ignored" and went on to
    finish, exit status 0) cannot propagate; inside interrupt_once it is delivered again
    once the destructor has returned, and nothing is printed."""
    from launch.run.procs import interrupt_once

    class Freed:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs in this method
            sum(range(1000))

    steps: list[str] = []
    before = (signal.getsignal(signal.SIGINT), sys.unraisablehook)
    with pytest.raises(KeyboardInterrupt), interrupt_once():
        freed = Freed()
        del freed
        steps.append("destructor returned")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the interrupt lands here
            pass
        steps.append("not reached")
    assert steps == ["destructor returned"]
    assert (signal.getsignal(signal.SIGINT), sys.unraisablehook) == before
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_closed_peer_runtime_leaves_its_data_sockets_open_for_the_process_exit() -> None:
    """Every peer stops at once; a data DEALER closed (LINGER 0) while its connection is
    part-way through a chunk message and the neighbour's end closes aborts the process in
    libzmq ("Resource temporarily unavailable (src/session_base.cpp:233)", once in a
    Ctrl-C'd launch under load; bench/interrupt_abort.py). So PeerRuntime.close leaves the
    data sockets to the process's exit, and dropping the runtime (``run_peer`` returning)
    must not close them through pyzmq's ``__del__`` either."""
    import gc
    import weakref

    from peer.options import PeerOptions
    from peer.runtime import PeerRuntime

    rt = PeerRuntime(PeerOptions(coordinator="tcp://127.0.0.1:9"))
    rt.data.connect(0, {1: "tcp://127.0.0.1:9"}, [1])
    data = [weakref.ref(s) for s in (rt.data.sock, rt.data.out[1], rt.ctx)]
    control, control_ctx = rt.control.sock, rt.control_ctx

    rt.close()
    del rt
    gc.collect()

    left = [ref() for ref in data]  # the data ROUTER, the DEALER, their context
    assert [s is not None and not s.closed for s in left] == [True, True, True]
    assert control.closed and control_ctx.closed  # the control channel is closed as before
