"""Where a peer's page tables go: its 2 MiB regions that hold present pages, by mapping.

A page-table page (4 KiB) maps one 2 MiB region, so a process pays one for every 2 MiB
region in which it has a present page (plus a few upper-level pages). One ``byzemu
launch`` of the quickstart (``--nodes`` peers of ``--model``, one local step per round);
once round ``--at`` is recorded, the first peer's and the forkserver's
``/proc/PID/pagemap`` are read for every mapping in ``/proc/PID/maps`` (root, or the
processes' owner, is needed to read it), the regions are counted per mapping (library
file and permissions, ``[heap]``, ``[anon]``), and ``VmPTE`` is read from
``/proc/PID/status``. The run is then interrupted. Writes ``bench/results/NAME.json``.

    .venv/bin/python bench/page_tables.py [--nodes 64] [--model logreg] [--at 20] [--top 12]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import struct
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from common import launch_cmd, machine, peer_pids, run_watched, save, table, warn_if_busy

_PRESENT = 1 << 63
_SWAPPED = 1 << 62
_REGION_SHIFT = 21  # 2 MiB


def regions_by_mapping(pid: int) -> tuple[Counter[str], Counter[str], int]:
    """(2 MiB regions with a present page, per mapping; present pages per mapping; VmPTE
    in KiB). A region shared by two mappings is counted for the first."""
    regions: Counter[str] = Counter()
    pages: Counter[str] = Counter()
    seen: set[int] = set()
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            path = fields[5] if len(fields) > 5 else "[anon]"
            if path == "[vsyscall]":
                continue
            name = f"{path.rsplit('/', 1)[-1]} {fields[1]}"
            pagemap.seek(lo // 4096 * 8)
            data = pagemap.read((hi - lo) // 4096 * 8)
            for i, (entry,) in enumerate(struct.iter_unpack("<Q", data)):
                if entry & (_PRESENT | _SWAPPED):
                    pages[name] += 1
                    region = (lo + i * 4096) >> _REGION_SHIFT
                    if region not in seen:
                        seen.add(region)
                        regions[name] += 1
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    pte = next((int(x.split()[1]) for x in status if x.startswith("VmPTE:")), 0)
    return regions, pages, pte


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--at", type=int, default=20, help="sample once this many rounds are recorded")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--name", default="page_tables")
    args = ap.parse_args()
    busy = warn_if_busy()
    overrides = {
        "nodes": args.nodes,
        "rounds": 100_000,  # interrupted once sampled
        "model.name": args.model,
        "train.local_steps": 1,
        "eval.every": 100_000,
        "data.test_samples": 100,
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-page-tables-"))
    out = tmp / "run"
    got: dict[str, Any] = {}

    def on_lines(count: int, now: float, launcher: int) -> None:
        if count >= args.at and not got:
            peer = peer_pids(out)[0]
            for label, pid in (("peer", peer), ("forkserver", _parent(peer))):
                regions, pages, pte = regions_by_mapping(pid)
                got[label] = {"pid": pid, "vm_pte_kib": pte, "regions": dict(regions), "pages": dict(pages)}
            os.kill(launcher, signal.SIGINT)  # sampled: stop the run (exit status 130)

    try:
        run_watched(launch_cmd(out, overrides), out, on_lines)
    except RuntimeError:
        if not got:
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for label, d in got.items():
        regions = Counter(d["regions"])
        total = sum(regions.values())
        print(f"\n{label}: VmPTE {d['vm_pte_kib']} KiB; {total} regions of 2 MiB with present pages = {total * 4} KiB")
        rows = [[k, v, v * 4, d["pages"][k]] for k, v in regions.most_common(args.top)]
        print(table(["mapping", "regions", "KiB of page tables", "present pages"], rows))
    save(args.name, {"machine": machine(), **busy, "overrides": overrides, "sampled_at_round": args.at, **got})


if __name__ == "__main__":
    main()
