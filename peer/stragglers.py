"""Stragglers: peers whose local training takes longer, at no change to what they compute.

A straggler with slowdown s >= 1 trains as every peer does, measures the wall time w its
training took, and then waits (s - 1) * w more before it sends anything (the ZeroMQ
runtime polls its sockets meanwhile, so nothing it receives waits). Its chunks therefore
leave as if its CPU were s times slower, and a neighbor whose ``runtime.chunk_timeout``
passes first aggregates without them (a *late* chunk, docs/PROTOCOL.md). Every number it
computes is the same, so a run whose deadlines are long enough is bit-identical to the
run without stragglers (tests/test_stragglers.py); the in-process reference, an ideal
network, has no stragglers.

Who straggles and by how much is fixed by the config (``[stragglers]``) and the run seed,
so every peer computes it alone from its assignment: :func:`slowdown`.
"""

from __future__ import annotations

import numpy as np

from protocol.config import RunConfig

_STRAGGLER_SALT = 0x535447  # "STG"


def stragglers(cfg: RunConfig) -> list[int]:
    """The straggling peers' ids, sorted: ``stragglers.nodes``, or ``round(fraction * N)``
    (half up) peers drawn with the run seed."""
    s = cfg.stragglers
    if s.factor <= 1:
        return []
    if s.nodes:
        return sorted(set(s.nodes))
    count = int(np.floor(s.fraction * cfg.nodes + 0.5))
    order = np.random.default_rng([cfg.seed, _STRAGGLER_SALT]).permutation(cfg.nodes)
    return sorted(int(n) for n in order[:count])


def slowdown(cfg: RunConfig, node: int) -> float:
    """Peer ``node``'s slowdown s (1.0 for a peer that does not straggle): ``factor``, or
    with ``distribution = "uniform"`` a draw from U[1, factor] seeded by (seed, node)."""
    s = cfg.stragglers
    if node not in stragglers(cfg):
        return 1.0
    if s.distribution == "uniform":
        return float(np.random.default_rng([cfg.seed, node, _STRAGGLER_SALT]).uniform(1.0, s.factor))
    return float(s.factor)
