"""Where the coordinator's CPU goes in a round: ``cProfile`` (CPU-time timer) of a whole
``byzemu launch`` in this process, i.e. of the launcher, which runs the coordinator (its
peers run in their own processes and are not profiled). The workload is the exchange
benchmark's (``bench/exchange.py``): quickstart, training off, evaluation only in the
last round on 100 test samples. Prints the CPU per round of the coordinator's loop
(``Coordinator.run``) and the functions with the most cumulative and own CPU.

    .venv/bin/python bench/profile_coordinator.py [--nodes 16] [--rounds 300] [--top 30]

The peers' side: ``bench/profile_peer.py``.
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from common import QUICKSTART, profile_args, sets


def main() -> None:
    args, overrides = profile_args(__doc__, top=30)
    from launch.cli import main as cli

    out = Path(tempfile.mkdtemp(prefix="bench-profile-coord-")) / "run"
    argv = ["launch", str(QUICKSTART), *sets(overrides), "--out", str(out), "--quiet"]
    prof = cProfile.Profile(time.process_time)
    try:
        prof.runcall(cli, argv, standalone_mode=False)
    except SystemExit:
        pass
    if args.out:
        prof.dump_stats(args.out)
    stats = pstats.Stats(prof)
    total = next(v for k, v in stats.stats.items() if k[2] == "run" and k[0].endswith("server.py"))[3]  # type: ignore[attr-defined]
    print(
        f"Coordinator.run: {total:.3f} CPU-s over {args.rounds} rounds = {total / args.rounds * 1e3:.3f} ms per round"
    )
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
