"""One peer's view of one round's graph, and its wire form (``round_start`` → ``graph``).

In a run whose graph changes between rounds (``topology.dynamic`` other than ``static``),
the coordinator tells each peer, in every ``round_start``, whom it sends its chunks to in
that round, whom it accepts chunks from, and whom it accepts chunks from in the *next*
round (a neighbor may send its round t+1 chunks before this peer has read
``round_start(t+1)``: the inbox must already know whether to keep them). A Byzantine
peer also gets, per peer it sends to, that peer's in-degree and Byzantine in-neighbors
in the round (what ``assign`` → ``neighborhoods`` says once in a static run).
docs/PROTOCOL.md, *Graph changes and churn*, specifies the fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.codec import ProtocolError, is_int


@dataclass(frozen=True)
class RoundGraph:
    """Whom one peer sends to and receives from in one round (sorted ids)."""

    send_to: tuple[int, ...]
    receive_from: tuple[int, ...]
    #: the peers it accepts chunks from in the next round (empty after the last round)
    next_receive_from: tuple[int, ...] = ()
    #: Byzantine peers only: peer it sends to -> (its in-degree, its Byzantine in-neighbors)
    neighborhoods: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: churn only: the round ``next_receive_from`` is for (the receiver's next round in
    #: the run; 0 = the next round, and no round left when that list is empty)
    next_round: int = 0
    #: churn only: every peer taking part in the round (empty = every peer)
    present: tuple[int, ...] = ()
    #: churn only: the new peers this one sends its current model to before training
    welcome: tuple[int, ...] = ()

    def to_fields(self) -> dict[str, Any]:
        """The ``graph`` map of ``round_start``."""
        out: dict[str, Any] = {
            "send_to": list(self.send_to),
            "receive_from": list(self.receive_from),
            "next_receive_from": list(self.next_receive_from),
        }
        if self.next_round:
            out["next_round"] = self.next_round
        if self.present:
            out["present"] = list(self.present)
        if self.welcome:
            out["welcome"] = list(self.welcome)
        if self.neighborhoods:
            out["neighborhoods"] = [
                {"id": j, "degree": d, "byzantine": f} for j, (d, f) in sorted(self.neighborhoods.items())
            ]
        return out


def from_fields(value: Any, *, node: int, num_nodes: int) -> RoundGraph:
    """Parse a ``round_start`` → ``graph`` map; ProtocolError('bad_field') if malformed
    (not a map, an id outside ``0..num_nodes-1``, the receiver itself, a repeated id)."""
    if not isinstance(value, dict):
        raise ProtocolError("bad_field", f"round_start graph is {type(value).__name__}, not a map")
    send_to, receive_from, following = (_ids(value.get(key), key, node=node, num_nodes=num_nodes) for key in _LISTS)
    neighborhoods: dict[int, tuple[int, int]] = {}
    for entry in value.get("neighborhoods", []) if isinstance(value.get("neighborhoods", []), list) else [None]:
        if not (
            isinstance(entry, dict)
            and all(is_int(entry.get(k)) and entry[k] >= 0 for k in ("id", "degree", "byzantine"))
        ):
            raise ProtocolError("bad_field", f"bad round_start graph neighborhood {entry!r}")
        neighborhoods[entry["id"]] = (entry["degree"], entry["byzantine"])
    next_round = value.get("next_round", 0)
    if not (is_int(next_round) and next_round >= 0):
        raise ProtocolError("bad_field", f"round_start graph next_round {next_round!r}")
    present = value.get("present", [])
    if not (isinstance(present, list) and all(is_int(j) and 0 <= j < num_nodes for j in present)):
        raise ProtocolError("bad_field", f"round_start graph present {present!r}")
    welcome = _ids(value.get("welcome", []), "welcome", node=node, num_nodes=num_nodes)
    return RoundGraph(send_to, receive_from, following, neighborhoods, next_round, tuple(sorted(set(present))), welcome)


_LISTS = ("send_to", "receive_from", "next_receive_from")


def _ids(value: Any, key: str, *, node: int, num_nodes: int) -> tuple[int, ...]:
    items: Iterable[Any] = value if isinstance(value, list) else [None]
    ids = []
    for j in items:
        if not (is_int(j) and 0 <= j < num_nodes and j != node):
            raise ProtocolError("bad_field", f"round_start graph {key} holds {j!r}")
        ids.append(j)
    if len(set(ids)) != len(ids):
        raise ProtocolError("bad_field", f"round_start graph {key} repeats an id")
    return tuple(sorted(ids))
