"""Sender MACs on the data plane (``runtime.sender_mac``; docs/PROTOCOL.md, *Sender MAC*).

A receiver must know who sent a data message. With CURVE, libzmq knows: the ZAP handler
names the connection's peer and every message carries it as the ``User-Id`` property
(``zmq_msg_gets``). A binding that cannot read message properties cannot check that, so
this module gives a check that needs none: every data-plane message ends with one more
frame, a 32-byte tag

    tag = HMAC-SHA256(K[src -> dst], for each frame f of the message before the tag:
                                      u64le(len(f)) || f)

under a key of the directed link ``src -> dst``. The coordinator draws a run secret S
(32 random bytes) that never leaves it, derives

    K[i -> j] = HMAC-SHA256(S, b"byzemu-link" || i64le(i) || i64le(j))

and sends each peer, in ``assign`` → ``mac``, the keys of the links it sends on and
receives on, and no others: a peer can sign as itself towards each of its partners, and
cannot sign as anyone else (one run-wide secret in every assignment would let any peer,
a Byzantine one included, forge every other's messages). The receiver looks the key up
by the header's claimed ``src``: a forged ``src`` has no valid tag (``bad_mac``).

The tag covers the header (kind, src, round, chunk indices, frame specs) and every array
frame, length-prefixed so that frame boundaries cannot move; replays within a run are
caught by the round window and ``duplicate``. The tag frame is not listed in the header's
``frames`` and not counted in traffic (records are the same with and without it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from protocol import messages as m
from protocol.assignment import listed_peers
from protocol.codec import ProtocolError

TAG_BYTES = 32  #: HMAC-SHA256
_LINK = b"byzemu-link"


def run_secret() -> bytes:
    """A fresh run secret (the coordinator's; never sent)."""
    return os.urandom(32)


def link_key(secret: bytes, src: int, dst: int) -> bytes:
    """K[src -> dst] = HMAC-SHA256(secret, b"byzemu-link" || i64le(src) || i64le(dst))."""
    return hmac.new(secret, _LINK + struct.pack("<qq", src, dst), hashlib.sha256).digest()


def tag(key: bytes, frames: Iterable[Any]) -> bytes:
    """HMAC-SHA256 under ``key`` of ``u64le(len(f)) || f`` over ``frames`` (bytes-like or
    zmq.Frame), in order."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for f in frames:
        buf = memoryview(f.buffer if hasattr(f, "buffer") else f)
        h.update(struct.pack("<Q", buf.nbytes))
        h.update(buf)
    return h.digest()


def assignment_keys(secret: bytes, partners: Mapping[int, Iterable[int]]) -> dict[int, dict[str, Any]]:
    """The ``assign`` → ``mac`` map of each node: ``{"peers": [{"id": j, "send": hex of
    K[node -> j], "recv": hex of K[j -> node]}, ...]}`` over its partners, sorted by id."""
    return {
        node: {
            "peers": [
                {"id": j, "send": link_key(secret, node, j).hex(), "recv": link_key(secret, j, node).hex()}
                for j in sorted(peers)
            ]
        }
        for node, peers in partners.items()
    }


class LinkKeys:
    """One peer's link keys from its ``assign`` → ``mac``: it signs what it sends to j
    with ``send[j]`` and checks what claims to come from j with ``recv[j]``."""

    def __init__(self, send: dict[int, bytes], recv: dict[int, bytes]) -> None:
        self.send = send
        self.recv = recv

    @classmethod
    def from_assign(cls, msg: m.Message) -> LinkKeys | None:
        """The keys of an ``assign`` (None without ``mac``); ProtocolError('bad_assignment')
        for a malformed entry (an id out of range or this node, a key that is not 64
        lowercase hex digits, an id listed twice)."""
        listed = listed_peers(msg, "mac", lambda item: all(_is_key(item.get(k)) for k in ("send", "recv")), once=True)
        if listed is None:
            return None
        send = {item["id"]: bytes.fromhex(item["send"]) for item in listed}
        recv = {item["id"]: bytes.fromhex(item["recv"]) for item in listed}
        return cls(send, recv)

    def sign(self, to: int, frames: Sequence[Any]) -> list[Any]:
        """``frames`` followed by their tag for peer ``to``."""
        return [*frames, tag(self.send[to], frames)]

    def open(self, frames: Sequence[Any], decode: Callable[[Sequence[Any]], m.Message]) -> m.Message:
        """Split off the tag, ``decode`` the rest and check the tag under the key of the
        claimed sender; ProtocolError('bad_mac') when there is no tag frame of 32 bytes,
        no key for that sender, or the tag differs (decode's own errors pass through)."""
        if len(frames) < 2:
            raise ProtocolError("bad_mac", f"{len(frames)} frame(s): no tag frame")
        *body, last = frames
        got = bytes(memoryview(last.buffer if hasattr(last, "buffer") else last))
        if len(got) != TAG_BYTES:
            raise ProtocolError("bad_mac", f"last frame of {len(got)} bytes is not a {TAG_BYTES}-byte tag")
        msg = decode(body)
        key = self.recv.get(msg.src)
        if key is None:
            raise ProtocolError("bad_mac", f"no link key for claimed src {msg.src}")
        if not hmac.compare_digest(tag(key, body), got):
            raise ProtocolError("bad_mac", f"tag does not verify for claimed src {msg.src}")
        return msg


def _is_key(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 2 * TAG_BYTES and all(c in "0123456789abcdef" for c in value)
