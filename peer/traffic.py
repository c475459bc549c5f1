"""One peer's traffic counters and drop accounting, the same for both drivers.

The ZeroMQ runtime and the in-process reference count what a node hands to its
transport and what it accepts, over the same encoded frames (``protocol.codec.encode``),
so both report one ``traffic`` format in ``round_done`` and ``rounds.jsonl``
(docs/PROTOCOL.md, *round_done*, is its definition):

* ``sent_msgs``, ``sent_bytes`` (whole messages: msgpack header + array frames),
  ``sent_payload_bytes`` (array frames only), ``recv_msgs``, ``recv_bytes`` and
  ``dropped``: since the previous report;
* ``drops_total``: reason -> count since the start;
* ``late_from``: sender -> chunks that arrived after this peer's deadline for them (the
  round it aggregated last), since the previous report (``late`` drops, per sender).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("byzemu.peer")


def _nbytes(frame: Any) -> int:
    if hasattr(frame, "buffer"):  # zmq.Frame
        return memoryview(frame.buffer).nbytes
    return memoryview(frame).nbytes


@dataclass
class Traffic:
    """Counters of one peer's data-plane traffic (reset each report, drops cumulative)."""

    node: int = -1  #: for log lines (set once the peer has its id)
    sent_msgs: int = 0
    sent_bytes: int = 0
    sent_payload_bytes: int = 0
    recv_msgs: int = 0
    recv_bytes: int = 0
    dropped: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    late: Counter[int] = field(default_factory=Counter)  #: late chunks per sender (the inbox counts them)

    def count_sent(self, frames: Sequence[Any]) -> None:
        """One message of ``frames`` (header first) handed to a socket."""
        sizes = [_nbytes(f) for f in frames]
        self.sent_msgs += 1
        self.sent_bytes += sum(sizes)
        self.sent_payload_bytes += sum(sizes[1:])

    def count_received(self, frames: Sequence[Any]) -> None:
        """One message of ``frames`` (header first, no routing id) accepted."""
        self.recv_msgs += 1
        self.recv_bytes += sum(_nbytes(f) for f in frames)

    def drop(self, reason: str, detail: str, count: int = 1, *, logged: bool = True) -> None:
        """Count ``count`` dropped messages for ``reason``; log the first ten of each
        reason and then every hundredth (``logged=False``: the caller logged them)."""
        self.dropped += count
        self.drops[reason] += count
        total = self.drops[reason]
        if logged and (total <= 10 or total % 100 == 0):
            log.warning("peer %d dropped a message (%s, #%d): %s", self.node, reason, total, detail)

    def take(self) -> dict[str, Any]:
        """The report since the previous one (the ``traffic`` map); resets the counters."""
        out = {
            "sent_msgs": self.sent_msgs,
            "sent_bytes": self.sent_bytes,
            "sent_payload_bytes": self.sent_payload_bytes,
            "recv_msgs": self.recv_msgs,
            "recv_bytes": self.recv_bytes,
            "dropped": self.dropped,
            "drops_total": dict(self.drops),
            "late_from": {str(j): n for j, n in sorted(self.late.items())},
        }
        self.late.clear()
        self.sent_msgs = self.sent_bytes = self.sent_payload_bytes = 0
        self.recv_msgs = self.recv_bytes = self.dropped = 0
        return out
