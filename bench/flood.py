"""What a flood costs an honest peer: receiving, checking and dropping copies of a chunk message.

The ``flood`` attack (``peer/attacks/timing.py``) sends each round's chunk message
``copies`` times. The receiver keeps the first and drops the others as ``duplicate``
(``peer/inbox.py``: one message per kind, round and sender), but only after its data
plane has read each copy off the socket and decoded and checked it. This benchmark
measures that work on the real receive path: node 0's :class:`~peer.dataplane.DataPlane`
(a bound ROUTER on loopback) and :class:`~peer.inbox.Inbox` in this process, and a
neighbor in a forked process whose DEALER sends one round's true chunk message followed
by ``copies`` copies (``--model``'s chunks, 8 chunks, 4 per neighbor). The figure is the
receiving process's CPU time (``time.process_time``: the Python thread that decodes,
checks and drops, and ZeroMQ's I/O thread) from the first message until every copy is
counted, median over ``--repeats`` rounds; the marginal cost of one copy is the
difference to a round without copies, divided by ``copies``. For scale, the CPU time of
one round of local training of the same node (``train.local_steps`` = 10, batch 32).

    .venv/bin/python bench/flood.py [--model lenet] [--copies 0,100,500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any

from common import median, save, table, warn_if_busy


def _send(address: str, frames: list[bytes], count: int) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, b"1")
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(address)
    for _ in range(count):
        sock.send_multipart(frames)
    sock.close(linger=10_000)
    ctx.term()


def measure(model: str, copies_list: list[int], repeats: int) -> dict[str, Any]:
    import numpy as np
    import torch
    import zmq

    from coordinator.plan import build_plan
    from peer import data
    from peer.core import NodeCore
    from peer.data import test_subset
    from peer.dataplane import DataPlane
    from peer.inbox import Inbox
    from peer.traffic import Traffic
    from protocol import messages as m
    from protocol.codec import encode
    from protocol.config import from_dict

    torch.set_num_threads(1)
    cfg = from_dict(
        {
            "name": "flood",
            "seed": 3,
            "nodes": 3,
            "rounds": 10_000,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "root": "", "synthetic_size": 600, "test_samples": 10},
            "model": {"name": model},
            "chunks": {"count": 8, "per_neighbor": 4},
            "eval": {"every": 10_000},
        }
    )
    plan = build_plan(cfg)
    train = data.load("synthetic", None, train=True, synthetic_size=600, seed=cfg.seed)
    test = test_subset(data.load("synthetic", None, train=False, synthetic_size=600, seed=cfg.seed), 10)
    core = NodeCore(plan.assignment(0), train_data=train, test_set=test)
    cpu = time.process_time()
    core.train(1)
    train_cpu_s = time.process_time() - cpu
    ctx = zmq.Context()
    traffic = Traffic(node=0)
    plane = DataPlane(
        ctx,
        bind_host="127.0.0.1",
        advertise_host="127.0.0.1",
        max_message_bytes=cfg.runtime.max_message_bytes,
        curve=None,
        traffic=traffic,
    )
    inbox = Inbox(core)
    fork = multiprocessing.get_context("fork")
    payload = {c: np.asarray(core.chunk(c)) for c in range(4)}
    message_bytes = 0
    out: dict[str, Any] = {"model": model, "train_cpu_s": train_cpu_s, "copies": {}}
    round_ = 0
    for copies in copies_list:
        cpu_s: list[float] = []
        for _ in range(repeats):
            round_ += 1
            inbox.start(round_)
            frames = [bytes(memoryview(f)) for f in encode(m.chunk(src=1, round_=round_, chunks=payload))]
            message_bytes = sum(len(f) for f in frames)
            expected = copies + 1
            traffic.take()
            sender = fork.Process(target=_send, args=(plane.address, frames, expected))
            sender.start()
            plane.sock.poll(30_000)  # the first message is in
            cpu0 = time.process_time()
            while traffic.recv_msgs + traffic.dropped < expected:
                if plane.sock.poll(10_000):
                    plane.receive(inbox)
            cpu_s.append(time.process_time() - cpu0)
            assert traffic.recv_msgs == 1 and traffic.drops["duplicate"] >= copies
            sender.join()
            inbox.close(round_)
        out["copies"][copies] = {"cpu_s": cpu_s, "median_cpu_s": median(cpu_s)}
    out["message_bytes"] = message_bytes
    base = out["copies"][copies_list[0]]["median_cpu_s"]
    for copies, row in out["copies"].items():
        row["per_copy_us"] = (row["median_cpu_s"] - base) / copies * 1e6 if copies else float("nan")
    ctx.destroy(linger=0)  # the data plane's socket and its drop monitor
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--copies", default="0,100,500")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    info = warn_if_busy()
    copies = [int(c) for c in args.copies.split(",")]
    result = measure(args.model, copies, args.repeats)
    rows = [
        [
            c,
            row["median_cpu_s"] * 1e3,
            row["per_copy_us"],
            row["median_cpu_s"] / result["train_cpu_s"],
        ]
        for c, row in result["copies"].items()
    ]
    print(
        f"{args.model}: one chunk message of {result['message_bytes']:,} bytes; "
        f"one round of local training {result['train_cpu_s'] * 1e3:.1f} ms CPU\n"
    )
    print(table(["copies", "receiver CPU per round (ms)", "per copy (µs)", "share of a round's training"], rows))
    save("flood", {"machine": info, **result})


if __name__ == "__main__":
    main()
