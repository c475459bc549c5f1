"""Endurance: does anything grow over thousands of rounds?

One ``byzemu launch`` of the quickstart with a cheap model (logistic regression, one
local step, evaluation only in the last round on 100 test samples) for many rounds. Every
``--every`` rounds it samples each peer's private memory (USS), PSS, open file
descriptors, sockets and threads, the launcher's (coordinator's) own, and the median
round time of the rounds since the last sample. After the warm-up (the first sample) it
fits a straight line to each series and states the growth against the bound:

* memory: < ``--bound-mib`` MiB per peer per 1,000 rounds (USS, mean over peers), and
  the same for the launcher's USS divided by the number of peers;
* file descriptors, sockets and threads: no change at all between samples;
* round time: the last window's median within 1.5x of the first's.

    .venv/bin/python bench/soak.py                             # 16 peers, 2,000 rounds
    .venv/bin/python bench/soak.py --nodes 256 --rounds 300 --name soak_256

Exits 1 when a bound is exceeded. Writes ``bench/results/soak.json`` (or ``--name``).
``tests/test_soak.py`` is its short version in the suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import procstat
from common import launch_cmd, machine, median, peer_pids, run_watched, save, table, warn_if_busy


def soak(nodes: int, rounds: int, every: int, model: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    out = tmp / "run"
    overrides = {
        "nodes": nodes,
        "rounds": rounds,
        "model.name": model,
        "train.local_steps": 1,
        "eval.every": rounds,
        "data.test_samples": 100,
    }
    samples: list[dict[str, Any]] = []
    pids: list[int] = []
    due = every  # the next sampling round: the first count at or past it is sampled

    def on_lines(count: int, now: float, launcher: int) -> None:
        # lines may arrive several at a time (hundreds of peers, a busy watcher): sample at
        # the first count past each multiple of ``every``, not only at an exact multiple
        nonlocal due
        if count < due or count >= rounds:
            return
        due = (count // every + 1) * every
        if not pids:
            pids.extend(peer_pids(out))
        recs = (out / "rounds.jsonl").read_text().splitlines()[count - every : count]
        round_ms = median(json.loads(r)["round_s"] * 1e3 for r in recs)
        samples.append(
            {
                "round": count,
                "peers": procstat.peers(pids),
                "launcher": procstat.process(launcher) or {},
                "round_ms": round_ms,
                "machine_used_mib": procstat.machine_used_mib(),
            }
        )
        s = samples[-1]
        print(
            f"round {count:5d}: peer USS {s['peers']['uss_mib']:.2f} MiB, PSS {s['peers']['pss_mib']:.2f} MiB, "
            f"fds {s['peers']['fds_max']}, sockets {s['peers']['sockets_max']}, "
            f"threads {s['peers']['threads_max']}; launcher USS {s['launcher'].get('uss', 0) / 1024:.1f} MiB, "
            f"fds {s['launcher'].get('fds')}; round {round_ms:.1f} ms",
            flush=True,
        )

    try:
        run = run_watched(launch_cmd(out, overrides), out, on_lines, timeout=24 * 3600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "nodes": nodes,
        "rounds": rounds,
        "every": every,
        "overrides": overrides,
        "command_s": run["command_s"],
        "failed_peers": run["summary"].get("failed_peers"),
        "samples": samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--every", type=int, default=50, help="sample every this many rounds")
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--bound-mib", type=float, default=1.0, help="MiB per peer per 1,000 rounds")
    ap.add_argument("--name", default="soak")
    args = ap.parse_args()
    busy = warn_if_busy()
    result = soak(args.nodes, args.rounds, args.every, args.model)
    if len(result["samples"]) < 3:
        raise SystemExit(
            f"{len(result['samples'])} sample(s): too few to fit a growth; raise --rounds or lower --every"
        )
    result["verdict"] = procstat.growth(result["samples"], nodes=args.nodes, bound_mib=args.bound_mib)
    v = result["verdict"]
    print()
    print(
        table(
            ["series", "growth", "bound", "ok"],
            [
                ["peer USS (MiB / 1,000 rounds)", v["peer_uss_mib_per_1000_rounds"], args.bound_mib, v["ok_memory"]],
                ["launcher USS (MiB / 1,000 rounds)", v["launcher_uss_mib_per_1000_rounds"], "", ""],
                [
                    "launcher USS per peer (MiB / 1,000 rounds)",
                    v["launcher_uss_mib_per_peer_1000_rounds"],
                    args.bound_mib,
                    v["ok_memory"],
                ],
                [
                    "peer fds / sockets / threads (values seen)",
                    f"{v['peer_fds_max_values']} / {v['peer_sockets_max_values']} / {v['peer_threads_max_values']}",
                    "one value each",
                    v["ok_handles"],
                ],
                ["launcher fds (values seen)", v["launcher_fds_values"], "one value", v["ok_handles"]],
                ["round ms (first / last window)", v["round_ms_first_last"], "last <= 1.5x first", v["ok_round_time"]],
            ],
        )
    )
    save(args.name, {"machine": machine(), **busy, "bound_mib_per_1000_rounds": args.bound_mib, **result})
    raise SystemExit(0 if v["ok"] else 1)


if __name__ == "__main__":
    main()
