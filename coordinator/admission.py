"""Whether a ``register`` may join the run (docs/PROTOCOL.md, *register* and *Revisions*).

The coordinator answers a ``register`` it refuses with ``stop``, reason
``"registration refused: " + why``, and counts it as ``registration_refused``; the peer
exits with status 1 and that reason. Checked in this order:

1. the protocol revision (``register.revision``, absent = 1) must equal
   :data:`protocol.messages.REVISION`: peers of another revision disagree on fields and
   rules that share ``v = 1``, so they are refused before they take an id;
2. in a CURVE run, ``curve_key`` must be a valid 40-character Z85 public key;
3. a stated ``max_message_bytes`` (the peer's data-socket frame limit, fixed when it
   bound the socket) must be at least the run's ``runtime.max_message_bytes``.
"""

from __future__ import annotations

from protocol import assignment as assignment_mod
from protocol import messages as m
from protocol.config import RunConfig


def refusal(msg: m.Message, *, cfg: RunConfig, curve: bool) -> str:
    """Why the ``register`` ``msg`` cannot join the run of ``cfg`` ("" if it can)."""
    revision = msg.fields.get("revision", 1)
    if revision != m.REVISION:
        return (
            f"this peer speaks protocol revision {revision}, the coordinator revision {m.REVISION}: "
            f"update the peer (docs/PROTOCOL.md, Revisions, lists the changes)"
        )
    if curve and not assignment_mod.is_z85_key(msg.fields.get("curve_key")):
        return "this run uses CURVE: register must carry curve_key, the peer's data-plane public key"
    limit = msg.fields.get("max_message_bytes")
    if limit is not None and limit < cfg.runtime.max_message_bytes:
        return (
            f"the run's runtime.max_message_bytes={cfg.runtime.max_message_bytes} exceeds the peer's "
            f"data-socket limit {limit}: start it with --max-message-bytes {cfg.runtime.max_message_bytes}"
        )
    return ""
