"""How exactly a link's delay is applied: requested against measured one-way delay.

For each requested delay (default 0, 10, 50, 100 ms, and 50 ms with 10 ms of jitter) two
peer namespaces are joined as a run joins them and the link between them is given the
delay, both ways, by whatever applies it here (``--apply-with``: netem where the kernel
has it, else netfilter and the delay loop; ``launch/net/probe.py``). Then ``--count``
messages of each size are sent one at a time, ``--gap`` seconds apart, over one TCP
connection, each stamped with the sender's CLOCK_MONOTONIC; the receiver takes the time
when it has the whole message. 0 ms is the same two namespaces with no rule at all (the
floor: veth, bridge, TCP and the two threads). Sizes: 1,000 bytes (one packet: the delay
itself) and 101,867 bytes (one chunk message of ``tests/test_network_links.py``'s runs:
2 of 4 chunks of a 50,890-parameter MLP), whose time also holds its transmission and
TCP's slow start after an idle spell. Per row: min, median, p90 and max of the measured
one-way delay and the median overshoot over the request. Needs root.

    sudo .venv/bin/python bench/link_delay.py [--delays 0,10,50,100] [--count 20] [--gap 0.3]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from common import save, table, warn_if_busy

from launch.net.probe import one_way_delays
from protocol.network_config import Link

SIZES = (1_000, 101_867)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", default="0,10,50,100", help="requested one-way delays, ms")
    parser.add_argument("--count", type=int, default=20, help="messages per delay and size")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between messages")
    parser.add_argument("--apply-with", default="auto", choices=("auto", "netem", "netfilter"))
    args = parser.parse_args()
    before = warn_if_busy()
    links = [(float(d), 0.0) for d in args.delays.split(",")] + [(50.0, 10.0)]
    rows: list[dict[str, Any]] = []
    for delay, jitter in links:
        for size in SIZES:
            probe = one_way_delays(
                Link(delay_ms=delay, jitter_ms=jitter),
                size=size,
                count=args.count,
                gap_s=args.gap,
                apply_with=args.apply_with,
            )
            ms = [d * 1e3 for d in probe.delays]
            rows.append(
                {
                    "delay_ms": delay,
                    "jitter_ms": jitter,
                    "bytes": size,
                    "mechanism": probe.mechanism or "none",
                    "min_ms": min(ms),
                    "median_ms": _quantile(ms, 0.5),
                    "p90_ms": _quantile(ms, 0.9),
                    "max_ms": max(ms),
                    "overshoot_median_ms": _quantile(ms, 0.5) - delay,
                    "below_request": sum(m < delay - jitter for m in ms),
                    "delays_ms": ms,
                }
            )
            print(f"{delay:g} ms (±{jitter:g}), {size} B: median {rows[-1]['median_ms']:.2f} ms", flush=True)
    after = {"loadavg": list(os.getloadavg())}
    print()
    print(
        table(
            ["requested", "bytes", "applied by", "min", "median", "p90", "max", "median overshoot"],
            [
                [
                    f"{r['delay_ms']:g} ms" + (f" ± {r['jitter_ms']:g}" if r["jitter_ms"] else ""),
                    f"{r['bytes']:,}",
                    r["mechanism"],
                    f"{r['min_ms']:.2f}",
                    f"{r['median_ms']:.2f}",
                    f"{r['p90_ms']:.2f}",
                    f"{r['max_ms']:.2f}",
                    f"{r['overshoot_median_ms']:+.2f}",
                ]
                for r in rows
            ],
        )
    )
    save("link_delay", {"machine": before, "after": after, "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
