"""Start-up time, CPU and memory of a local cluster: preloaded forkserver vs plain spawn.

For each peer count the quickstart experiment (MNIST + LeNet, 3-regular graph) is started
as a subprocess and timed from the moment the command is started:

* ``config``: the results folder's ``config.toml`` is written (the launcher has imported
  its modules, loaded the config and built the plan);
* ``registered``: ``topology.json`` is written (every peer process started, connected
  and registered; the coordinator has sent the assignments);
* ``round 1``: round 1 starts (= the time ``rounds.jsonl``'s first line appears, polled
  every 5 ms, minus that round's ``round_s``): every peer has loaded its data, built its
  model and answered ``ready``.

Memory: while round 2 runs, the proportional set size (PSS, ``/proc/PID/smaps_rollup``:
private pages plus each shared page divided by the processes sharing it) of every peer,
of the forkserver and of the launcher.

``forkserver`` is ``byzemu launch`` itself (peers forked from a server that preloaded
torch, the peer code and the run's data, started before the launcher imports torch);
``spawn`` runs the same launcher with ``launch_local(preload=False)``: every peer a fresh
interpreter that imports everything. ``launch_cpu_s`` is the CPU time the whole machine
spent busy while the command ran (``/proc/stat``): meaningful on an otherwise idle machine.

    .venv/bin/python bench/startup.py [--nodes 16,64] [--modes forkserver,spawn]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BYZEMU,
    PYTHON,
    QUICKSTART,
    code_root,
    cpu_jiffies,
    mean,
    mem_available_mib,
    ppid,
    save,
    sets,
    smaps_rollup,
    table,
    warn_if_busy,
)


def child_spawn(config: str, out: str, overrides: list[str]) -> None:
    """``byzemu launch`` with peers started by ``spawn`` (no preloaded forkserver)."""
    from launch.run.local import launch_local
    from protocol import config as config_mod

    cfg = config_mod.load(config, tuple(v for v in overrides if v != "--set"))
    launch_local(cfg, Path(out), show_progress=False, preload=False)


def _busy_jiffies() -> int:
    """CPU time the whole machine has spent busy, in clock ticks (all but idle and iowait)."""
    total, idle = cpu_jiffies()
    return total - idle


def _mtime(path: Path) -> float:
    """When ``path`` (a file of a finished run) was last written, in seconds."""
    return path.stat().st_mtime_ns / 1e9


def one_run(mode: str, nodes: int, out: Path, rounds: int) -> dict[str, Any]:
    overrides = {"nodes": nodes, "rounds": rounds, "eval.every": rounds}
    if mode == "forkserver":
        cmd = [BYZEMU, "launch", str(QUICKSTART), *sets(overrides), "--out", str(out), "--quiet"]
    else:
        cmd = [PYTHON, str(Path(__file__).resolve()), "--child-spawn", str(QUICKSTART), str(out), *sets(overrides)]
    busy0 = _busy_jiffies()
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=code_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rounds_file = out / "rounds.jsonl"
    first_line_at: float | None = None
    memory: dict[str, Any] | None = None
    while proc.poll() is None:
        if first_line_at is None and rounds_file.exists() and rounds_file.stat().st_size > 0:
            first_line_at = time.time()
        if first_line_at is not None and memory is None:
            memory = _memory(out, proc.pid)  # round 2 is running
        time.sleep(0.005)
    stdout, stderr = proc.communicate()
    launch_cpu_s = (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    command_s = time.time() - t0
    first = json.loads(rounds_file.read_text().splitlines()[0])
    assert first_line_at is not None and memory is not None
    return {
        "mode": mode,
        "nodes": nodes,
        "config_s": _mtime(out / "config.toml") - t0,
        "registered_s": _mtime(out / "topology.json") - t0,
        "round1_s": first_line_at - first["round_s"] - t0,
        "command_s": command_s,
        "launch_cpu_s": launch_cpu_s,
        "failed_peers": json.loads((out / "summary.json").read_text()).get("failed_peers"),
        **memory,
    }


def _memory(out: Path, launcher: int) -> dict[str, Any]:
    topo = json.loads((out / "topology.json").read_text())
    pids = [p["pid"] for p in _peers(topo)]
    peers, alive = [], []
    for pid in pids:
        try:
            peers.append(smaps_rollup(pid))
            alive.append(pid)
        except (FileNotFoundError, ProcessLookupError):  # exited (a failed peer)
            pass
    try:
        server = ppid(alive[0]) if alive else -1
    except (FileNotFoundError, ProcessLookupError):
        server = -1
    extra = {}
    for name, pid in (("forkserver", server), ("launcher", launcher)):
        if pid != launcher or name == "launcher":
            try:
                extra[f"{name}_pss_mib"] = smaps_rollup(pid)["Pss"] / 1024
            except (FileNotFoundError, ProcessLookupError):
                pass
    return {
        "peer_pss_mib": mean(p["Pss"] / 1024 for p in peers),
        "peer_pss_max_mib": max(p["Pss"] / 1024 for p in peers),
        "peer_rss_mib": mean(p["Rss"] / 1024 for p in peers),
        "peer_private_mib": mean((p["Private_Clean"] + p["Private_Dirty"]) / 1024 for p in peers),
        "peers_sampled": len(peers),
        "peers_missing": sorted(set(pids) - set(alive)),
        "total_pss_mib": sum(p["Pss"] for p in peers) / 1024 + sum(extra.values()),
        **extra,
    }


def _peers(topo: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = topo.get("nodes") or topo.get("peers") or []
    if isinstance(nodes, dict):
        nodes = list(nodes.values())
    return [n for n in nodes if isinstance(n, dict) and "pid" in n]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-spawn":
        child_spawn(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="16,64")
    ap.add_argument("--modes", default="forkserver,spawn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    info = warn_if_busy()
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    try:
        for nodes in (int(n) for n in args.nodes.split(",")):
            for mode in args.modes.split(","):
                prev = [r for r in runs if r["mode"] == mode]
                if prev:  # would it fit? (spawned peers hold ~0.5 GiB each)
                    need, avail = prev[-1]["peer_pss_max_mib"] * 1.2 * nodes, mem_available_mib()
                    if need > 0.8 * avail:
                        skipped.append({"mode": mode, "nodes": nodes, "need_mib": need, "available_mib": avail})
                        print(
                            f"{mode:10s} {nodes:4d} peers: skipped, needs ~{need / 1024:.1f} GiB "
                            f"(1.2 x {prev[-1]['peer_pss_max_mib']:.0f} MiB per peer), {avail / 1024:.1f} GiB "
                            "available",
                            flush=True,
                        )
                        continue
                for rep in range(args.repeats):
                    r = one_run(mode, nodes, tmp / f"{mode}-{nodes}-{rep}", args.rounds)
                    runs.append(r)
                    print(
                        f"{mode:10s} {nodes:4d} peers: round 1 at {r['round1_s']:.2f} s, "
                        f"PSS/peer {r['peer_pss_mib']:.0f} MiB",
                        flush=True,
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fields = (
        "config_s",
        "registered_s",
        "round1_s",
        "launch_cpu_s",
        "peer_pss_mib",
        "peer_pss_max_mib",
        "peer_rss_mib",
        "peer_private_mib",
        "forkserver_pss_mib",
        "launcher_pss_mib",
        "total_pss_mib",
    )
    print()
    print(
        table(
            ["mode", "peers", *fields],
            [[r["mode"], r["nodes"], *(r.get(f, float("nan")) for f in fields)] for r in runs],
        )
    )
    save(
        "startup",
        {"machine": info, "config": "configs/quickstart.toml", "rounds": args.rounds, "runs": runs, "skipped": skipped},
    )


if __name__ == "__main__":
    main()
