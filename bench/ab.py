"""A/B of whole runs: this tree against another checkout (e.g. a ``git worktree`` of an
older commit), alternating A and B so that both see the same machine load.

Each run is ``byzemu launch CONFIG --set ...`` (or ``byzemu reference`` with
``--mode reference``) run as a subprocess from the checkout's root with ``PYTHONPATH`` set
to that checkout, so that the launcher, the forkserver and every peer import its code
(the same virtual environment runs both). Per run it reports the command's wall time,
the peers' CPU seconds summed over peers and rounds (train, evaluation, aggregation,
the rest of each round), the honest peers' final accuracy and a digest of every peer's
final model, so that equal results are visible at a glance.

    .venv/bin/python bench/ab.py --before ../byzemu-before [--pairs 2] [--set rounds=300]

The default config is ``configs/quickstart.toml`` (16 peers, 3-regular, MNIST, LeNet, 30
rounds, evaluation every 10); ``--set`` overrides it in both A and B.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BYZEMU, ROOT, checkout_label, median, read_run, save, table, warn_if_busy


def one_run(tree: Path, config: str, sets: list[str], mode: str, out: Path, pin: str | None) -> dict[str, Any]:
    cmd = [BYZEMU, mode, str(tree / config), *(a for s in sets for a in ("--set", s)), "--out", str(out), "--quiet"]
    if pin:
        cmd = ["taskset", "-c", pin, *cmd]
    env = dict(os.environ, PYTHONPATH=str(tree))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run = read_run(out)
    sums = {"train": 0.0, "eval": 0.0, "aggregate": 0.0, "round": 0.0}
    steps = 0
    for rec in run["rounds"]:
        for p in rec["peers"].values():
            t = p.get("timing", {})
            sums["train"] += t.get("train_cpu_s", 0.0)
            sums["eval"] += t.get("eval_cpu_s", 0.0)
            sums["aggregate"] += t.get("aggregate_cpu_s", 0.0)
            sums["round"] += t.get("round_cpu_s", 0.0)
            steps += 1
    last = run["rounds"][-1]
    digests = ",".join(
        p["metrics"].get("digest", "?") for _, p in sorted(last["peers"].items(), key=lambda kv: int(kv[0]))
    )
    acc = run["summary"].get("final_accuracy") or {}
    return {
        "command": shlex.join(cmd),
        "wall_s": wall,
        "rounds_s": sum(r["round_s"] for r in run["rounds"]),
        "train_cpu_s": sums["train"],
        "eval_cpu_s": sums["eval"],
        "aggregate_cpu_s": sums["aggregate"],
        "other_cpu_s": sums["round"] - sums["train"] - sums["eval"] - sums["aggregate"] if sums["round"] else None,
        "final_accuracy_mean": acc.get("mean"),
        "final_accuracy_worst": acc.get("worst"),
        "final_digests_sha": __import__("hashlib").sha256(digests.encode()).hexdigest()[:12],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, type=Path, help="checkout of the 'A' code")
    ap.add_argument("--config", default="configs/quickstart.toml", help="relative to each checkout")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for both (repeatable)")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--mode", default="launch", choices=["launch", "reference"])
    ap.add_argument("--pin", default=None, help="taskset CPU list, e.g. 0 (default: no pinning)")
    ap.add_argument("--name", default="ab_quickstart", help="bench/results/NAME.json")
    args = ap.parse_args()
    info = warn_if_busy()
    trees = {"A": args.before.resolve(), "B": ROOT}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="byzemu-ab-") as tmp:
        scratch = tmp
        for pair in range(args.pairs):
            for side in ("A", "B") if pair % 2 == 0 else ("B", "A"):
                out = Path(tmp) / f"{side}{pair}"
                r = {
                    "side": side,
                    "pair": pair,
                    "tree": str(trees[side]),
                    **one_run(trees[side], args.config, args.sets, args.mode, out, args.pin),
                }
                runs.append(r)
                print(
                    f"{side} (pair {pair}): {r['wall_s']:.1f} s, train {r['train_cpu_s']:.1f} / eval "
                    f"{r['eval_cpu_s']:.1f} / aggregate {r['aggregate_cpu_s']:.1f} CPU-s, accuracy "
                    f"{r['final_accuracy_mean']}, digests {r['final_digests_sha']}",
                    flush=True,
                )
    cols = ["wall_s", "rounds_s", "train_cpu_s", "eval_cpu_s", "aggregate_cpu_s", "other_cpu_s"]
    med = {s: {c: median(r[c] for r in runs if r["side"] == s and r[c] is not None) for c in cols} for s in "AB"}
    ratios = [
        next(r for r in runs if r["pair"] == p and r["side"] == "A")["wall_s"]
        / next(r for r in runs if r["pair"] == p and r["side"] == "B")["wall_s"]
        for p in range(args.pairs)
    ]
    print(
        "\nMedians (A = before, B = this tree); wall ratio A/B per pair: "
        + ", ".join(f"{x:.2f}" for x in ratios)
        + "\n"
    )
    print(table(["side", *cols], [[s, *(med[s][c] for c in cols)] for s in "AB"]))
    save(
        args.name,
        {
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "runs": runs,
            "medians": med,
            "wall_ratio_A_over_B": ratios,
        },
        paths={str(trees["A"]): checkout_label(trees["A"]), scratch: "<tmp>"},
    )


if __name__ == "__main__":
    main()
