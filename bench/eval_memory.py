"""Memory an evaluation leaves behind in each peer: mean USS and page tables of every peer
just before and after rounds in which the peers evaluate.

One ``byzemu launch`` of the quickstart (``--nodes`` peers of ``--model``, one local step
per round, evaluation every ``--every`` rounds on ``--samples`` test images). Each time the
coordinator has recorded one of the rounds ``every - 1``, ``every + 1``, ``2 every + 1`` and
``5 every``, the whole run (launcher and peers, one process group) is stopped with SIGSTOP,
every peer's ``/proc/PID/smaps_rollup`` (private clean + dirty = USS) and ``VmPTE`` are
read, and the run continues (SIGCONT); at the end it is interrupted. A peer may be in the
middle of its next round when stopped, so a sample holds that round's working memory too.
Writes ``bench/results/NAME.json``. An A/B against another checkout's code:
``PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/eval_memory.py --name ...``
(the launch then starts in that checkout: ``common.code_root``).

    .venv/bin/python bench/eval_memory.py [--nodes 16] [--model lenet] [--every 6] [--samples 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from common import launch_cmd, machine, save, start_in_session, table, warn_if_busy


def _peers(launcher: int) -> list[int]:
    """The peers: children of the launcher's children (the forkserver's)."""
    out = []
    for child in _children(launcher):
        out.extend(_children(child))
    return out


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _sample(pids: list[int]) -> dict[str, float]:
    uss, pte, n = 0, 0, 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        uss += sum(int(line.split()[1]) for line in rollup if line.startswith(("Private_Clean:", "Private_Dirty:")))
        pte += sum(int(line.split()[1]) for line in status if line.startswith("VmPTE:"))
        n += 1
    n = max(n, 1)
    return {"uss_mib": uss / n / 1024, "page_tables_mib": pte / n / 1024, "peers": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--every", type=int, default=6, help="eval.every")
    ap.add_argument("--samples", type=int, default=500, help="data.test_samples")
    ap.add_argument("--name", default="eval_memory")
    args = ap.parse_args()
    busy = warn_if_busy()
    overrides = {
        "nodes": args.nodes,
        "rounds": 100_000,  # interrupted once sampled
        "model.name": args.model,
        "train.local_steps": 1,
        "eval.every": args.every,
        "data.test_samples": args.samples,
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-memory-"))
    out = tmp / "run"
    cmd = [*launch_cmd(out, overrides), "--ignore-capacity"]
    e = args.every
    at = [e - 1, e + 1, 2 * e + 1, 5 * e]
    samples: list[dict[str, Any]] = []
    proc, log = start_in_session(cmd)
    rounds_file = out / "rounds.jsonl"
    try:
        for target in at:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"the run ended before round {target}:\n{log.read()[-2000:]}")
                count = rounds_file.read_bytes().count(b"\n") if rounds_file.exists() else 0
                if count >= target:
                    break
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                samples.append({"after_round": count, "evaluated": count // e, **_sample(_peers(proc.pid))})
            finally:
                os.killpg(proc.pid, signal.SIGCONT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [[s["after_round"], s["evaluated"], s["uss_mib"], s["page_tables_mib"], s["peers"]] for s in samples]
    print(table(["after round", "evaluations", "USS MiB per peer", "page tables MiB", "peers"], rows))
    save(
        args.name,
        {
            "machine": machine(),
            **busy,
            "overrides": overrides,
            "samples": samples,
        },
    )


if __name__ == "__main__":
    main()
