"""One peer's data path per round, in one process and without sockets: CPU per round.

Node 0 of the exchange benchmark's workload (``configs/quickstart.toml``: 16 peers,
3-regular, LeNet, 8 chunks, 4 per neighbor, CDL; ``train.local_steps=0``) and its 3
neighbors, as :class:`~peer.core.NodeCore` objects. Each round every core flattens its
model and plans its chunks; node 0 then does what its runtime does per round besides the
socket calls: encodes its 3 chunk messages, decodes and checks the 3 it receives (real
msgpack frames, copied once into writable buffers as ZeroMQ delivers them), aggregates,
loads the model, takes the digest, encodes ``round_done``. Only node 0's work is timed
(``time.process_time``, one thread). With ``--compare DIR`` the same script runs from the
other checkout ``DIR`` too (its own ``.venv``), alternating blocks, and prints both.

    .venv/bin/python bench/data_path.py [--rounds 400] [--blocks 5] [--compare ../h21-base]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(rounds: int) -> dict[str, float]:
    tree = Path.cwd()  # the checkout under test (its own .venv runs this function)
    sys.path.insert(0, str(tree))
    import torch

    torch.set_num_threads(1)
    from coordinator.plan import build_plan
    from peer import data as datasets
    from peer.core import NodeCore
    from protocol import config as config_mod
    from protocol import messages as m
    from protocol.codec import decode, encode

    cfg = config_mod.load(
        tree / "configs" / "quickstart.toml", ["train.local_steps=0", "eval.every=1000000", "data.test_samples=100"]
    )
    plan = build_plan(cfg)
    root = Path(cfg.data.root)
    train = datasets.load("mnist", root, train=True, seed=cfg.seed)
    test = datasets.test_subset(datasets.load("mnist", root, train=False, seed=cfg.seed), 100)
    me = NodeCore(plan.assignment(0), train_data=train, test_set=test)
    others = {j: NodeCore(plan.assignment(j), train_data=train, test_set=test) for j in me.neighbors}
    check = getattr(me, "chunk_check", None)
    spent = 0.0
    for t in range(1, rounds + 1):
        incoming = []
        for j, core in others.items():  # not timed: the neighbors' side
            core.train(t)
            incoming.append([bytearray(f) for f in encode(m.chunk(src=j, round_=t, chunks=core.outgoing(t)[0]))])
        cpu = time.process_time()
        me.train(t)
        sent = [encode(m.chunk(src=0, round_=t, chunks=p)) for j, p in sorted(me.outgoing(t).items())]
        received = {}
        for frames in incoming:
            msg = check.decode(frames) if check is not None else None
            if msg is None:
                msg = decode(frames, allowed=m.DATA_PLANE, max_bytes=cfg.runtime.max_message_bytes)
                me.check_payload(msg.src, msg["chunks"], msg.arrays)
            received[msg.src] = dict(zip(msg["chunks"], msg.arrays))
        result = me.end_round(t, received)
        encode(m.round_done(src=0, round_=t, metrics=result.metrics, traffic={}, timing=result.timing))
        spent += time.process_time() - cpu
        for core in others.values():  # keep the neighbors' models moving (not timed)
            core.end_round(t, {})
        del sent
    return {"cpu_ms_per_round": spent / rounds * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--compare", default="", help="another checkout to run alternately (its .venv)")
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        print(json.dumps(measure(args.rounds)))
        return
    trees = {"this": ROOT} | ({"compare": Path(args.compare).resolve()} if args.compare else {})
    got: dict[str, list[float]] = {k: [] for k in trees}
    for _ in range(args.blocks):
        for name, tree in trees.items():
            cmd = [
                str(tree / ".venv" / "bin" / "python"),
                str(ROOT / "bench" / "data_path.py"),
                "--once",
                "--rounds",
                str(args.rounds),
            ]
            out = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                cwd=tree,
                check=True,
                env={"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
            )
            got[name].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_ms_per_round"])
    for name, values in got.items():
        v = sorted(values)
        print(
            f"{name:8s} {trees[name]}: CPU ms per round median {v[len(v) // 2]:.3f} (range {v[0]:.3f}-{v[-1]:.3f}, "
            f"{len(v)} blocks of {args.rounds} rounds)"
        )


if __name__ == "__main__":
    main()
