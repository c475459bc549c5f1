"""The floor under byzemu's exchange + barrier: the same message pattern with bare pyzmq.

One process per peer and one coordinator, as in byzemu, but nothing else: no msgpack
validation, no chunk bookkeeping, no aggregation, no digest, no results file. Each round
the coordinator sends ``start`` to every peer (ROUTER -> DEALER); each peer sends one
message to each of its 3 neighbours (a small header frame + the chunk bytes a LeNet peer
sends per neighbour: 4 of 8 chunks = half of 61,706 float32 values), waits for its 3
incoming messages and sends ``done``; the coordinator waits for all ``done``. What this
costs per round is what any one-process-per-peer design in Python + pyzmq pays on this
machine, before doing any of byzemu's work.

    .venv/bin/python bench/floor.py                      # 16 peers, tcp and ipc
    .venv/bin/python bench/floor.py --peers 16,64 --rounds 300

Writes ``bench/results/floor.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from typing import Any

from common import median, save, table, warn_if_busy
from procstat import cpu_seconds

LENET_PARAMS = 61_706


def neighbours(i: int, n: int) -> list[int]:
    """3-regular circulant graph: i-1, i+1, i+n/2 (mod n), n even."""
    return sorted({(i - 1) % n, (i + 1) % n, (i + n // 2) % n})


def peer(i: int, n: int, addr: dict[str, Any], payload_bytes: int, rounds: int) -> None:
    import zmq

    os.environ["OMP_NUM_THREADS"] = "1"
    ctx = zmq.Context()
    ctrl = ctx.socket(zmq.DEALER)
    ctrl.connect(addr["coordinator"])
    data = ctx.socket(zmq.ROUTER)
    data.bind(addr["peer"](i))  # a random free port (tcp): advertised through the coordinator
    ctrl.send_multipart([b"ready", str(i).encode(), data.getsockopt_string(zmq.LAST_ENDPOINT).encode()])
    endpoints = ctrl.recv().decode().split("\n")
    out = {}
    for j in neighbours(i, n):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.ROUTING_ID, str(i).encode())
        s.connect(endpoints[j])
        out[j] = s
    payload = bytes(payload_bytes)
    ctrl.send(b"connected")
    poller = zmq.Poller()
    poller.register(data, zmq.POLLIN)
    for _ in range(rounds):
        round_ = ctrl.recv()
        for s in out.values():
            s.send_multipart([round_, payload], copy=False)
        got = 0
        while got < len(out):
            poller.poll()
            while data.poll(0):
                data.recv_multipart(copy=False)
                got += 1
        ctrl.send(round_)
    ctx.destroy(linger=1000)


def run(n: int, rounds: int, transport: str, *, params: int = LENET_PARAMS) -> dict[str, Any]:
    """One floor run of ``n`` peers; each message carries half of a ``params``-value float32 model."""
    import zmq

    tmp = tempfile.mkdtemp(prefix="byzemu-floor-")
    if transport == "ipc":
        addr: dict[str, Any] = {"coordinator": f"ipc://{tmp}/c", "peer": lambda i: f"ipc://{tmp}/p{i}"}
    else:
        ctx0 = zmq.Context()
        probe = ctx0.socket(zmq.ROUTER)
        # below the kernel's ephemeral range, where the peers' "*" ports come from: a peer
        # could otherwise take this port before the coordinator binds it
        low, _ = (int(v) for v in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        base = probe.bind_to_random_port("tcp://127.0.0.1", min_port=10000, max_port=max(10001, low - 1))
        probe.close(0)
        ctx0.term()
        addr = {"coordinator": f"tcp://127.0.0.1:{base}", "peer": lambda i: "tcp://127.0.0.1:*"}
    payload = params * 4 // 2
    fork = mp.get_context("fork")  # before this process has a zmq context (peers connect and retry)
    procs = [fork.Process(target=peer, args=(i, n, addr, payload, rounds)) for i in range(n)]
    for p in procs:
        p.start()
    ctx = zmq.Context()
    coord = ctx.socket(zmq.ROUTER)
    coord.bind(addr["coordinator"])
    ready = [coord.recv_multipart() for _ in range(n)]  # [identity, "ready", node, endpoint]
    endpoints = {int(node): endpoint.decode() for _, _, node, endpoint in ready}
    ids = [ident for ident, *_ in ready]
    table = "\n".join(endpoints[i] for i in range(n)).encode()
    for ident in ids:
        coord.send_multipart([ident, table])
    for _ in range(n):
        coord.recv_multipart()  # "connected"
    times = []
    pids = [p.pid for p in procs if p.pid is not None]  # all: they were started above
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    for r in range(rounds):
        t = time.perf_counter()
        tag = r.to_bytes(4, "little")
        for ident in ids:
            coord.send_multipart([ident, tag])
        for _ in range(n):
            coord.recv_multipart()
        times.append(time.perf_counter() - t)
    cpu = sum(cpu_seconds(pid) - cpu0[pid] for pid in pids)
    for p in procs:
        p.join(10)
    ctx.destroy(linger=0)
    steady = times[rounds // 10 :]
    return {
        "transport": transport,
        "peers": n,
        "rounds": rounds,
        "round_ms_median": 1000 * median(steady),
        "rounds_per_s": len(steady) / sum(steady),
        "peer_cpu_ms_per_round": 1000 * cpu / n / rounds,
        "payload_bytes_per_message": payload,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default="16")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--transports", default="tcp,ipc")
    args = ap.parse_args()
    info = warn_if_busy()
    rows = []
    for n in (int(x) for x in args.peers.split(",")):
        for transport in args.transports.split(","):
            r = run(n, args.rounds, transport)
            print(
                f"{transport} {n} peers: round {r['round_ms_median']:.1f} ms (median), "
                f"{r['peer_cpu_ms_per_round']:.2f} ms CPU per peer and round",
                flush=True,
            )
            rows.append(r)
    print()
    keys = ["transport", "peers", "rounds_per_s", "round_ms_median", "peer_cpu_ms_per_round"]
    print(table(keys, [[r[k] for k in keys] for r in rows]))
    save("floor", {"machine": info, "runs": rows})


if __name__ == "__main__":
    main()
