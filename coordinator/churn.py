"""Churn (``[churn]``): which peers are away in round t.

A peer that is away in a round is left out of that round entirely: the coordinator sends
it no ``round_start`` and its barrier does not wait for it, the round's graph has no edge
to or from it (``coordinator/dynamics.py``), and its record entry has ``status`` "away".
Its process stays up, keeps its state (model, optimizer, defense and attack state) and
takes the next ``round_start`` it gets, so a returning peer continues from exactly what
it had when it left: its own last state, which a checkpoint of that round would hold.
That is a graceful leave and return; the in-process reference skips the same nodes in the
same rounds, so both drivers stay bit-identical. (A peer whose process dies is a failed
peer, docs/FAILURES.md; a peer that is new to the run cannot join it: ids, shards and keys
are fixed at the assignment.)

Absences come from ``churn.away`` (``[node, first, last]`` triples) and from
``churn.rate``: in window k >= 1 (rounds ``k * every + 1 .. (k + 1) * every``),
``floor(rate * n + 1/2)`` peers drawn with ``default_rng([seed, k, salt]).choice`` are
away; the first window is whole, so every peer has trained before anyone leaves. Both
add up. A round left with fewer than two peers is refused at plan time.
"""

from __future__ import annotations

import math

import numpy as np

from protocol.config import RunConfig
from protocol.errors import UserError

__all__ = ["ChurnError", "Presence"]

_CHURN_SALT = 0x434855  # "CHU"


class ChurnError(UserError):
    """A churn schedule the run cannot follow (one-line message)."""


class Presence:
    """Who takes part in each round of a run."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.nodes = cfg.nodes
        c = cfg.churn
        self._explicit: dict[int, set[int]] = {}
        for node, first, last in c.away:
            for t in range(first, last + 1):
                self._explicit.setdefault(t, set()).add(node)
        self._count = int(math.floor(c.rate * cfg.nodes + 0.5)) if c.rate > 0 else 0
        self._windows: dict[int, frozenset[int]] = {}
        for t in range(1, cfg.rounds + 1):
            left = cfg.nodes - len(self.away(t))
            if left < 2:
                raise ChurnError(
                    f"churn leaves {left} peer(s) in round {t}: a round needs at least 2; "
                    "lower churn.rate or shorten the churn.away entries of that round"
                )

    @property
    def active(self) -> bool:
        """Whether any peer is ever away."""
        return bool(self._explicit) or self._count > 0

    def away(self, round_: int) -> frozenset[int]:
        """The peers away in round ``round_``."""
        window = (round_ - 1) // self.cfg.churn.every
        drawn: frozenset[int] = frozenset()
        if self._count and window >= 1:
            if window not in self._windows:
                rng = np.random.default_rng([self.cfg.seed, window, _CHURN_SALT])
                self._windows[window] = frozenset(int(j) for j in rng.choice(self.nodes, self._count, replace=False))
            drawn = self._windows[window]
        return drawn | frozenset(self._explicit.get(round_, ()))

    def present(self, round_: int) -> frozenset[int]:
        """The peers that take part in round ``round_``."""
        return frozenset(range(self.nodes)) - self.away(round_)

    def next_round(self, node: int, round_: int) -> int | None:
        """The first round after ``round_`` in which ``node`` takes part (None: none left)."""
        for t in range(round_ + 1, self.cfg.rounds + 1):
            if node not in self.away(t):
                return t
        return None
