"""The coordinator's per-round cost on its own, at any number of peers, in one process.

Per round the coordinator receives one ``round_done`` per peer: it decodes it (the same
``decode`` with the control plane's limits), checks that ``rounds.jsonl`` can record its
metrics, traffic and timing (``recordable``), files it; when all are in it builds the
round's record (``round_record``) and writes it as one line (``round_line``, to
``/dev/null`` here). This benchmark runs exactly that code on real encoded frames of a
training-off LeNet peer's report (non-finite ``train_loss``, as in ``bench/exchange.py``)
for N peers, without sockets or processes, and reports the CPU per round and per peer.
What the sockets add is in ``bench/floor.py``'s coordinator.

    .venv/bin/python bench/coordinator_cost.py                        # 16 ... 2,048 peers
    .venv/bin/python bench/coordinator_cost.py --peers 16,64 --rounds 50

Writes ``bench/results/coordinator_cost.json``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from common import machine, save, table, warn_if_busy

from coordinator.results import round_record
from coordinator.server import MAX_CONTROL_BYTES
from protocol import messages as m
from protocol.codec import decode, encode
from protocol.reports import recordable
from protocol.rundir import round_line


def report(node: int) -> list[bytes]:
    """The encoded frames of a training-off LeNet peer's ``round_done`` (the fields a real
    one carries, bench/exchange.py's workload)."""
    msg = m.round_done(
        src=node,
        round_=7,
        metrics={"train_loss": float("nan"), "chunks_received": 12, "senders": 3, "digest": "b0ccbb9c7cd0628e"},
        traffic={
            "sent_msgs": 3,
            "sent_bytes": 370_812,
            "sent_payload_bytes": 370_236,
            "recv_msgs": 3,
            "recv_bytes": 370_812,
            "dropped": 0,
            "drops_total": {},
        },
        timing={
            "train_s": 0.00071,
            "aggregate_s": 0.00041,
            "train_cpu_s": 0.00070,
            "aggregate_cpu_s": 0.00041,
            "exchange_s": 0.0104,
            "round_s": 0.0142,
            "round_cpu_s": 0.0021,
        },
    )
    return [bytes(f) for f in encode(msg)]


def one_size(n: int, rounds: int) -> dict[str, Any]:
    frames = [report(i) for i in range(n)]
    roles = dict.fromkeys(range(n), "honest")
    sink = open("/dev/null", "wb")
    split = {"decode": 0.0, "check": 0.0, "record": 0.0, "line": 0.0}
    for r in range(rounds):
        reports: dict[int, dict[str, Any]] = {}
        t = time.process_time()
        msgs = [decode(f, allowed=m.TO_COORDINATOR, max_bytes=MAX_CONTROL_BYTES) for f in frames]
        t1 = time.process_time()
        for msg in msgs:
            if all(recordable(msg[k]) for k in ("metrics", "traffic", "timing")):
                reports[msg.src] = {"metrics": msg["metrics"], "traffic": msg["traffic"], "timing": msg["timing"]}
        t2 = time.process_time()
        record = round_record(round_=r + 1, roles=roles, reports=reports, failed=set(), elapsed_s=1.0, round_s=0.01)
        t3 = time.process_time()
        sink.write(round_line(record))
        t4 = time.process_time()
        for key, dt in zip(split, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
            split[key] += dt
    sink.close()
    per_round = {k: v / rounds * 1e3 for k, v in split.items()}
    total = sum(per_round.values())
    return {
        "peers": n,
        "rounds": rounds,
        "ms_per_round": total,
        "us_per_peer": total / n * 1e3,
        **{f"{k}_ms": v for k, v in per_round.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="16,64,256,1024,2048")
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    busy = warn_if_busy()
    rows = [one_size(int(n), args.rounds) for n in args.peers.split(",")]
    keys = ["peers", "ms_per_round", "us_per_peer", "decode_ms", "check_ms", "record_ms", "line_ms"]
    print(table(keys, [[r[k] for k in keys] for r in rows]))
    save("coordinator_cost", {"machine": machine(), **busy, "runs": rows})


if __name__ == "__main__":
    main()
