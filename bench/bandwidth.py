"""The bandwidth argument for chunking, measured: round time on 10 Mbit/s links against
the share of the model each neighbour gets.

``configs/network_10mbit.toml`` (8 peers, 3-regular, MNIST + LeNet, one SGD step per
round, every link 10 Mbit/s each way, shaped with tc on per-peer namespaces: needs root)
is run as ``byzemu launch`` with training off (``train.local_steps = 0``: a round is the
exchange and the aggregation) and ``chunks.per_neighbor`` = 1, 2, 4 and 7 of 8 chunks,
the links' counters not read between rounds (``network.record_links = false``), one run
at a time, and once with 7 of 8 on unshaped links (``network.isolate``: the same
namespaces and veth links, no rate limit) as the baseline. Per run: the median round
time over rounds 2..R-1 (round 1 includes the peers' first connections, round R the
evaluation), the bytes of one
chunk message, and its transmission time at 10 Mbit/s (bytes * 8 / 10^7), which bounds
a round from below. A whole-model exchange (8 of 8), which byzemu refuses, is the line
through the measured points extrapolated to 8 (marked as such).

    sudo .venv/bin/python bench/bandwidth.py [--shares 1,2,4,7] [--rounds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import ROOT, median, run_command, save, table, warn_if_busy

CONFIG = ROOT / "configs" / "network_10mbit.toml"
RATE_BIT_S = 10e6


def _one(share: int, rounds: int, *, shaped: bool) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "chunks.per_neighbor": share,
        "rounds": rounds,
        "eval.every": rounds,
        "train.local_steps": 0,  # training off: a round is the exchange and the aggregation
        "network.record_links": False,  # no tc/ss commands between rounds (their CPU shows in round_s)
    }
    if not shaped:
        overrides.update({"network.rate_mbit": 0.0, "network.isolate": True})
    with tempfile.TemporaryDirectory(prefix="byzemu-bench-") as tmp:
        run = run_command("launch", Path(tmp) / "run", overrides, config=CONFIG)
        command = run["command"].replace(f"{ROOT}/", "").replace(tmp, "TMP")
    records = run["rounds"]
    traffic = records[0]["peers"]["0"]["traffic"]
    message = traffic["sent_bytes"] // traffic["sent_msgs"]
    return {
        "per_neighbor": share,
        "shaped": shaped,
        "command": command,
        "round_s": [r["round_s"] for r in records],
        "median_round_s": median(r["round_s"] for r in records[1:-1]),
        "message_bytes": message,
        "transmission_s": message * 8 / RATE_BIT_S,
        "command_s": run["command_s"],
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shares", default="1,2,4,7", help="chunks per neighbour (of 8) to run")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)
    info = warn_if_busy()
    shares = [int(x) for x in args.shares.split(",")]
    runs = [_one(s, args.rounds, shaped=True) for s in shares]
    runs.append(_one(max(shares), args.rounds, shaped=False))
    shaped = [r for r in runs if r["shaped"]]
    # least squares line round_s = a + b * share through the shaped runs, for 8 of 8
    n = len(shaped)
    xs, ys = [r["per_neighbor"] for r in shaped], [r["median_round_s"] for r in shaped]
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-12, sum((x - mx) ** 2 for x in xs))
    whole = my + slope * (8 - mx)
    rows = [
        [
            f"{r['per_neighbor']}/8",
            "10 Mbit/s" if r["shaped"] else "unshaped",
            r["message_bytes"],
            f"{r['transmission_s'] * 1000:.0f}",
            f"{r['median_round_s'] * 1000:.0f}",
        ]
        for r in runs
    ]
    rows.append(["8/8 (extrapolated)", "10 Mbit/s", "", "", f"{whole * 1000:.0f}"])
    print(table(["chunks per neighbour", "links", "message bytes", "transmission ms", "median round ms"], rows))
    save(
        "bandwidth",
        {"machine": info, "config": str(CONFIG.relative_to(ROOT)), "runs": runs, "whole_model_extrapolated_s": whole},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
