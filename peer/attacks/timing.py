"""Timing behaviours: attacks on *when* and *to whom* chunks are sent, not on what they hold.

In a synchronous round with a deadline (``runtime.chunk_timeout``) the network decides
which chunks a defense ever sees. A Byzantine peer can shape that without crafting a
single value; each attack here sends its true chunks and acts only on the schedule
(``peer/rounds.py`` reads ``recipients``, ``hold`` and ``copies`` of an active attack):

* ``withhold``: send to a seeded subset of neighbors, or to none;
* ``deadline_edge``: hold the chunks until fraction ``at`` of the deadline has passed,
  so that they arrive at its edge (``at`` >= 1: after it, always late);
* ``flood``: send every chunk message ``copies`` times.

What the receiving side does (docs/ATTACKS.md, *Timing behaviours*): a withheld chunk is
a candidate the defense does not have (the index keeps fewer payloads, an index nobody
sent stays as it is); a chunk after the receiver's deadline is dropped and counted
``late`` per sender; a copy is decoded, checked and dropped as ``duplicate`` (the inbox
keeps one message per kind, round and sender), which costs the receiver its decoding
(bench/flood.py measures it).

Omission and timing failures are the fault classes below arbitrary (Byzantine)
behaviour in the classification of Cristian, Aghili, Strong and Dolev, "Atomic
Broadcast: From Simple Message Diffusion to Byzantine Agreement", FTCS-15, 1985 (its
failure classes: omission, timing, Byzantine); docs/REFERENCES.md.
"""

from __future__ import annotations

import numpy as np

from peer.attacks.base import Attack
from peer.attacks.registry import ATTACKS

#: the most copies ``flood`` sends of one message: below the sender's send queue of 1000
#: messages (peer/dataplane.py, SNDHWM), so every copy reaches the receiver
MAX_COPIES = 500


@ATTACKS.register("withhold")
class WithholdAttack(Attack):
    r"""Send the round's true chunks to a subset of the neighbors only.

    In round t the peer withholds from :math:`\lceil f \cdot d \rceil` of its d
    neighbors, drawn uniformly with a generator seeded by (seed, node, t); ``fraction``
    f = 1 sends nothing (an omission failure in the classes of Cristian et al., FTCS 1985).
    """

    def __init__(self, *, fraction: float = 1.0, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction={fraction} must be in [0, 1] (1 = send to nobody)")
        self.fraction = float(fraction)

    def recipients(self, neighbors: list[int], rng: np.random.Generator) -> list[int]:
        withheld = int(np.ceil(self.fraction * len(neighbors)))
        dropped = set(rng.permutation(neighbors)[:withheld].tolist()) if withheld else set()
        return [j for j in neighbors if j not in dropped]


@ATTACKS.register("deadline_edge")
class DeadlineEdgeAttack(Attack):
    r"""Send the round's true chunks at the edge of the receivers' deadline.

    The peer sends once :math:`a \cdot T` seconds have passed since the end of its local
    training, T = ``runtime.chunk_timeout`` (``at`` = a). A receiver's deadline runs T
    from the end of *its* training, so with a just below 1 whether the chunk counts
    depends on the two peers' pace: the run's result depends on timing, which the
    delivery log records for replay. With a >= 1 the chunks always miss (a timing
    failure in the classes of Cristian et al., FTCS 1985). The in-process reference, an ideal
    network, delivers them at once.
    """

    def __init__(self, *, at: float = 0.95, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if not 0 <= at <= 10:
            raise ValueError(f"at={at} must be in [0, 10] (a fraction of runtime.chunk_timeout)")
        self.hold = float(at)


@ATTACKS.register("flood")
class FloodAttack(Attack):
    r"""Send every chunk message ``copies`` times.

    Each neighbor receives the round's true message followed by ``copies`` - 1 copies, all
    within the run's limits (each is one message of the usual size, at most
    ``runtime.max_message_bytes``; at most 500 copies, under the sender's 1000-message
    send queue). The receiver keeps the first and drops the rest as ``duplicate`` after
    decoding and checking them: what a flood costs it is that work (bench/flood.py).
    """

    def __init__(self, *, copies: int = 100, start_round: int = 1, interval: int = 1) -> None:
        super().__init__(start_round=start_round, interval=interval)
        if not 1 <= copies <= MAX_COPIES:
            raise ValueError(f"copies={copies} must be in [1, {MAX_COPIES}]")
        self.copies = int(copies)
