"""Shared helpers of the benchmarks in ``bench/``: machine facts, runs as subprocesses,
reading a run's results folder, memory of processes, tables and JSON output.

Every benchmark is one command run from the repository root, e.g.
``.venv/bin/python bench/overhead.py``; it prints a table and writes
``bench/results/<name>.json`` (machine, date, command, raw figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from procstat import meminfo, smaps_rollup

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUICKSTART = ROOT / "configs" / "quickstart.toml"
BYZEMU = str(Path(sys.executable).parent / "byzemu")
PYTHON = sys.executable

if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- machine


def cpu_jiffies() -> tuple[int, int]:
    """The whole machine's CPU time so far, in clock ticks (``/proc/stat``): (all, idle +
    iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over ``seconds`` (from /proc/stat)."""
    t0, i0 = cpu_jiffies()
    time.sleep(seconds)
    t1, i1 = cpu_jiffies()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, load, versions and the date, for the results file."""
    from protocol.provenance import cpu_model

    mem_kib = meminfo()["MemTotal"]
    import torch

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "mem_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg": os.getloadavg(),
        "cpu_busy_before": round(cpu_busy(1.0), 3),
    }


def warn_if_busy() -> dict[str, Any]:
    info = machine()
    if info["cpu_busy_before"] > 0.1:
        print(
            f"warning: the machine is {info['cpu_busy_before']:.0%} busy before the benchmark "
            f"(load {info['loadavg'][0]:.2f}); figures will be slower than on an idle machine",
            file=sys.stderr,
        )
    return info


# --------------------------------------------------------------------------- runs


def sets(overrides: dict[str, Any]) -> list[str]:
    """``--set K=V`` arguments (values as TOML literals)."""
    out: list[str] = []
    for key, value in overrides.items():
        if isinstance(value, bool):
            lit = "true" if value else "false"
        elif isinstance(value, str):
            lit = json.dumps(value)
        else:
            lit = repr(value)
        out += ["--set", f"{key}={lit}"]
    return out


def run_command(
    kind: str,
    out_dir: Path,
    overrides: dict[str, Any],
    *,
    config: Path = QUICKSTART,
    pin: str | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Run ``byzemu KIND CONFIG --set ... --out OUT --quiet`` (optionally under
    ``taskset -c PIN``); return its exit time and the results folder's contents."""
    cmd = [BYZEMU, kind, str(config), *sets(overrides), "--out", str(out_dir), "--quiet"]
    if pin is not None:
        cmd = ["taskset", "-c", pin, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=code_root())
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"command": shlex.join(cmd), "command_s": elapsed, **read_run(out_dir)}


def read_run(out_dir: Path) -> dict[str, Any]:
    rounds = [json.loads(line) for line in (out_dir / "rounds.jsonl").read_text().splitlines()]
    summary = json.loads((out_dir / "summary.json").read_text())
    return {"rounds": rounds, "summary": summary}


def peer_values(record: dict[str, Any], section: str, key: str) -> list[float]:
    """``record["peers"][i][section][key]`` over the peers that reported it."""
    out = []
    for p in record["peers"].values():
        v = p.get(section, {}).get(key)
        if isinstance(v, (int, float)):
            out.append(float(v))
    return out


def median(values: Iterable[float]) -> float:
    v = list(values)
    return statistics.median(v) if v else float("nan")


def mean(values: Iterable[float]) -> float:
    v = list(values)
    return statistics.fmean(v) if v else float("nan")


# --------------------------------------------------------------------------- memory


def ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


# --------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable on a terminal)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v != v:
                return "n/a"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            if abs(v) >= 1:
                return f"{v:.2f}"
            return f"{v:.3g}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def _interpreter() -> str:
    """How the command line names this interpreter: ``.venv/bin/python`` for the checkout's
    environment, else ``pythonX.Y`` (another environment with byzemu installed)."""
    try:
        return str(Path(sys.executable).relative_to(ROOT))
    except ValueError:
        return f"python{sys.version_info.major}.{sys.version_info.minor}"


def checkout_label(tree: Path) -> str:
    """``<a checkout of COMMIT>`` for another byzemu checkout: what a saved result names
    instead of its path on the machine that measured it."""
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return f"<a checkout of {commit or 'unknown'}>"


