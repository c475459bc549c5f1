"""The coordinator killed mid-run, and `byzemu launch --resume` (real processes, real
signals): peers notice and exit on their own, rounds.jsonl keeps every completed round,
and the resumed run ends bit-identical to an uninterrupted one. Also: a restarted peer
that registers again is refused, and bad --resume folders give one error line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from launch.cli import main
from launch.run.reference import run_reference
from protocol import config as config_mod
from tests.support import commands
from tests.support.harness import Cluster, read_rounds, write_config
from tests.support.runs import small_config
from tests.support.waiting import output, running, wait_until
from tests.support.warm import warm_peer

#: seconds within which every peer must be gone after the coordinator is killed:
#: runtime.coordinator_timeout (2 s) plus the round in progress, on a loaded machine
EXIT_BOUND_S = 60.0

#: generous bound for every event waited on below (a round on disk, a process ready or gone)
WAIT_S = 240.0


def _config(tmp_path: Path, rounds: int = 8, round_timeout: float = 60.0, chunk_timeout: float = 30.0) -> Path:
    path = tmp_path / "resume.toml"
    path.write_text(
        small_config(
            "resume",
            seed=3,
            rounds=rounds,
            data={"synthetic_size": 400},
            model={"name": "lenet"},
            train={"local_steps": 3, "momentum": 0.9},
            chunks={"count": 4, "per_neighbor": 2},
            byzantine={"count": 1, "attack": "gaussian", "params": {"sigma": 0.5}},
            eval={"every": 3},
            runtime={
                "register_timeout": 60.0,
                "round_timeout": round_timeout,
                "chunk_timeout": chunk_timeout,
                "checkpoint_every": 2,
                "coordinator_timeout": 2.0,
            },
        )
    )
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _group_alive(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


@pytest.mark.cluster
def test_killed_coordinator_peers_exit_and_resume_is_bit_identical(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    out = tmp_path / "run"
    launcher = commands.start(
        ["launch", str(cfg), "--out", str(out), "--quiet"], tmp_path / "stdout.log", err=tmp_path / "stderr.log"
    )
    try:
        wait_until(
            lambda: len(read_rounds(out)) >= 3,  # past the round-2 checkpoint
            timeout=WAIT_S,
            what="round 3",
            alive=running(launcher),
            details=output(launcher),
        )
        peer_pids = {n["pid"] for n in json.loads((out / "topology.json").read_text())["nodes"]}
        os.kill(launcher.pid, signal.SIGKILL)  # the coordinator only: its peers live on
        launcher.wait(WAIT_S)
        killed_at = time.monotonic()
        with contextlib.suppress(TimeoutError):  # the asserts below say what is left
            wait_until(
                lambda: not _group_alive(launcher.pid), timeout=EXIT_BOUND_S, what="the peers' exit", interval=0.05
            )
        left = _group_alive(launcher.pid)
        gone_after = time.monotonic() - killed_at
        _, stderr = launcher.communicate(timeout=WAIT_S)  # what the launcher and its peers wrote
    finally:
        for pid in _group_alive(launcher.pid):  # only on failure: leave nothing behind
            os.kill(pid, signal.SIGKILL)

    assert not left, f"still running {gone_after:.1f} s after the coordinator died: {left}"
    assert not peer_pids & set(left)
    assert stderr.count("lost the coordinator") == 4, stderr
    kept = _lines(out / "rounds.jsonl")
    records = [json.loads(line) for line in kept]  # every line whole JSON
    assert [r["round"] for r in records] == list(range(1, len(records) + 1))
    assert 3 <= len(records) < 8
    assert not (out / "summary.json").exists()
    last_complete = max(r["round"] for r in records if r.get("checkpoint", {}).get("complete"))

    # in-process: no second torch import
    resumed = CliRunner().invoke(main, ["launch", "--resume", str(out), "--quiet"])
    reference = tmp_path / "ref"
    run_reference(config_mod.load(cfg), reference)

    assert resumed.exit_code == 0, resumed.output
    assert resumed.stderr.splitlines()[0] == (  # it says which checkpoint it goes on from
        f"resuming {out} from its round-{last_complete} checkpoint ({out / 'checkpoints'}): "
        f"rounds 1-{last_complete} kept, rounds {last_complete + 1}-8 to run"
    ), resumed.stderr
    final = _lines(out / "rounds.jsonl")
    assert final[:last_complete] == kept[:last_complete]  # recorded rounds up to the checkpoint stay
    got = [json.loads(line) for line in final]
    want = read_rounds(reference)
    assert [r["round"] for r in got] == list(range(1, 9))
    for g, w in zip(got, want):
        for node in map(str, range(4)):
            assert g["peers"][node]["status"] == "ok"
            # digest = SHA-256 of the float32 parameters: equal digests, equal models
            assert g["peers"][node]["metrics"] == w["peers"][node]["metrics"], (g["round"], node)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_after"] == last_complete
    assert summary["rounds_completed"] == 8
    assert summary["final_accuracy"] == json.loads((reference / "summary.json").read_text())["final_accuracy"]


def _resume_error(run_dir: Path, *extra: str) -> Result:
    """``byzemu launch ... --resume RUN_DIR`` through the click entry point in this process
    (the error comes before any process starts; tests/test_cli_errors.py runs the console
    script itself)."""
    return CliRunner().invoke(main, ["launch", *extra, "--resume", str(run_dir), "--quiet"])


def test_resume_of_a_bad_folder_is_one_error_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    record = {"round": 1, "peers": {}, "honest": {}, "failed": []}
    no_ckpt = tmp_path / "no-ckpt"
    no_ckpt.mkdir()
    (no_ckpt / "config.toml").write_text(cfg.read_text())
    (no_ckpt / "rounds.jsonl").write_text(json.dumps(record) + "\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text(cfg.read_text())
    stamped = {**record, "checkpoint": {"complete": True, "nodes": [0, 1, 2, 3], "config": "0" * 16}}
    (other / "rounds.jsonl").write_text(json.dumps(stamped) + "\n")
    different = write_config(tmp_path, cfg.read_text().replace("seed = 3", "seed = 4"), "seed4.toml")

    cases = {
        "no such results folder": _resume_error(tmp_path / "missing"),
        "no round has a complete checkpoint": _resume_error(no_ckpt),
        "config mismatch: its checkpoints were written under": _resume_error(other),
        "config mismatch: ": _resume_error(no_ckpt, str(different)),
        "only runtime.* fields may change": _resume_error(no_ckpt, "--set", "seed=9"),
    }

    for expected, result in cases.items():
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (expected, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (expected, result.stderr)


@pytest.mark.cluster
def test_restarted_peer_is_refused_and_run_goes_on(tmp_path: Path) -> None:
    # no liveness probe in a multi-host run: the coordinator waits out round_timeout for the
    # killed peer, and its restart (already warm: tests/support/warm.py) registers meanwhile
    cfg = _config(tmp_path, rounds=4, round_timeout=6.0, chunk_timeout=1.0)
    run_dir = tmp_path / "run"
    with Cluster(cfg, run_dir, peers=4) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        with warm_peer(tmp_path, cluster.address) as (restart, trigger):
            cluster.start_peers()
            wait_until(
                lambda: read_rounds(run_dir), timeout=WAIT_S, what="round 1", alive=cluster.alive, details=cluster.logs
            )
            nodes = json.loads((run_dir / "topology.json").read_text())["nodes"]
            os.kill(next(n["pid"] for n in nodes if n["id"] == 1), signal.SIGKILL)
            trigger.touch()  # the same command that started it, once more
            _, restart_err = restart.communicate(timeout=WAIT_S)
            codes = cluster.wait(WAIT_S)
            logs = cluster.logs()

    assert restart.returncode == 1, restart_err
    assert "registration refused: the run is in progress" in restart_err
    assert codes[0] == 0, logs
    rounds = read_rounds(run_dir)
    assert [r["round"] for r in rounds] == list(range(1, 5))
    refused = [e for r in rounds for e in r.get("refused_registrations", [])]
    assert len(refused) == 1 and refused[0]["round"] >= 1
    assert rounds[-1]["peers"]["1"]["status"] == "failed"
    assert all(rounds[-1]["peers"][n]["status"] == "ok" for n in ("0", "2", "3"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed_peers"] == [1] and summary["refused_registrations"] == refused
