"""What a peer's private memory holds: its USS broken down by mapping.

One ``byzemu launch`` of the quickstart (``--nodes`` peers of ``--model``, one local
step per round, no evaluation, 100 test samples); once round ``--at`` (20) is
recorded it reads ``/proc/PID/smaps`` of every peer and sums the private (clean + dirty) KiB
by what each mapping is: the ``[heap]`` (Python objects and malloc), anonymous mappings
(numpy/torch buffers, pymalloc arenas, thread stacks), the ``[stack]``, and file-backed
mappings by file (shared libraries written after the fork: relocations, data segments).
The run is then interrupted. Prints the mean over peers, largest first, and their mean PSS and USS (from
``/proc/PID/smaps_rollup``); writes ``bench/results/NAME.json``. An A/B of an environment
variable (``MALLOC_ARENA_MAX=2 .venv/bin/python bench/peer_memory.py ...``) reaches the
peers through the launcher and the forkserver it starts.

    .venv/bin/python bench/peer_memory.py [--nodes 16] [--model logreg] [--at 20] [--name NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from common import launch_cmd, machine, peer_pids, run_watched, save, table, warn_if_busy
from procstat import smaps_rollup

#: environment variables that change a peer's memory, recorded with the results
_ENV = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


def _anonymous(size: int) -> str:
    """An anonymous mapping's kind by its size: 8 MiB ones are thread stacks (glibc's
    default), 64 MiB ones malloc arenas of other threads, 1 MiB and smaller pymalloc arenas
    and small buffers, the rest large buffers (numpy/torch arrays: the shard) and pymalloc
    arenas that the kernel merged into one mapping (the forkserver's 1 MiB arenas, mapped
    side by side while it imports torch, form one ~38 MiB mapping)."""
    mib = size / (1 << 20)
    if mib == 8 or mib == 8 + 1 / 256:
        return "anonymous: 8 MiB (thread stacks)"
    if mib == 64:
        return "anonymous: 64 MiB (malloc arenas of threads)"
    if mib <= 1:
        return "anonymous: <= 1 MiB (pymalloc arenas, small buffers)"
    return "anonymous: > 1 MiB (large buffers: shard; merged pymalloc arenas)"


def private_by_mapping(pid: int) -> Counter[str]:
    """Private KiB of ``pid`` per mapping kind (see the module docstring)."""
    out: Counter[str] = Counter()
    name = "anonymous"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head:
            continue
        if not head[0].endswith(":"):  # a mapping's first line: range perms offset dev inode [path]
            path = head[5] if len(head) > 5 else ""
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            name = path.rsplit("/", 1)[-1] if path.startswith("/") else (path or _anonymous(hi - lo))
        elif head[0] in ("Private_Clean:", "Private_Dirty:"):
            out[name] += int(head[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--at", type=int, default=20, help="sample once this many rounds are recorded")
    ap.add_argument("--name", default="peer_memory")
    args = ap.parse_args()
    busy = warn_if_busy()
    rounds = 100_000  # the run is interrupted once sampled
    overrides = {
        "nodes": args.nodes,
        "rounds": rounds,
        "model.name": args.model,
        "train.local_steps": 1,
        "eval.every": rounds,
        "data.test_samples": 100,
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-peer-memory-"))
    out = tmp / "run"
    per_peer: list[Counter[str]] = []
    rollups: list[dict[str, int]] = []

    def on_lines(count: int, now: float, launcher: int) -> None:
        if count >= args.at and not per_peer:
            for pid in peer_pids(out):
                try:
                    per_peer.append(private_by_mapping(pid))
                    rollups.append(smaps_rollup(pid))
                except (FileNotFoundError, ProcessLookupError):
                    pass
            os.kill(launcher, signal.SIGINT)  # sampled: stop the run (exit status 130)

    try:
        run_watched(launch_cmd(out, overrides), out, on_lines)
    except RuntimeError:
        if not per_peer:  # failed before it was sampled
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total: Counter[str] = Counter()
    for c in per_peer:
        total.update(c)
    n = max(1, len(per_peer))
    mean = {k: v / n / 1024 for k, v in total.most_common()}
    uss = sum(mean.values())
    rows: list[list[Any]] = [[k, v, v / uss] for k, v in list(mean.items())[: args.top]]
    rows.append(["(all)", uss, 1.0])
    print(table(["mapping", "private MiB per peer", "share"], rows))
    m = max(1, len(rollups))
    pss = sum(r.get("Pss", 0) for r in rollups) / m / 1024
    print(f"mean per peer: PSS {pss:.2f} MiB, USS {uss:.2f} MiB ({len(per_peer)} peers sampled)")
    save(
        args.name,
        {
            "machine": machine(),
            **busy,
            "overrides": overrides,
            "sampled_at_round": args.at,
            "pythonpath": os.environ.get("PYTHONPATH", ""),
            "env": {k: os.environ[k] for k in _ENV if k in os.environ},
            "peers_sampled": len(per_peer),
            "pss_mib": pss,
            "uss_mib": uss,
            "mean_mib": mean,
        },
    )


if __name__ == "__main__":
    main()