def save(name: str, data: dict[str, Any], *, paths: dict[str, str] | None = None) -> Path:
    """Write ``bench/results/NAME.json`` (with the command line that produced it). No path
    of the measuring machine is kept: this checkout's becomes relative (``.``), and each
    of ``paths`` (e.g. another checkout, a temporary folder) its label."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = shlex.join([_interpreter(), *sys.argv])
    other = code_root()
    if other != ROOT:  # an A/B against another checkout: say which commit it held
        command = f"PYTHONPATH={checkout_label(other)} {command}"
    data = {"command": command, **data}
    text = json.dumps(data, indent=2, default=str) + "\n"
    labels = {**(paths or {}), str(ROOT) + "/": "", str(ROOT): "."}
    for path in sorted(labels, key=len, reverse=True):
        text = text.replace(path, labels[path])
    out = RESULTS / f"{name}.json"
    out.write_text(text)
    print(f"\nresults: {out.relative_to(ROOT)}")
    return out


def lo_bytes() -> int:
    """Bytes sent on the loopback interface so far (/proc/net/dev; each byte counted once)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[8])
    return 0


def code_root() -> Path:
    """The checkout whose code a launch from here runs: the first ``PYTHONPATH`` entry when
    it is a byzemu checkout (an A/B against other code), else this one. A launch must also
    *start* there: Python 3.11's forkserver ignores its parent's ``sys.path`` and finds the
    peer code through its own, whose first entry is its working directory, so a launch
    started from this checkout with ``PYTHONPATH`` elsewhere ran the other code in the
    launcher but this checkout's in the peers."""
    first = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    if first and (Path(first) / "peer" / "runtime.py").is_file():
        return Path(first).resolve()
    return ROOT


def run_watched(cmd: list[str], out_dir: Path, on_lines: Any = None, *, timeout: float = 1800) -> dict[str, Any]:
    """Run ``cmd`` (a launch writing into ``out_dir``) and poll ``rounds.jsonl`` every
    2 ms; call ``on_lines(count, now)`` whenever its line count grows. Returns the start
    time (``time.time()``), the command's seconds and the times each line appeared."""
    t0 = time.time()
    # output to a file, not a pipe: nobody reads a pipe during the run, and once its 64 KiB
    # are full every peer that logs a line blocks (256 peers did, round 1 never came)
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=code_root(), stdout=log, stderr=subprocess.STDOUT, text=True)
    rounds_file = out_dir / "rounds.jsonl"
    size, lines, seen_at = 0, 0, []
    try:
        while proc.poll() is None:
            if time.time() - t0 > timeout:
                proc.kill()
                raise RuntimeError(f"{shlex.join(cmd)} ran past {timeout:g} s")
            try:
                new_size = rounds_file.stat().st_size
            except FileNotFoundError:
                new_size = 0
            if new_size != size:
                size = new_size
                now = time.time()
                count = rounds_file.read_bytes().count(b"\n")
                while lines < count:
                    seen_at.append(now)
                    lines += 1
                if on_lines is not None:
                    on_lines(lines, now, proc.pid)
            time.sleep(0.002)
    finally:
        proc.wait()
        log.seek(0)
        stderr = log.read()
        log.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {
        "start": t0,
        "command_s": time.time() - t0,
        "line_at": seen_at,
        "pid": proc.pid,
        "cmdline": shlex.join(cmd),
        "log_lines": stderr.count("\n"),
        "log_tail": stderr[-2000:],
        **read_run(out_dir),
    }


def profile_args(doc: str, *, top: int) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The options of the profile scripts (``--nodes --rounds --top --out``) and the
    exchange benchmark's workload for them: training off, evaluation only in the last
    round on 100 test samples."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--top", type=int, default=top)
    ap.add_argument("--out", default="", help="also write the pstats file here")
    args = ap.parse_args()
    overrides = {
        "nodes": args.nodes,
        "rounds": args.rounds,
        "train.local_steps": 0,
        "eval.every": args.rounds,
        "data.test_samples": 100,
    }
    return args, overrides


def launch_cmd(out_dir: Path, overrides: dict[str, Any], *, config: Path = QUICKSTART) -> list[str]:
    return [BYZEMU, "launch", str(config), *sets(overrides), "--out", str(out_dir), "--quiet"]


