"""Many peers across the nodes of a Slurm cluster: ``byzemu launch --on slurm``.

Brings up the test suite's two-node Slurm cluster on this machine (``tests/support/slurm.py``:
``munged``, ``slurmctld``, two ``slurmd``; root and Debian's ``slurm-wlm`` + ``munge``),
submits the quickstart with ``--nodes 2`` and N peers (logistic regression, one local step,
evaluation in the last round on 500 test samples), waits for the job and reports its state,
the time from submission to the summary, the rounds recorded, the failed peers and the
peers each node started (the job's log). Both "nodes" are this machine, so this checks
the Slurm path at scale (one job step per node, each forking its share of the peers from
one forkserver), not the speed of a real cluster.

    .venv/bin/python bench/slurm_scale.py --peers 1024

Writes ``bench/results/slurm_scale.json`` (or ``--name``); exits 1 unless the job completed
with every round recorded and no failed peer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, save, warn_if_busy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support.slurm, the suite's cluster
from tests.support.slurm import start, stop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the job")
    ap.add_argument("--name", default="slurm_scale")
    args = ap.parse_args()
    busy = warn_if_busy()
    tmp = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    cluster = start(tmp / "slurm", cpus=max(2, args.peers))  # every peer a task slot: the job fits the 2 "nodes"
    out = tmp / "run"
    sets = {
        "nodes": args.peers,
        "rounds": args.rounds,
        "model.name": "logreg",
        "train.local_steps": 1,
        "eval.every": args.rounds,
        "data.test_samples": 500,
        "runtime.register_timeout": 600,
    }
    opts = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + ["--on", "slurm", "--nodes", "2"]
    cmd = [str(Path(sys.executable).parent / "byzemu"), "launch", str(ROOT / "configs" / "quickstart.toml"), *opts]
    cmd += ["--out", str(out)]
    shown = ["byzemu", "launch", "configs/quickstart.toml", *opts, "--out", "RUN_DIR"]
    log_tail = ""
    row: dict[str, Any] = {"peers": args.peers, "rounds": args.rounds, "command": " ".join(shown)}
    try:
        t0 = time.monotonic()
        submitted = cluster.run(*cmd)
        job = re.search(r"submitted Slurm job (\d+)", submitted)
        if job is None:
            raise SystemExit(f"not submitted:\n{submitted}\n{cluster.logs()}")
        row["job"] = job.group(1)
        while cluster.run("squeue", "-h", "-j", row["job"], "-o", "%i").strip():
            if time.monotonic() - t0 > args.timeout:
                break
            time.sleep(1.0)
        row["wall_s"] = time.monotonic() - t0
        line = cluster.run("scontrol", "-o", "show", "job", row["job"]).split()
        row["state"] = next((x.split("=", 1)[1] for x in line if x.startswith("JobState=")), "UNKNOWN")
        log = next(out.glob("slurm-*.out"), None)
        text = log.read_text(errors="replace") if log else ""
        row["started"] = re.findall(r"host (\S+): (\d+) peer\(s\) started", text)
        summary_path = out / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        row["rounds_completed"] = summary.get("rounds_completed")
        row["failed_peers"] = len(summary.get("failed_peers", [])) if summary else None
        row["accuracy"] = (summary.get("final_accuracy") or {}).get("mean")
        log_tail = text[-2000:]
    finally:
        stop(cluster)
    ok = row.get("state") == "COMPLETED" and row.get("rounds_completed") == args.rounds and row["failed_peers"] == 0
    print(json.dumps(row, indent=1))
    if not ok:
        print(log_tail)
    save(args.name, {"machine": machine(), **busy, "run": row, "ok": ok})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
