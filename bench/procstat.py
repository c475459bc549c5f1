"""What a run's processes hold, read from ``/proc``: private and proportional memory,
open file descriptors, sockets and threads per peer, and the processes a launch started.

Used by ``bench/soak.py`` (growth over rounds, :func:`growth`), ``bench/cost_curve.py``
(memory per peer against the number of peers) and the soak's short version in the suite
(``tests/test_soak.py``: so it imports nothing else of ``bench/``). Values in KiB unless a name says otherwise.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss, Shared_*, Private_* of ``pid`` in KiB (from /proc/PID/smaps_rollup)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            out[parts[0][:-1]] = int(parts[1])
    return out


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children first, then theirs), from /proc/PID/task/*/children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                kids = [int(x) for x in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def fds(pid: int) -> tuple[int, int]:
    """(open file descriptors, of which sockets) of ``pid``."""
    total = sockets = 0
    base = f"/proc/{pid}/fd"
    for name in os.listdir(base):
        total += 1
        try:
            if os.readlink(f"{base}/{name}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return total, sockets


def process(pid: int) -> dict[str, int] | None:
    """PSS, USS (private clean + dirty), RSS (KiB), fds, sockets and threads of ``pid``;
    None once it has exited."""
    try:
        mem = smaps_rollup(pid)
        n_fd, n_sock = fds(pid)
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return {
        "pss": mem.get("Pss", 0),
        "uss": mem.get("Private_Clean", 0) + mem.get("Private_Dirty", 0),
        "rss": mem.get("Rss", 0),
        "fds": n_fd,
        "sockets": n_sock,
        "threads": threads,
    }


def peers(pids: list[int]) -> dict[str, Any]:
    """Per-peer means and maxima over the live ``pids`` (memory in MiB), and their totals."""
    rows = [r for r in (process(p) for p in pids) if r is not None]
    if not rows:
        return {"sampled": 0}
    out: dict[str, Any] = {"sampled": len(rows)}
    for key in ("pss", "uss", "rss"):
        out[f"{key}_mib"] = statistics.fmean(r[key] for r in rows) / 1024
        out[f"{key}_max_mib"] = max(r[key] for r in rows) / 1024
    out["pss_total_mib"] = sum(r["pss"] for r in rows) / 1024
    for key in ("fds", "sockets", "threads"):
        out[key] = statistics.fmean(r[key] for r in rows)
        out[f"{key}_max"] = max(r[key] for r in rows)
    return out


def stat_fields(pid: int | str) -> list[str]:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, session, ... (OSError
    once the process has ended)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads, /proc/PID/stat)."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def meminfo() -> dict[str, int]:
    """``/proc/meminfo``: each field's value in KiB."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0])
    return info


def machine_used_mib() -> float:
    """MemTotal − MemAvailable (MiB): what the whole machine uses now."""
    info = meminfo()
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


def slope_per_1000(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (rounds), times 1,000: growth per 1,000 rounds."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def growth(samples: list[dict[str, Any]], *, nodes: int, bound_mib: float) -> dict[str, Any]:
    """Growth of a soak's series and whether each bound holds. ``samples``: one per
    sampling point, ``{"round", "peers": peers(...), "launcher": process(...), "round_ms"}``;
    the first is the warm-up and is left out when there are more than two.

    Bounds: the peers' mean USS and the launcher's USS divided by ``nodes`` each grow by
    less than ``bound_mib`` MiB per 1,000 rounds (the launcher's bookkeeping is per peer
    and round); the peers' largest fd, socket and thread counts and the launcher's fd count
    never change; the last window's median round is within 1.5x of the first's."""
    steady = samples[1:] if len(samples) > 2 else samples
    rounds = [float(s["round"]) for s in steady]
    out: dict[str, Any] = {
        "peer_uss_mib_per_1000_rounds": slope_per_1000(rounds, [s["peers"]["uss_mib"] for s in steady]),
        "peer_pss_mib_per_1000_rounds": slope_per_1000(rounds, [s["peers"]["pss_mib"] for s in steady]),
        "launcher_uss_mib_per_1000_rounds": slope_per_1000(rounds, [s["launcher"]["uss"] / 1024 for s in steady]),
    }
    out["launcher_uss_mib_per_peer_1000_rounds"] = out["launcher_uss_mib_per_1000_rounds"] / nodes
    for key in ("fds_max", "sockets_max", "threads_max"):
        out[f"peer_{key}_values"] = sorted({s["peers"][key] for s in steady})
    out["launcher_fds_values"] = sorted({s["launcher"]["fds"] for s in steady})
    first, last = steady[0]["round_ms"], steady[-1]["round_ms"]
    out["round_ms_first_last"] = [first, last]
    out["ok_memory"] = (
        out["peer_uss_mib_per_1000_rounds"] < bound_mib and out["launcher_uss_mib_per_peer_1000_rounds"] < bound_mib
    )
    handles = [out[f"peer_{k}_values"] for k in ("fds_max", "sockets_max", "threads_max")]
    out["ok_handles"] = all(len(v) == 1 for v in [*handles, out["launcher_fds_values"]])
    out["ok_round_time"] = last <= 1.5 * first
    out["ok"] = out["ok_memory"] and out["ok_handles"] and out["ok_round_time"]
    return out
