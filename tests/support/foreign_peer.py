"""A complete peer built on the raw-frame harness (tests/support/harness.py), runnable on its own:
the "foreign" peer of ``byzemu conformance`` (docs/PROTOCOL.md, *Conformance kit*).

    byzemu conformance -- python tests/support/foreign_peer.py
    byzemu conformance -- python tests/support/foreign_peer.py --broken all-chunks

It imports nothing of byzemu. It registers, takes its assignment, connects to its
neighbors and answers ``ready``; in every round it sends each live peer of the round's
``send_to`` (``round_start`` → ``graph``; the assignment's neighbors in a run whose graph
does not change) the chunk window of policy ``rotate`` (the peer at position p gets
indices (t + p*k + m) mod C, m < k), waits for one chunk message from every live peer of
the round's ``receive_from`` (a ``peer_failed`` ends the wait for that one), averages
every index over its own chunk and the received ones, and reports ``round_done`` with
the required metrics only (it neither trains nor evaluates).
It checks every data message as the spec's *Validation and drops* says (the sender by
routing id, CURVE ``User-Id`` or sender MAC; the round window) and reports its drops.
It asks for the initial model (``want_init``), checks it against ``model.init_digest``
and starts from it. It exits 0 on ``stop``.

``--broken MODE`` makes it violate the protocol on purpose: ``all-chunks`` sends all C
chunks to every neighbor (receivers drop it: ``bad_chunk_count``), ``ignore-graph`` sends
to every neighbor of the assignment whatever the round's graph (receivers that are not
its round neighbors drop it: ``not_round_neighbor``), ``ignore-stop`` keeps running after
``stop``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.harness import ProtocolViolation, ScriptedPeer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coordinator", default=os.environ.get("BYZEMU_COORDINATOR"))
    ap.add_argument("--coordinator-key", default=os.environ.get("BYZEMU_COORDINATOR_KEY") or None)
    ap.add_argument("--broken", choices=("all-chunks", "ignore-graph", "ignore-stop"), default=None)
    args = ap.parse_args()
    if not args.coordinator:
        print("error: no coordinator address: pass --coordinator or set BYZEMU_COORDINATOR", file=sys.stderr)
        return 2
    with ScriptedPeer(args.coordinator, coordinator_key=args.coordinator_key, count_drops=True) as sp:
        sp.register(host="foreign", want_init=True)
        assign = sp.accept_assignment(timeout=120)
        sizes = sp.chunk_sizes
        starts = np.cumsum([0, *sizes])
        vector = np.array(assign.arrays[1], dtype="<f4")  # the initial model every peer starts from
        if vector.shape != (starts[-1],) or _digest(vector) != assign["model"]["init_digest"]:
            print("foreign peer: the initial model does not match assign.model.init_digest", file=sys.stderr)
            return 1
        sp.ready()
        per_neighbor = assign["config"]["chunks"]["per_neighbor"]
        while True:
            msg = sp.expect("round_start", timeout=600, skip=("peer_failed",)) if not _stopped(sp) else None
            if msg is None:
                break
            t = msg.round
            sp.started = t
            sp.failed.update(msg["failed"])
            graph = msg.header.get("graph")  # a graph that changes: this round's peers
            send_to = graph["send_to"] if graph and args.broken != "ignore-graph" else sp.neighbor_ids
            senders = set(graph["receive_from"] if graph else sp.neighbors)
            for pos, j in enumerate(send_to):
                if j in sp.failed:
                    continue
                idx = (
                    range(len(sizes))
                    if args.broken == "all-chunks"
                    else {(t + pos * per_neighbor + m) % len(sizes) for m in range(per_neighbor)}
                )
                sp.send_chunks(t, j, {c: vector[starts[c] : starts[c + 1]] for c in sorted(idx)})
            deadline = time.monotonic() + msg["deadline"]
            while not (senders - sp.failed) <= set(sp.inbox[t]) and time.monotonic() < deadline:
                if any(m.kind == "stop" for m in sp._pending):
                    return 0  # the run was stopped mid-round
                sp.pump(0.05)  # peer_failed updates sp.failed
            received = {j: m for j, m in sp.inbox[t].items() if j in senders and j not in sp.failed}
            sums = vector.astype(np.float64)
            counts = np.ones(len(sizes))
            new = vector.copy()
            for c in range(len(sizes)):
                parts = [m.arrays[m["chunks"].index(c)] for m in received.values() if c in m["chunks"]]
                if parts:
                    seg = sums[starts[c] : starts[c + 1]] + np.sum(parts, axis=0)
                    counts[c] += len(parts)
                    new[starts[c] : starts[c + 1]] = (seg / counts[c]).astype("<f4")
            vector = new
            sp.aggregated = t
            digest = _digest(vector)
            chunks = sum(len(m["chunks"]) for m in received.values())
            sp.round_done(t, metrics={"chunks_received": chunks, "senders": len(received), "digest": digest})
        if args.broken == "ignore-stop":
            time.sleep(3600)
    return 0


def _digest(vector: np.ndarray) -> str:
    return hashlib.sha256(vector.astype("<f4").tobytes()).hexdigest()[:16]


def _stopped(sp: ScriptedPeer) -> bool:
    """True once ``stop`` arrived (waits for the next control message other than peer_failed)."""
    while True:
        sp._pending = [m for m in sp._pending if m.kind != "peer_failed"]
        if sp._pending:
            return sp._pending[0].kind == "stop"
        sp.pump(0.2)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ProtocolViolation as exc:
        print(f"foreign peer: {exc}", file=sys.stderr)
        sys.exit(1)
