"""A node's inbox: the data-plane messages it accepted, filed per kind, round and sender.

Both drivers file every data message here (the ZeroMQ runtime after decoding it off its
socket, the in-process reference after encoding and decoding it in memory), so the rules
of what a node accepts exist once:

* the payload fits this node's model and comes from a node allowed to send that kind
  (``NodeCore.check_payload`` / ``check_collusion`` / ``check_oracle``);
* its round lies in the window (last aggregated round, last started round + 1]: a round
  t+1 message that arrives while t is running is kept, an older one is ``stale_round``,
  a later one ``future_round``; a chunk of the round the node aggregated last, from a
  sender whose chunk it did not have then, missed the deadline: it is ``late``, and
  counted per sender (``Traffic.late``, the ``late_from`` of the round report);
* one message per kind, round and sender (a second is ``duplicate``);
* in a run whose graph changes, a chunk's sender must send to this node in the chunk's
  round (:meth:`Inbox.expect`); one that does not, e.g. a former neighbor still sending,
  is ``not_round_neighbor`` (also when it comes after the deadline: only a sender of that
  round can be ``late``). The senders of round t+1 are known from ``round_start(t)``
  (of round 1 from ``assign``), so an early round t+1 chunk is judged on arrival;
* a ``model`` (churn.join) only in the node's first round, from its ``join_from``.

A message that breaks a rule raises :class:`~protocol.codec.ProtocolError`; the caller
counts it as a drop. The round schedule (``peer/rounds.py``) reads what arrived with
:meth:`Inbox.arrived`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from peer.core import NodeCore
from peer.traffic import Traffic
from protocol import messages as m
from protocol.codec import FittedChunk, ProtocolError


class Inbox:
    """Per-round buffers of one node's accepted ``chunk``, ``collude``, ``oracle`` and
    ``model`` messages, with the round window they are accepted in."""

    def __init__(self, core: NodeCore, *, started: int = 0, traffic: Traffic | None = None) -> None:
        self.core = core
        self.started = started  #: last round started
        self.aggregated = started  #: last round aggregated
        self.traffic = traffic  #: counts late chunks per sender
        self._closed_chunks: set[int] = set()  #: senders whose chunk of the last aggregated round was in
        #: churn: the next round this node takes part in, when it skips rounds (0: started + 1)
        self.upcoming = 0
        self._buffers: dict[str, dict[int, dict[int, Any]]] = {kind: defaultdict(dict) for kind in m.DATA_PLANE}
        #: a graph that changes: round -> the peers whose chunks this node accepts in it
        #: (None: a static graph, where the payload check's neighbors decide)
        self.senders: dict[int, frozenset[int]] | None = None
        a = core.assignment
        #: churn: the round this node first takes part in (assign -> first_round)
        self.first = max(started + 1, a.first_round or 0)
        if self.first > started + 1:
            self.upcoming = self.first
        if a.receive_from is not None:  # assign names the first round's senders
            self.expect(self.first, a.receive_from)

    def expect(self, round_: int, senders: Iterable[int]) -> None:
        """A graph that changes: ``senders`` send this node chunks in ``round_``."""
        if self.senders is None:
            self.senders = {}
        self.senders[round_] = frozenset(senders)

    def start(self, round_: int) -> None:
        """Round ``round_`` starts: messages of rounds up to ``round_ + 1`` are accepted."""
        self.started = round_

    def accept(self, msg: m.Message) -> None:
        """File one decoded data message; ProtocolError if it breaks a rule above. Its
        sender's identity (routing id or CURVE key) is the transport's to check first."""
        core = self.core
        if msg.kind == m.CHUNK:
            if not isinstance(msg, FittedChunk):  # a FittedChunk passed core.chunk_check already
                core.check_payload(msg.src, msg["chunks"], msg.arrays)
            content: Any = dict(zip(msg["chunks"], msg.arrays))
        elif msg.kind == m.COLLUDE:
            content = core.check_collusion(msg.src, msg["items"], msg.arrays)
        elif msg.kind == m.ORACLE:
            core.check_oracle(msg.src, msg.arrays)
            content = msg.arrays[0]
        elif msg.kind == m.MODEL:  # a new peer's first model, from its join_from only
            if msg.round != self.first or msg.src not in core.assignment.join_from:
                raise ProtocolError("not_round_neighbor", f"round-{msg.round} model from {msg.src}, not a source")
            core.payload_check.whole_model(msg.arrays[0], "joining")
            content = msg.arrays[0]
        else:
            raise ProtocolError("unexpected_kind", f"{msg.kind} on the data plane")
        r = msg.round
        if msg.kind == m.CHUNK and r == self.aggregated >= 1:
            if self.senders is not None and msg.src not in self.senders.get(r, ()):
                raise ProtocolError("not_round_neighbor", f"round-{r} chunk from {msg.src}, not a sender of that round")
            if msg.src in self._closed_chunks:
                raise ProtocolError("duplicate", f"second round-{r} chunk from {msg.src}")
            self._closed_chunks.add(msg.src)
            if self.traffic is not None:
                self.traffic.late[msg.src] += 1
            raise ProtocolError("late", f"chunk round {r} from {msg.src} after this peer's deadline")
        if r <= self.aggregated:
            raise ProtocolError("stale_round", f"{msg.kind} round {r} from {msg.src}, at {self.aggregated}")
        if r > max(self.started + 1, self.upcoming):
            raise ProtocolError("future_round", f"{msg.kind} round {r} from {msg.src}, at {self.started}")
        if msg.kind == m.CHUNK and self.senders is not None and msg.src not in self.senders.get(r, ()):
            raise ProtocolError("not_round_neighbor", f"round-{r} chunk from {msg.src}, not a sender of that round")
        filed = self._buffers[msg.kind][r]
        if msg.src in filed:
            raise ProtocolError("duplicate", f"second round-{r} {msg.kind} from {msg.src}")
        filed[msg.src] = content

    def arrived(self, kind: str, round_: int) -> dict[int, Any]:
        """``{sender: content}`` of the round's ``kind`` messages so far (a copy): chunk
        payloads ``{index: vector}``, collusion views ``{sender: {index: vector}}``, or
        oracle models (one vector)."""
        return dict(self._buffers[kind].get(round_, {}))

    def missing(self, kind: str, round_: int, expected: frozenset[int] | set[int]) -> set[int]:
        """The senders in ``expected`` whose round-``round_`` ``kind`` message is not in."""
        return set(expected) - set(self._buffers[kind].get(round_, {}))

    def close(self, round_: int) -> None:
        """Round ``round_`` is aggregated: forget its messages (and any older); later
        messages of it are stale."""
        self.aggregated = round_
        self._closed_chunks = set(self._buffers[m.CHUNK].get(round_, {}))
        for buffers in self._buffers.values():
            for old in [r for r in buffers if r <= round_]:
                del buffers[old]
        # the senders of round_ stay: a chunk of it that comes late is judged by them
        for old in [r for r in self.senders or {} if r < round_]:
            del self.senders[old]  # type: ignore[union-attr]
