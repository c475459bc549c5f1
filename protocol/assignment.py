"""The content of an ``assign`` message: who a peer is and what it must do."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from zmq.utils import z85

from protocol import config as config_mod
from protocol import messages as m
from protocol.codec import ProtocolError, is_int
from protocol.config import RunConfig


@dataclass(frozen=True)
class Role:
    """Honest, or Byzantine with an attack name and its parameters."""

    byzantine: bool = False
    attack: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"byzantine": self.byzantine, "attack": self.attack, "params": dict(self.params)}

    @property
    def label(self) -> str:
        return f"byzantine:{self.attack}" if self.byzantine else "honest"


@dataclass
class Assignment:
    """Everything the node core needs to run: id, neighbors, role, config, shard."""

    node: int
    num_nodes: int
    neighbors: list[int]
    role: Role
    config: RunConfig
    shard: np.ndarray
    chunk_sizes: list[int] = field(default_factory=list)  #: length of each chunk of the model
    #: Byzantine peers only: the other Byzantine peers (the collusion channel)
    colluders: list[int] = field(default_factory=list)
    #: honest peers in oracle mode only: the Byzantine peers that receive its whole model
    oracle_targets: list[int] = field(default_factory=list)
    #: Byzantine peers only: neighbor id -> (its degree n_j, Byzantine among its neighbors f_j)
    neighborhoods: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: a run whose graph changes (topology.dynamic): the peers round 1's chunks come from;
    #: ``neighbors`` then lists every peer it may exchange chunks with in some round
    receive_from: list[int] | None = None
    #: churn: the first round this peer takes part in, when later than 1 (receive_from is
    #: that round's senders); a new peer (churn.join) also gets its model sources then
    first_round: int | None = None
    join_from: list[int] = field(default_factory=list)

    def linked(self) -> list[int]:
        """Every peer this one sends to: neighbors, colluders, oracle targets."""
        return sorted({*self.neighbors, *self.colluders, *self.oracle_targets})


@dataclass(frozen=True)
class CurveKeys:
    """A peer's own CURVE key pair (made by the peer before it registers; the secret key
    never leaves it) and the public keys of the peers it exchanges data with (from
    ``assign``), all as 40-character Z85 text (``zmq.curve_keypair()``, decoded)."""

    public: str
    secret: str
    #: peer id -> public key, for every peer this one sends to or accepts data from
    peers: dict[int, str] = field(default_factory=dict)


def peers_to_dict(peers: dict[int, str]) -> dict[str, Any]:
    """The ``assign`` → ``curve`` map: ``{"peers": [{"id", "key"}, ...]}`` sorted by id."""
    return {"peers": [{"id": j, "key": k} for j, k in sorted(peers.items())]}


def partners(plans: dict[int, Assignment]) -> dict[int, set[int]]:
    """For each peer of ``plans``, everyone it sends to (``linked()``) or receives from
    (those whose ``linked()`` holds it): the peers its ``curve`` and ``mac`` maps list."""
    talks = {node: set(a.linked()) for node, a in plans.items()}
    for node, a in plans.items():
        for j in a.linked():
            talks.setdefault(j, set()).add(node)
    return {node: talks[node] for node in plans}


def curve_keys(plans: dict[int, Assignment], public: dict[int, str]) -> dict[int, dict[int, str]]:
    """For each peer of ``plans``, the registered public keys (``public``) of its
    :func:`partners`: its ``assign`` → ``curve`` map."""
    return {node: {j: public[j] for j in sorted(talks) if j in public} for node, talks in partners(plans).items()}


def is_z85_key(value: Any) -> bool:
    """A 40-character Z85 string that decodes to a 32-byte CURVE key."""
    if not (isinstance(value, str) and len(value) == 40 and value.isascii()):
        return False
    try:
        return len(z85.decode(value.encode())) == 32
    except (ValueError, KeyError, struct.error):  # a character outside Z85, a value >= 2**32
        return False


def listed_peers(
    msg: m.Message, name: str, valid: Callable[[dict[str, Any]], bool], *, once: bool = False
) -> list[dict[str, Any]] | None:
    """The entries of an ``assign`` field ``name`` = ``{"peers": [{"id": j, ...}, ...]}``
    (None when the field is absent): each a map whose ``id`` is another node of the run
    (listed only once, with ``once``) and for which ``valid`` holds;
    ProtocolError('bad_assignment') naming the first entry that is not."""
    entry = msg.fields.get(name)
    if entry is None:
        return None
    listed = entry.get("peers")
    seen: set[int] = set()
    for item in listed if isinstance(listed, list) else [None]:
        if not (
            isinstance(item, dict)
            and is_int(item.get("id"))
            and 0 <= item["id"] < msg["num_nodes"]
            and item["id"] != msg["node"]
            and not (once and item["id"] in seen)
            and valid(item)
        ):
            raise ProtocolError("bad_assignment", f"bad {name} peer entry {item!r}")
        seen.add(item["id"])
    return listed


def curve_peers(msg: m.Message) -> dict[int, str] | None:
    """The ``curve`` field of an ``assign`` message: peer id -> public key (None when the
    run does not use CURVE); ProtocolError('bad_assignment') if it is malformed."""
    listed = listed_peers(msg, "curve", lambda item: is_z85_key(item.get("key")))
    return None if listed is None else {item["id"]: item["key"] for item in listed}


def to_message(
    a: Assignment,
    addresses: dict[int, str],
    curve: dict[int, str] | None = None,
    *,
    resume: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    init: np.ndarray | None = None,
    mac: dict[str, Any] | None = None,
) -> m.Message:
    """The ``assign`` message for ``a``; ``addresses`` maps peer id -> data address;
    ``curve`` (CURVE runs only) maps peer id -> public key for the peers it talks to;
    ``resume``, ``model``, ``init`` and ``mac`` as in :func:`protocol.messages.assign`."""
    links = [{"id": j, "addr": addresses[j], "kind": "collude"} for j in a.colluders]
    links += [{"id": j, "addr": addresses[j], "kind": "oracle"} for j in a.oracle_targets]
    # a run whose graph changes lists the peers registered so far; those whose process
    # registers later (churn slots) come with peer_joined
    listed = [j for j in a.neighbors if j in addresses] if a.receive_from is not None else a.neighbors
    return m.assign(
        node=a.node,
        num_nodes=a.num_nodes,
        neighbors=[{"id": j, "addr": addresses[j]} for j in listed],
        role=a.role.to_dict(),
        config=a.config.to_dict(),
        chunk_sizes=list(a.chunk_sizes),
        shard=a.shard,
        links=links,
        neighborhoods=[{"id": j, "degree": d, "byzantine": f} for j, (d, f) in sorted(a.neighborhoods.items())],
        curve=peers_to_dict(curve) if curve is not None else None,
        resume=resume,
        model=model,
        init=init,
        mac=mac,
        receive_from=list(a.receive_from) if a.receive_from is not None else None,
        first_round=a.first_round,
        join_from=list(a.join_from) or None,
    )


def from_message(msg: m.Message) -> tuple[Assignment, dict[int, str]]:
    """Parse and check an ``assign`` message; ProtocolError('bad_assignment') if wrong."""
    num_nodes, node = msg["num_nodes"], msg["node"]
    if not 0 <= node < num_nodes:
        raise ProtocolError("bad_assignment", f"node {node} outside 0..{num_nodes - 1}")
    addresses: dict[int, str] = {}
    for entry in msg["neighbors"]:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), int)
            and isinstance(entry.get("addr"), str)
            and 0 <= entry["id"] < num_nodes
            and entry["id"] != node
        ):
            raise ProtocolError("bad_assignment", f"bad neighbor entry {entry!r}")
        addresses[entry["id"]] = entry["addr"]
    role = msg["role"]
    if not (
        isinstance(role.get("byzantine"), bool)
        and isinstance(role.get("attack"), str)
        and isinstance(role.get("params"), dict)
    ):
        raise ProtocolError("bad_assignment", "role needs byzantine, attack and params")
    try:
        cfg = config_mod.from_dict(msg["config"])
    except config_mod.ConfigError as exc:
        raise ProtocolError("bad_assignment", f"config: {exc}") from None
    if cfg.nodes != num_nodes:
        raise ProtocolError("bad_assignment", f"config.nodes={cfg.nodes} differs from num_nodes={num_nodes}")
    sizes = msg["chunk_sizes"]
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ProtocolError("bad_assignment", "chunk_sizes must be positive integers")
    if len(sizes) != cfg.chunks.count:
        raise ProtocolError(
            "bad_assignment", f"{len(sizes)} chunk_sizes for config.chunks.count={cfg.chunks.count} chunks"
        )
    if len(msg.arrays) not in (1, 2):
        raise ProtocolError(
            "bad_assignment", f"{len(msg.arrays)} array frames: the shard, then optionally the initial model"
        )
    shard = msg.arrays[0]
    if shard.ndim != 1 or shard.dtype != np.dtype("<i8"):
        raise ProtocolError("bad_assignment", "shard must be a 1-D int64 array")
    if shard.size and (shard[0] < 0 or bool(np.any(np.diff(shard) <= 0))):
        raise ProtocolError("bad_assignment", "shard indices must be >= 0 and strictly ascending")
    colluders: list[int] = []
    oracle_targets: list[int] = []
    for entry in msg.fields.get("links", []):
        if not (
            isinstance(entry, dict)
            and is_int(entry.get("id"))
            and isinstance(entry.get("addr"), str)
            and entry.get("kind") in ("collude", "oracle")
            and 0 <= entry["id"] < num_nodes
            and entry["id"] != node
        ):
            raise ProtocolError("bad_assignment", f"bad link entry {entry!r}")
        addresses[entry["id"]] = entry["addr"]
        (colluders if entry["kind"] == "collude" else oracle_targets).append(entry["id"])
    neighborhoods: dict[int, tuple[int, int]] = {}
    for entry in msg.fields.get("neighborhoods", []):
        if not (
            isinstance(entry, dict)
            and all(is_int(entry.get(k)) and entry[k] >= 0 for k in ("id", "degree", "byzantine"))
        ):
            raise ProtocolError("bad_assignment", f"bad neighborhood entry {entry!r}")
        neighborhoods[entry["id"]] = (entry["degree"], entry["byzantine"])
    neighbor_ids = sorted(e["id"] for e in msg["neighbors"])
    receive_from = msg.fields.get("receive_from")
    if receive_from is not None:  # a graph that changes: every other peer may become a neighbor
        if not all(is_int(j) and 0 <= j < num_nodes and j != node for j in receive_from):
            raise ProtocolError("bad_assignment", f"receive_from {receive_from!r} names no other peer of the run")
        neighbor_ids = [j for j in range(num_nodes) if j != node]
    first_round = msg.fields.get("first_round")
    if first_round is not None and first_round < 1:
        raise ProtocolError("bad_assignment", f"first_round {first_round} is below 1")
    join_from = msg.fields.get("join_from", [])
    if not all(is_int(j) and j in (receive_from or ()) for j in join_from):
        raise ProtocolError("bad_assignment", f"join_from {join_from!r} names a peer not in receive_from")
    assignment = Assignment(
        node=node,
        num_nodes=num_nodes,
        neighbors=neighbor_ids,
        role=Role(role["byzantine"], role["attack"], dict(role["params"])),
        config=cfg,
        shard=np.array(shard),
        chunk_sizes=list(sizes),
        colluders=sorted(colluders),
        oracle_targets=sorted(oracle_targets),
        neighborhoods=neighborhoods,
        receive_from=sorted(receive_from) if receive_from is not None else None,
        first_round=first_round,
        join_from=sorted(join_from),
    )
    return assignment, addresses