def start_in_session(cmd: list[str]) -> tuple[subprocess.Popen[str], IO[str]]:
    """Start ``cmd`` (a launch) in its own session, so that ``os.killpg(proc.pid, ...)``
    stops or ends it with every peer, from the checkout :func:`code_root` names; its output
    goes to the returned temporary file (see :func:`run_watched` on why not a pipe)."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        cmd, cwd=code_root(), stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    return proc, log


def peer_pids(out_dir: Path) -> list[int]:
    topo = json.loads((out_dir / "topology.json").read_text())
    return [n["pid"] for n in topo["nodes"] if "pid" in n]


def peers_memory(out_dir: Path) -> dict[str, float]:
    """Mean and max PSS and RSS (MiB) of the run's live peer processes."""
    rows = []
    for pid in peer_pids(out_dir):
        try:
            rows.append(smaps_rollup(pid))
        except (FileNotFoundError, ProcessLookupError):
            pass
    if not rows:
        return {}
    return {
        "peer_pss_mib": mean(r["Pss"] / 1024 for r in rows),
        "peer_pss_max_mib": max(r["Pss"] / 1024 for r in rows),
        "peer_rss_mib": mean(r["Rss"] / 1024 for r in rows),
        "peers_pss_total_mib": sum(r["Pss"] for r in rows) / 1024,
        "peers_sampled": len(rows),
    }


def mem_available_mib() -> float:
    kib = meminfo().get("MemAvailable")
    return float("nan") if kib is None else kib / 1024


def measure_launch(overrides: dict[str, Any], out: Path, cores: int) -> dict[str, Any]:
    """Run ``byzemu launch`` on the quickstart config with ``overrides`` (which must set
    ``nodes`` and ``rounds`` >= 4) and return its steady-state figures (rounds 2 .. R-1):
    see ``bench/exchange.py`` for their definitions."""
    nodes, rounds = overrides["nodes"], overrides["rounds"]
    marks: dict[str, Any] = {}

    def on_lines(count: int, now: float, pid: int) -> None:
        if count >= 1 and "lo_1" not in marks:
            marks["lo_1"] = lo_bytes()
        if count >= 2 and "mem" not in marks:
            marks["mem"] = peers_memory(out)
        if count >= rounds - 1 and "lo_2" not in marks:
            marks["lo_2"] = lo_bytes()

    run = run_watched(launch_cmd(out, overrides), out, on_lines)
    recs = run["rounds"]
    steady = recs[1 : rounds - 1]
    n_steady = len(steady)
    span = run["line_at"][rounds - 2] - run["line_at"][0]
    round_ms = sorted(r["round_s"] * 1e3 for r in steady)
    compute = [
        (sum(peer_values(r, "timing", "train_cpu_s")) + sum(peer_values(r, "timing", "aggregate_cpu_s")))
        / min(cores, nodes)
        * 1e3
        for r in steady
    ]
    msg_cpu = [
        mean(
            p["timing"]["round_cpu_s"] - p["timing"]["train_cpu_s"] - p["timing"]["aggregate_cpu_s"]
            for p in r["peers"].values()
            if p.get("status") == "ok"
        )
        * 1e3
        for r in steady
    ]
    payload = median(sum(peer_values(r, "traffic", "sent_payload_bytes")) for r in steady)
    sent = median(sum(peer_values(r, "traffic", "sent_bytes")) for r in steady)
    lo = (marks["lo_2"] - marks["lo_1"]) / n_steady if "lo_2" in marks and n_steady else float("nan")
    train_cpu = [mean(peer_values(r, "timing", "train_cpu_s")) * 1e3 for r in steady]
    return {
        "nodes": nodes,
        "rounds": rounds,
        "overrides": overrides,
        "rounds_per_s": n_steady / span if span > 0 else float("nan"),
        "round_ms_median": median(round_ms),
        "round_ms_p90": round_ms[int(0.9 * (len(round_ms) - 1))],
        "compute_ms": median(compute),
        "exchange_barrier_ms": median(r - c for r, c in zip((s["round_s"] * 1e3 for s in steady), compute)),
        "peer_exchange_ms": median(mean(peer_values(r, "timing", "exchange_s")) * 1e3 for r in steady),
        "peer_train_cpu_ms": median(train_cpu),
        "peer_aggregate_cpu_ms": median(mean(peer_values(r, "timing", "aggregate_cpu_s")) * 1e3 for r in steady),
        "msg_cpu_ms_per_peer": median(msg_cpu),
        "payload_bytes_per_round": payload,
        "sent_bytes_per_round": sent,
        "lo_bytes_per_round": lo,
        "setup_s": run["line_at"][0] - recs[0]["round_s"] - run["start"],
        "summary": run["summary"],
        "failed_peers": run["summary"].get("failed_peers"),
        "command_s": run["command_s"],
        "log_lines": run["log_lines"],
        "log_tail": run["log_tail"],
        **marks.get("mem", {}),
    }
