"""Message kinds of the byzemu wire protocol and the header fields each one carries.

``docs/PROTOCOL.md`` is the normative description; this module is its executable form.
Every message is a ZeroMQ multipart message: frame 0 is a msgpack map (the header), the
following frames are raw little-endian arrays described by the header's ``frames`` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

VERSION = 1  #: ``v`` of every header: the framing (msgpack header map + raw array frames)
#: the protocol revision a peer states in ``register`` (``revision``): which kinds, fields
#: and rules it follows (docs/PROTOCOL.md, *Revisions*); the coordinator refuses another one
REVISION = 2
COORDINATOR_ID = -1  #: ``src`` of messages sent by the coordinator
UNASSIGNED_ID = -1  #: ``src`` of a peer's ``register`` (it has no id yet)

#: dtypes allowed in array frames, as numpy little-endian type strings
DTYPES: dict[str, np.dtype[Any]] = {"<f4": np.dtype("<f4"), "<f8": np.dtype("<f8"), "<i8": np.dtype("<i8")}

# Kinds by plane and direction.
REGISTER = "register"
ASSIGN = "assign"
READY = "ready"
ROUND_START = "round_start"
ROUND_DONE = "round_done"
PEER_FAILED = "peer_failed"
STOP = "stop"
CHUNK = "chunk"
COLLUDE = "collude"
ORACLE = "oracle"
MODEL = "model"
PEER_JOINED = "peer_joined"

TO_COORDINATOR = frozenset({REGISTER, READY, ROUND_DONE})
TO_PEER_CONTROL = frozenset({ASSIGN, ROUND_START, PEER_FAILED, STOP, PEER_JOINED})
DATA_PLANE = frozenset({CHUNK, COLLUDE, ORACLE, MODEL})
KINDS = TO_COORDINATOR | TO_PEER_CONTROL | DATA_PLANE

_INT = (int,)
_STR = (str,)
_LIST = (list,)
_MAP = (dict,)
_NUM = (int, float)

#: required kind-specific header fields and their msgpack types
SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    REGISTER: {"data_addr": _STR, "host": _STR, "pid": _INT},
    ASSIGN: {
        "node": _INT,
        "num_nodes": _INT,
        "neighbors": _LIST,
        "role": _MAP,
        "config": _MAP,
        "chunk_sizes": _LIST,
    },
    READY: {},
    ROUND_START: {"failed": _LIST, "deadline": _NUM},
    ROUND_DONE: {"metrics": _MAP, "traffic": _MAP, "timing": _MAP},
    PEER_FAILED: {"nodes": _LIST, "reason": _STR},
    STOP: {"reason": _STR},
    PEER_JOINED: {"node": _INT, "addr": _STR},
    CHUNK: {"chunks": _LIST},
    COLLUDE: {"items": _LIST},
    ORACLE: {},
    MODEL: {},
}

#: optional kind-specific header fields (absent = empty) and their msgpack types
OPTIONAL: dict[str, dict[str, tuple[type, ...]]] = {
    REGISTER: {"curve_key": _STR, "max_message_bytes": _INT, "want_init": _INT, "revision": _INT, "node": _INT},
    ASSIGN: {
        "links": _LIST,
        "neighborhoods": _LIST,
        "curve": _MAP,
        "resume": _MAP,
        "model": _MAP,
        "mac": _MAP,
        "receive_from": _LIST,
        "first_round": _INT,
        "join_from": _LIST,
    },
    ROUND_START: {"checkpoint": _INT, "graph": _MAP},
    ROUND_DONE: {"checkpoint": _INT, "delivery": _MAP},
    PEER_JOINED: {"curve_key": _STR},
}

#: number of array frames a kind must carry (None = any number, checked per kind)
FRAME_COUNT: dict[str, int | None] = {
    REGISTER: 0,
    ASSIGN: None,  # the shard, and the initial model when the register asked (want_init = 1)
    READY: 0,
    ROUND_START: 0,
    ROUND_DONE: 0,
    PEER_FAILED: 0,
    STOP: 0,
    PEER_JOINED: 0,
    CHUNK: None,
    COLLUDE: None,
    ORACLE: 1,
    MODEL: 1,
}


@dataclass
class Message:
    """A decoded (or to-be-encoded) message: header fields plus array frames."""

    kind: str
    src: int
    round: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def _optional(**fields: Any) -> dict[str, Any]:
    """The optional header fields given (None = absent)."""
    return {k: v for k, v in fields.items() if v is not None}


def register(
    *,
    data_addr: str,
    host: str,
    pid: int,
    curve_key: str | None = None,
    max_message_bytes: int | None = None,
    want_init: bool = False,
    revision: int = REVISION,
    node: int | None = None,
) -> Message:
    """``revision``: the protocol revision the peer speaks (absent on the wire = 1);
    ``curve_key``: the peer's data-plane CURVE public key (CURVE runs); ``max_message_bytes``:
    the largest data message its data socket, bound before registering, accepts;
    ``want_init``: send the initial model's vector with the assignment; ``node``: the churn
    slot (a new or returning peer's node id) a process started after the assignment asks for."""
    fields: dict[str, Any] = {"data_addr": data_addr, "host": host, "pid": pid, "revision": revision}
    fields.update(
        _optional(
            curve_key=curve_key,
            max_message_bytes=max_message_bytes,
            want_init=1 if want_init else None,
            node=node,
        )
    )
    return Message(REGISTER, UNASSIGNED_ID, 0, fields)


def assign(
    *,
    node: int,
    num_nodes: int,
    neighbors: list[dict[str, Any]],
    role: dict[str, Any],
    config: dict[str, Any],
    chunk_sizes: list[int],
    shard: np.ndarray,
    links: list[dict[str, Any]] | None = None,
    neighborhoods: list[dict[str, Any]] | None = None,
    curve: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    init: np.ndarray | None = None,
    mac: dict[str, Any] | None = None,
    receive_from: list[int] | None = None,
    first_round: int | None = None,
    join_from: list[int] | None = None,
) -> Message:
    """``receive_from``: a run whose graph changes: whom round 1's chunks come from (of
    round ``first_round`` when the peer's first round is later, churn); ``join_from``: a new
    peer's model sources in that round (churn.join).
    Optional: ``links`` (colluders, oracle targets), ``neighborhoods`` (each
    neighbor's degree and Byzantine count), ``curve`` (peers' public keys), ``resume``
    (``{round, digest}`` of the checkpoint to load), ``model`` (layout and initial
    digest), ``mac`` (the link keys of ``runtime.sender_mac``, protocol/mac.py) and
    ``init``, the initial model's vector, as a second array frame."""
    fields: dict[str, Any] = {
        "node": node,
        "num_nodes": num_nodes,
        "neighbors": neighbors,
        "role": role,
        "config": config,
        "chunk_sizes": chunk_sizes,
    }
    fields.update(
        _optional(
            links=links,
            neighborhoods=neighborhoods,
            curve=curve,
            resume=resume,
            model=model,
            mac=mac,
            receive_from=receive_from,
            first_round=first_round,
            join_from=join_from,
        )
    )
    arrays = [np.ascontiguousarray(shard, "<i8")]
    if init is not None:
        arrays.append(init)
    return Message(ASSIGN, COORDINATOR_ID, 0, fields, arrays)


def ready(*, src: int) -> Message:
    return Message(READY, src, 0)


def round_start(
    *,
    round_: int,
    failed: list[int],
    deadline: float,
    checkpoint: int | None = None,
    graph: dict[str, Any] | None = None,
) -> Message:
    """``checkpoint``: the last round every peer checkpointed (older ones may go);
    ``graph``: the receiver's neighbors in a run whose graph changes (protocol/graph.py)."""
    fields = {"failed": failed, "deadline": deadline, **_optional(checkpoint=checkpoint, graph=graph)}
    return Message(ROUND_START, COORDINATOR_ID, round_, fields)


def round_done(
    *,
    src: int,
    round_: int,
    metrics: dict[str, Any],
    traffic: dict[str, Any],
    timing: dict[str, Any],
    checkpoint: int | None = None,
    delivery: dict[str, list[int]] | None = None,
) -> Message:
    """``checkpoint``: ``round_`` when the peer wrote its checkpoint of it; ``delivery``:
    the senders each of its inbox reads found (the run's delivery log)."""
    fields = {
        "metrics": metrics,
        "traffic": traffic,
        "timing": timing,
        **_optional(checkpoint=checkpoint, delivery=delivery),
    }
    return Message(ROUND_DONE, src, round_, fields)


def peer_failed(*, round_: int, nodes: list[int], reason: str) -> Message:
    return Message(PEER_FAILED, COORDINATOR_ID, round_, {"nodes": nodes, "reason": reason})


def peer_joined(*, round_: int, node: int, addr: str, curve_key: str | None = None) -> Message:
    """A peer's process registered after the assignment (churn.join, churn.leave): its data
    address (and, CURVE runs, its data-plane public key) for every live peer; ``round_``:
    the last round started."""
    return Message(PEER_JOINED, COORDINATOR_ID, round_, {"node": node, "addr": addr, **_optional(curve_key=curve_key)})


def stop(*, reason: str) -> Message:
    return Message(STOP, COORDINATOR_ID, 0, {"reason": reason})


def chunk(*, src: int, round_: int, chunks: dict[int, np.ndarray]) -> Message:
    """Chunk payloads for one neighbor and round: ``{chunk index: float32 vector}``."""
    indices = sorted(chunks)
    arrays = [np.ascontiguousarray(chunks[i], "<f4") for i in indices]
    return Message(CHUNK, src, round_, {"chunks": indices}, arrays)


def collude(*, src: int, round_: int, observed: dict[int, dict[int, np.ndarray]]) -> Message:
    """What a Byzantine peer observed this round, for its colluders:
    ``{honest sender: {chunk index: vector}}`` flattened into ``items = [[sender, chunk], ...]``."""
    items = [[s, c] for s in sorted(observed) for c in sorted(observed[s])]
    arrays = [np.ascontiguousarray(observed[s][c], "<f4") for s, c in items]
    return Message(COLLUDE, src, round_, {"items": items}, arrays)


def oracle(*, src: int, round_: int, vector: np.ndarray) -> Message:
    """An honest peer's whole trained model, sent to Byzantine peers in oracle mode only."""
    return Message(ORACLE, src, round_, {}, [np.ascontiguousarray(vector, "<f4")])


def model(*, src: int, round_: int, vector: np.ndarray) -> Message:
    """A peer's current model, sent before it trains to a new peer joining in that round
    (churn.join: the joiner's first model)."""
    return Message(MODEL, src, round_, {}, [np.ascontiguousarray(vector, "<f4")])
