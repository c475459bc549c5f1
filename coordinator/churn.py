"""Churn (``[churn]``): which peers take part in round t.

A peer that is away in a round is left out of that round entirely: the coordinator sends
it no ``round_start`` and its barrier does not wait for it, the round's graph has no edge
to or from it (``coordinator/dynamics.py``), and its record entry has ``status`` "away".
Its process stays up, keeps its state (model, optimizer, defense and attack state) and
takes the next ``round_start`` it gets, so a returning peer continues from exactly what
it had when it left: its own last state, which a checkpoint of that round would hold.
That is a graceful leave and return; the in-process reference skips the same nodes in the
same rounds, so both drivers stay bit-identical.

Absences come from ``churn.away`` (``[node, first, last]`` triples) and from
``churn.rate``: in window k >= 1 (rounds ``k * every + 1 .. (k + 1) * every``),
``floor(rate * n + 1/2)`` peers drawn with ``default_rng([seed, k, salt]).choice`` are
away; the first window is whole, so every peer has trained before anyone leaves. Both
add up.

A new peer (``churn.join``, ``[node, round]``) registers with the others, so ids, keys and
addresses stay fixed at the assignment, and is away in every round before its join round
(``assign`` → ``first_round`` names that round). In its join round it starts from the
current model of its lowest-id sender of that round (``join_model = "neighbor"``) or the
mean of all its senders' models (``"average"``), sent to it before anyone trains (the
``model`` message, docs/PROTOCOL.md); senders joining in the same round are left out
(their model is the initial one). A joiner without such a sender keeps the initial model.

A scheduled crash (``churn.crash``, ``[node, round]``): the coordinator still sends the
peer ``round_start`` of its crash round and counts it in that round's barrier, the peer
exits on it without a word, and the coordinator marks it failed as for any crash (the
launcher's process probe, or the round deadline). The graph of that round and of every
later one leaves it out (nobody sends to it or waits for it, in both drivers); its record
entry is "failed" from that round on.

A returning peer (``churn.leave``, ``[node, leave, return]``): the node's process takes
part up to round ``leave - 1``, the coordinator answers its ``round_done`` of that round
with ``stop`` (the process ends, status 0), the node is away in rounds ``leave ..
return - 1``, and a new process for it registers later and takes part again from round
``return``, starting from the node's own checkpoint of round :meth:`Presence.checkpoint_round`
(the last round before ``leave`` that is a multiple of ``runtime.checkpoint_every`` and in
which the node took part): the rounds it ran after that checkpoint are lost, as they
would be for a real peer that restarts from its last checkpoint. The in-process
reference restores the same state in the same round.

Late registration (``coordinator/joins.py``). A new peer's node (``churn.join``, round
R >= 2) and a returning peer's node are *slots*: the coordinator assigns the other nodes
without waiting for them, and a ``register`` after the assignment takes a free slot. A
slot whose process has not registered when its round starts (after ``runtime.join_timeout``)
is *pending*: :meth:`Presence.postpone` moves its round to the next one, so that round's
graph leaves it out, until the process registers.

A round left with fewer than two peers is refused at plan time.
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
        #: node -> its join round / its crash round
        self.joins: dict[int, int] = {node: round_ for node, round_ in c.join}
        self.crashes: dict[int, int] = {node: round_ for node, round_ in c.crash}
        #: node -> (leave round, return round) of a returning peer (churn.leave)
        self.leaves: dict[int, tuple[int, int]] = _leaves(cfg)
        for node, (leave, back) in self.leaves.items():
            for t in range(leave, back):
                self._explicit.setdefault(t, set()).add(node)
        for node, join in self.joins.items():
            for t in range(1, join):
                self._explicit.setdefault(t, set()).add(node)
        self._count = int(math.floor(c.rate * cfg.nodes + 0.5)) if c.rate > 0 else 0
        self._windows: dict[int, frozenset[int]] = {}
        for node, (leave, back) in self.leaves.items():
            if self.checkpoint_round(node) == 0:
                raise ChurnError(
                    f"churn.leave entry [{node}, {leave}, {back}]: node {node} has no checkpoint before round "
                    f"{leave} to return from (runtime.checkpoint_every={cfg.runtime.checkpoint_every}); set "
                    "runtime.checkpoint_every so that a round it takes part in before leaving is a checkpoint "
                    "round, or leave later"
                )
        for t in range(1, cfg.rounds + 1) if self.active else ():  # no churn: every peer in every round
            left = cfg.nodes - len(self.absent(t))
            if left < 2:
                raise ChurnError(
                    f"churn leaves {left} peer(s) in round {t}: a round needs at least 2; lower churn.rate, "
                    "shorten the churn.away or churn.leave entries of that round, or move its churn.join or "
                    "churn.crash rounds"
                )

    @property
    def active(self) -> bool:
        """Whether any peer is ever out of a round."""
        return bool(self._explicit) or self._count > 0 or bool(self.crashes)

    def checkpoint_round(self, node: int) -> int:
        """A returning peer's checkpoint: the last round before its leave round that is a
        multiple of ``runtime.checkpoint_every`` and in which it took part (0: none)."""
        every = self.cfg.runtime.checkpoint_every
        leave = self.leaves[node][0]
        for t in range(leave - 1, 0, -1):
            if every and t % every == 0 and node not in self.absent(t):
                return t
        return 0

    def slots(self) -> dict[int, int]:
        """Nodes whose process may register after the assignment, with the round it is due
        in: a new peer joining in round >= 2, a returning peer's return round."""
        due = {node: join for node, join in self.joins.items() if join >= 2}
        due.update({node: back for node, (_, back) in self.leaves.items()})
        return due

    def returning(self, round_: int) -> frozenset[int]:
        """The returning peers whose return round is ``round_``."""
        return frozenset(node for node, (_, back) in self.leaves.items() if back == round_)

    def postpone(self, node: int, round_: int) -> None:
        """Slot ``node``'s process did not register in time: it is away until ``round_``,
        which becomes its join (or return) round."""
        due = self.slots()[node]
        for t in range(due, round_):
            self._explicit.setdefault(t, set()).add(node)
        if node in self.leaves:
            self.leaves[node] = (self.leaves[node][0], round_)
        else:
            self.joins[node] = round_

    def away(self, round_: int) -> frozenset[int]:
        """The peers away in round ``round_`` (a new peer before its join round included;
        a crashed one is not away but failed: :meth:`gone`)."""
        window = (round_ - 1) // self.cfg.churn.every
        drawn: frozenset[int] = frozenset()
        if self._count and window >= 1:
            if window not in self._windows:
                rng = np.random.default_rng([self.cfg.seed, window, _CHURN_SALT])
                self._windows[window] = frozenset(int(j) for j in rng.choice(self.nodes, self._count, replace=False))
            drawn = self._windows[window]
        return (drawn | frozenset(self._explicit.get(round_, ()))) - self.gone(round_)

    def gone(self, round_: int) -> frozenset[int]:
        """The peers whose scheduled crash came in or before round ``round_``."""
        return frozenset(node for node, crash in self.crashes.items() if crash <= round_)

    def crashing(self, round_: int) -> frozenset[int]:
        """The peers that crash when round ``round_`` starts."""
        return frozenset(node for node, crash in self.crashes.items() if crash == round_)

    def joining(self, round_: int) -> frozenset[int]:
        """The new peers whose first round is ``round_``."""
        return frozenset(node for node, join in self.joins.items() if join == round_)

    def absent(self, round_: int) -> frozenset[int]:
        """The peers not in round ``round_``'s graph: away or crashed."""
        return self.away(round_) | self.gone(round_)

    def present(self, round_: int) -> frozenset[int]:
        """The peers that take part in round ``round_``."""
        return frozenset(range(self.nodes)) - self.absent(round_)

    def next_round(self, node: int, round_: int) -> int | None:
        """The first round after ``round_`` in which ``node`` takes part (None: none left)."""
        for t in range(round_ + 1, self.cfg.rounds + 1):
            if node not in self.absent(t):
                return t
        return None


def _leaves(cfg: RunConfig) -> dict[int, tuple[int, int]]:
    """``churn.leave`` as node -> (leave, return); ChurnError (one line) for a bad entry."""
    out: dict[int, tuple[int, int]] = {}
    crashes = {node for node, _ in cfg.churn.crash}
    for item in cfg.churn.leave:
        if len(item) != 3:
            raise ChurnError(f"churn.leave entry {item}: expected [node, leave round, return round]")
        node, leave, back = item
        if not 0 <= node < cfg.nodes:
            raise ChurnError(
                f"churn.leave entry {item}: node {node} does not exist (nodes 0..{cfg.nodes - 1}); fix the node id"
            )
        if not 2 <= leave < back <= cfg.rounds:
            raise ChurnError(
                f"churn.leave entry {item}: rounds must satisfy 2 <= leave < return <= rounds={cfg.rounds}; "
                "a peer returns in a round after the one it leaves in"
            )
        if node in out or node in crashes:
            raise ChurnError(f"churn.leave entry {item}: node {node} already leaves or crashes; give it one entry")
        out[node] = (leave, back)
    return out
