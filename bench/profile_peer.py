"""Where one peer's CPU goes in a run: ``cProfile`` (CPU-time timer) of one real peer.

``byzemu coordinator`` and ``byzemu peer --count N-1`` run as subprocesses on loopback;
the N-th peer runs in this process under ``cProfile.Profile(time.process_time)``, so the
profile counts this peer's CPU (its Python work, not the time it waited for a core or a
message). Defaults are the exchange benchmark's workload (``bench/exchange.py``):
quickstart, training off, evaluation only in the last round on 100 test samples.
Prints the functions with the most cumulative and own CPU inside ``run_round``.

    .venv/bin/python bench/profile_peer.py [--nodes 16] [--rounds 300] [--top 40]
"""

from __future__ import annotations

import cProfile
import pstats
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from common import BYZEMU, QUICKSTART, ROOT, profile_args, sets


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    args, overrides = profile_args(__doc__, top=40)
    addr = f"tcp://127.0.0.1:{free_port()}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    coord = subprocess.Popen(
        [
            BYZEMU,
            "coordinator",
            str(QUICKSTART),
            "--bind",
            addr,
            *sets(overrides),
            "--out",
            str(tmp / "run"),
            "--quiet",
        ],
        cwd=ROOT,
    )
    others = subprocess.Popen(
        [
            BYZEMU,
            "peer",
            "--coordinator",
            addr,
            "--count",
            str(args.nodes - 1),
            "--bind-host",
            "127.0.0.1",
            "--advertise-host",
            "127.0.0.1",
            "--data-root",
            str(ROOT / "data" / "mnist"),
        ],
        cwd=ROOT,
    )
    import torch

    from peer.options import PeerOptions
    from peer.runtime import run_peer

    torch.set_num_threads(1)
    prof = cProfile.Profile(time.process_time)
    try:
        prof.runcall(
            run_peer,
            PeerOptions(
                coordinator=addr,
                bind_host="127.0.0.1",
                advertise_host="127.0.0.1",
                data_root=str(ROOT / "data" / "mnist"),
            ),
        )
    finally:
        for p in (others, coord):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    if args.out:
        prof.dump_stats(args.out)
    stats = pstats.Stats(prof)
    total = next(v for k, v in stats.stats.items() if k[2] == "run_round")[3]  # type: ignore[attr-defined]
    print(f"run_round: {total:.3f} CPU-s over {args.rounds} rounds = {total / args.rounds * 1e3:.3f} ms per round")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
