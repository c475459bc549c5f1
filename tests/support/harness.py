"""A raw-frame harness for byzemu's wire protocol, written from ``docs/PROTOCOL.md`` only.

The frames and messages here import nothing of byzemu: the harness speaks protocol
version 1, revision 2, with plain pyzmq, msgpack and numpy, so it tests the protocol as
specified rather than the project's own encoder, and it keeps working (or fails loudly)
when the implementation changes.

Three pieces:

* :func:`encode` / :func:`decode` -- one message <-> ZeroMQ frames (msgpack header map,
  then raw little-endian array frames described by ``header["frames"]``).
* :class:`ScriptedPeer` -- a peer whose every step is driven by the test: it registers
  with a real coordinator, receives its ``assign``, connects to its real neighbors, sends
  exactly the chunks the test asks for, collects the neighbors' chunks and reports the
  ``round_done`` metrics the test chooses. It can also open extra raw sockets to send
  arbitrary (hostile) frames.
* :class:`Cluster` -- a ``byzemu coordinator`` process and a ``byzemu peer --count N``
  process (real peers), plus :func:`read_results` for the run's results folder. The two are
  byzemu's own CLI, forked from the test worker's forkserver (``tests/support/commands.py``);
  the frames above are still the harness's own.

Typical use (see ``tests/test_protocol_harness.py``)::

    cfg = write_config(tmp_path, CONFIG)             # nodes = real peers + 1
    with Cluster(cfg, tmp_path / "run", peers=2) as cluster:
        cluster.start()                              # coordinator and real peers
        cluster.wait_listening()
        with ScriptedPeer(cluster.address) as sp:
            sp.register()
            assign = sp.accept_assignment()          # checks it, connects the neighbors
            sp.ready()
            for t in range(1, rounds + 1):
                sp.expect("round_start", round_=t)
                for j in sp.neighbor_ids:
                    sp.send_chunks(t, j, {0: vec0, 1: vec1})
                got = sp.recv_chunks(t)               # {sender: Message}
                sp.round_done(t, metrics={...})
            sp.expect("stop")
        cluster.wait()
    results = read_results(tmp_path / "run")         # rounds, summary, topology

To test a protocol change, edit the constants and :func:`encode`/:func:`decode` here to
the new wire format (or add a method to :class:`ScriptedPeer` for a new kind), change the
implementation, and rerun ``tests/test_protocol_harness.py`` and
``tests/test_hostile_input.py``: they fail wherever the implementation and the harness
(your reading of the spec) disagree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from tests.support import commands
from tests.support.waiting import wait_until

VERSION = 1
#: the protocol revision this harness speaks, stated in ``register`` (PROTOCOL.md, *Revisions*)
REVISION = 2
#: dtypes allowed in array frames (PROTOCOL.md, *Array frames*)
DTYPES = ("<f4", "<f8", "<i8")
#: message kinds of version 1
KINDS = ("register", "assign", "ready", "round_start", "round_done", "peer_failed", "stop", "chunk")
COORDINATOR_ID = -1


class ProtocolViolation(AssertionError):
    """The system under test sent something the spec does not allow (or nothing in time)."""


# ----------------------------------------------------------------------------- frames


def header(kind: str, src: int, round_: int = 0, **fields: Any) -> dict[str, Any]:
    """A header map without ``frames`` (:func:`encode` adds it from the arrays)."""
    return {"v": VERSION, "kind": kind, "src": src, "round": round_, **fields}


def encode(head: Mapping[str, Any], arrays: Sequence[np.ndarray] = ()) -> list[bytes]:
    """Frames of one message: packed ``head`` then each array's raw little-endian bytes.

    ``frames`` is filled in from ``arrays`` unless ``head`` already has it (so a test can
    send a header whose frame list lies about the frames that follow).
    """
    out = []
    for a in arrays:
        a = np.asarray(a)
        out.append(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")))
    head = dict(head)
    head.setdefault("frames", [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in out])
    return [msgpack.packb(head, use_bin_type=True), *(a.tobytes() for a in out)]


@dataclass
class Message:
    """A decoded message; ``routing_id`` is the connection's id on a ROUTER socket."""

    header: dict[str, Any]
    arrays: list[np.ndarray] = field(default_factory=list)
    routing_id: bytes | None = None

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def src(self) -> int:
        return self.header["src"]

    @property
    def round(self) -> int:
        return self.header["round"]

    def __getitem__(self, key: str) -> Any:
        return self.header[key]


def decode(frames: Sequence[bytes], routing_id: bytes | None = None) -> Message:
    """Decode one message strictly per the spec; :class:`ProtocolViolation` if it is not."""
    if not frames:
        raise ProtocolViolation("empty message")
    try:
        head = msgpack.unpackb(frames[0], raw=False)
    except Exception as exc:
        raise ProtocolViolation(f"header is not msgpack: {exc}") from None
    if not isinstance(head, dict):
        raise ProtocolViolation(f"header is not a map: {head!r}")
    if head.get("v") != VERSION or isinstance(head.get("v"), bool):
        raise ProtocolViolation(f"version {head.get('v')!r}")
    if head.get("kind") not in KINDS:
        raise ProtocolViolation(f"unknown kind {head.get('kind')!r}")
    for key in ("src", "round"):
        if not isinstance(head.get(key), int) or isinstance(head.get(key), bool):
            raise ProtocolViolation(f"{key} is not an int: {head!r}")
    specs = head.get("frames")
    if not isinstance(specs, list) or len(specs) != len(frames) - 1:
        raise ProtocolViolation(f"frames {specs!r} for {len(frames) - 1} array frames")
    arrays = []
    for spec, raw in zip(specs, frames[1:]):
        if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES:
            raise ProtocolViolation(f"dtype {spec.get('dtype')!r}")
        dtype = np.dtype(spec["dtype"])
        shape = spec["shape"]
        if int(np.prod(shape)) * dtype.itemsize != len(raw):
            raise ProtocolViolation(f"frame of {len(raw)} bytes for {spec}")
        arrays.append(np.frombuffer(raw, dtype=dtype).reshape(shape))
    return Message(head, arrays, routing_id)


def mac_tag(key: bytes, frames: Sequence[bytes]) -> bytes:
    """The sender MAC of a data message (PROTOCOL.md, *Sender MAC*): HMAC-SHA256 under the
    link key of ``u64le(len(f)) || f`` over the frames before the tag."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for f in frames:
        h.update(len(f).to_bytes(8, "little") + bytes(f))
    return h.digest()


#: kinds of the data plane (PROTOCOL.md, *Kinds*)
DATA_KINDS = ("chunk", "collude", "oracle")
ALL_KINDS = (*KINDS, "collude", "oracle")
MAX_HEADER = 1 << 20


class Dropped(Exception):
    """A received data message fails a check of PROTOCOL.md, *Validation and drops*."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_structure(frames: Sequence[bytes], max_bytes: int) -> Message:
    """The codec checks of a data message, in the spec's order; :class:`Dropped` names the
    first that fails."""
    if not frames:
        raise Dropped("empty")
    if sum(len(f) for f in frames) > max_bytes or len(frames[0]) > MAX_HEADER:
        raise Dropped("oversized")
    try:
        head = msgpack.unpackb(frames[0], raw=False)
    except Exception:
        raise Dropped("undecodable") from None
    if not isinstance(head, dict):
        raise Dropped("bad_header")
    if head.get("v") != VERSION or isinstance(head.get("v"), bool):
        raise Dropped("bad_version")
    kind = head.get("kind")
    if not isinstance(kind, str) or kind not in ALL_KINDS:
        raise Dropped("bad_kind")
    if kind not in DATA_KINDS:
        raise Dropped("unexpected_kind")
    if not all(isinstance(head.get(k), int) and not isinstance(head.get(k), bool) for k in ("src", "round")):
        raise Dropped("bad_field")
    if head["round"] < 0 or (kind == "chunk" and not isinstance(head.get("chunks"), list)):
        raise Dropped("bad_field")
    if kind == "collude" and not isinstance(head.get("items"), list):
        raise Dropped("bad_field")
    specs = head.get("frames")
    if not isinstance(specs, list) or len(specs) != len(frames) - 1 or (kind == "oracle" and len(specs) != 1):
        raise Dropped("bad_frames")
    arrays = []
    for spec, raw in zip(specs, frames[1:]):
        if not isinstance(spec, dict):
            raise Dropped("bad_frames")
        if spec.get("dtype") not in DTYPES:
            raise Dropped("bad_dtype")
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise Dropped("bad_frames")
        dtype = np.dtype(spec["dtype"])
        if int(np.prod(shape, dtype=object)) * dtype.itemsize != len(raw):
            raise Dropped("bad_frames")
        arrays.append(np.frombuffer(raw, dtype=dtype).reshape(shape))
    return Message(head, arrays)


# ----------------------------------------------------------------------------- scripted peer


class ScriptedPeer:
    """A protocol-level peer driven step by step by a test (see the module docstring).

    Sockets, as in PROTOCOL.md: a control DEALER connected to the coordinator, a data
    ROUTER bound on ``bind_host`` (random port), and after :meth:`accept_assignment` one
    data DEALER per neighbor with routing id ``str(node)``. Everything received is kept:
    ``control_log`` (control messages in order) and ``inbox[round][sender]`` (chunks).

    CURVE (PROTOCOL.md, *CURVE*): with ``coordinator_key`` the control DEALER is a CURVE
    client of the coordinator, and the peer makes its own data-plane key pair: the data
    ROUTER is bound as a CURVE server with it (this harness admits any client key), its
    public key goes out in ``register`` (``curve_key``), and the neighbor DEALERs are CURVE
    clients without routing id, with the neighbors' keys from ``assign`` → ``curve``.
    The data ROUTER is bound once, before ``register``, and never replaced.
    """

    def __init__(
        self,
        coordinator: str,
        *,
        bind_host: str = "127.0.0.1",
        coordinator_key: str | None = None,
        count_drops: bool = False,
    ) -> None:
        #: receiving side as the spec says: a bad data message is counted in ``drops`` by
        #: reason (not raised), the sender is checked (routing id, CURVE User-Id, MAC), the
        #: round window follows ``started``/``aggregated`` (set by the driver), and nothing
        #: is read from the data socket before the assignment
        self.count_drops = count_drops
        self.drops: dict[str, int] = defaultdict(int)
        self._reported_drops = 0  # sum of drops at the last round_done
        self.started = 0  # S: last round started (count_drops)
        self.aggregated = 0  # A: last round aggregated (count_drops)
        self.max_bytes = 64 * 1024 * 1024  # the run's runtime.max_message_bytes, from assign
        self.ctx = zmq.Context()
        self.authenticator: Any = None
        if count_drops and coordinator_key is not None:
            # a ZAP handler, so that every message carries its connection's User-Id (the
            # client's Z85 key here); any key is admitted, the sender is checked per message
            from zmq.auth import CURVE_ALLOW_ANY
            from zmq.auth.thread import ThreadAuthenticator

            self.authenticator = ThreadAuthenticator(self.ctx)
            self.authenticator.start()
            self.authenticator.configure_curve(domain="*", location=CURVE_ALLOW_ANY)
        self.ctrl = self._socket(zmq.DEALER)
        if coordinator_key is not None:
            public, secret = zmq.curve_keypair()
            self.ctrl.curve_publickey, self.ctrl.curve_secretkey = public, secret
            self.ctrl.curve_serverkey = coordinator_key.encode()
        self.ctrl.connect(coordinator)
        self.coordinator = coordinator
        self.data = self._socket(zmq.ROUTER)
        self.data_keys: tuple[bytes, bytes] | None = None  # (public, secret) of the data plane
        if coordinator_key is not None:
            self.data_keys = zmq.curve_keypair()
            self.data.curve_server = True
            self.data.curve_secretkey = self.data_keys[1]
        port = self.data.bind_to_random_port(f"tcp://{bind_host}")
        self.data_addr = f"tcp://{bind_host}:{port}"
        self.poller = zmq.Poller()
        self.poller.register(self.ctrl, zmq.POLLIN)
        if not count_drops:
            self.poller.register(self.data, zmq.POLLIN)
        self.node: int | None = None
        self.assignment: Message | None = None
        self.neighbors: dict[int, str] = {}  # id -> data address
        self.chunk_sizes: list[int] = []
        self.out: dict[int, zmq.Socket] = {}  # neighbor id -> data DEALER
        self.failed: set[int] = set()
        self.control_log: list[Message] = []
        self._pending: list[Message] = []  # control messages not yet taken by expect()
        self.inbox: dict[int, dict[int, Message]] = defaultdict(dict)
        self.data_log: list[Message] = []
        self.sent_msgs = 0
        self.sent_bytes = 0
        self.curve: dict[str, Any] | None = None  # the assign's "curve" map, in CURVE runs
        self.peer_keys: dict[int, str] = {}  # peer id -> CURVE public key
        #: sender MAC runs (assign -> mac): peer id -> key of the link to it / from it
        self.mac_send: dict[int, bytes] = {}
        self.mac_recv: dict[int, bytes] = {}

    def _socket(self, kind: int, routing_id: bytes | None = None) -> zmq.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 2000)
        if routing_id is not None:
            s.setsockopt(zmq.ROUTING_ID, routing_id)
        return s

    # -- context manager -----------------------------------------------------------

    def __enter__(self) -> ScriptedPeer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
        self.ctx.destroy(linger=500)

    # -- receiving -----------------------------------------------------------------

    def pump(self, timeout: float) -> None:
        """Receive whatever arrives within ``timeout`` seconds (at least one poll)."""
        for sock, _ in self.poller.poll(max(0, int(timeout * 1000))):
            if sock is self.ctrl:
                msg = decode(self.ctrl.recv_multipart())
                if msg.src != COORDINATOR_ID:
                    raise ProtocolViolation(f"control message with src {msg.src}")
                if msg.kind == "peer_failed":
                    self.failed.update(msg["nodes"])
                self.control_log.append(msg)
                self._pending.append(msg)
            elif self.count_drops:
                self._receive_counted()
            else:
                routing_id, *frames = self.data.recv_multipart()
                if self.mac_recv:
                    *frames, got = frames
                    src = msgpack.unpackb(frames[0], raw=False).get("src") if frames else None
                    if src not in self.mac_recv or not hmac.compare_digest(mac_tag(self.mac_recv[src], frames), got):
                        raise ProtocolViolation(f"a data message claiming src {src!r} without a valid MAC")
                msg = decode(frames, routing_id)
                self.data_log.append(msg)
                if msg.kind != "chunk":
                    raise ProtocolViolation(f"{msg.kind} on the data plane")
                if msg.src in self.inbox[msg.round]:
                    raise ProtocolViolation(f"two round-{msg.round} chunk messages from {msg.src}")
                self.inbox[msg.round][msg.src] = msg

    def _receive_counted(self) -> None:
        """One data message, checked in the spec's order; filed in ``inbox`` or counted."""
        parts = self.data.recv_multipart(copy=False)
        routing_id, frames = parts[0].bytes, [f.bytes for f in parts[1:]]
        user_id = str(parts[1].get("User-Id")) if self.curve is not None and len(parts) > 1 else None
        try:
            if self.mac_recv:
                if len(frames) < 2 or len(frames[-1]) != 32:
                    raise Dropped("bad_mac")
                *frames, got = frames
            msg = check_structure(frames, self.max_bytes)
            if self.mac_recv:
                key = self.mac_recv.get(msg.src)
                if key is None or not hmac.compare_digest(mac_tag(key, frames), got):
                    raise Dropped("bad_mac")
            if self.curve is not None:
                owners = {key: j for j, key in self.peer_keys.items()}
                if owners.get(user_id or "") != msg.src:
                    raise Dropped("key_mismatch")
            elif routing_id != str(msg.src).encode():
                raise Dropped("sender_mismatch")
            if msg.src in self.failed:
                raise Dropped("failed_sender")
            self._check_content(msg)
            if msg.round <= self.aggregated:
                raise Dropped("stale_round")
            if msg.round > self.started + 1:
                raise Dropped("future_round")
            if msg.src in self.inbox[msg.round]:
                raise Dropped("duplicate")
        except Dropped as drop:
            self.drops[drop.reason] += 1
            return
        self.data_log.append(msg)
        self.inbox[msg.round][msg.src] = msg

    def _check_content(self, msg: Message) -> None:
        """The kind's content checks (an honest peer without oracle mode)."""
        if msg.kind == "collude":
            raise Dropped("not_colluder")
        if msg.kind == "oracle":
            raise Dropped("unexpected_kind")
        if msg.src not in self.neighbors:
            raise Dropped("not_neighbor")
        chunks, count = msg["chunks"], len(self.chunk_sizes)
        if len(chunks) != len(msg.arrays):
            raise Dropped("bad_chunks")
        if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < count for c in chunks):
            raise Dropped("bad_chunk_index")
        if len(set(chunks)) != len(chunks):
            raise Dropped("bad_chunks")
        if not 1 <= len(chunks) < count:
            raise Dropped("bad_chunk_count")
        for c, a in zip(chunks, msg.arrays):
            if a.dtype.str != "<f4" or a.shape != (self.chunk_sizes[c],):
                raise Dropped("bad_chunk_size")

    def expect(
        self, kind: str, *, round_: int | None = None, timeout: float = 15.0, skip: Iterable[str] = ()
    ) -> Message:
        """The next control message, which must be ``kind`` (kinds in ``skip`` are passed over)."""
        skip = set(skip)
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                msg = self._pending.pop(0)
                if msg.kind in skip:
                    continue
                if msg.kind != kind or (round_ is not None and msg.round != round_):
                    raise ProtocolViolation(
                        f"expected {kind} (round {round_}), got {msg.kind} (round {msg.round}): {msg.header}"
                    )
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolViolation(f"no {kind} (round {round_}) within {timeout:g} s")
            self.pump(min(left, 0.2))

    def recv_chunks(
        self, round_: int, *, timeout: float = 15.0, senders: Iterable[int] | None = None
    ) -> dict[int, Message]:
        """Wait until a round-``round_`` chunk message from each of ``senders`` arrived.

        ``senders`` defaults to every live neighbor. Returns ``{sender: Message}``.
        """
        want = set(self.neighbors) - self.failed if senders is None else set(senders)
        deadline = time.monotonic() + timeout
        while not want <= set(self.inbox[round_]):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(want - set(self.inbox[round_]))
                raise ProtocolViolation(f"no round-{round_} chunks from {missing} within {timeout:g} s")
            self.pump(min(left, 0.2))
        return {j: self.inbox[round_][j] for j in sorted(want)}

    # -- sending -------------------------------------------------------------------

    def send_control(self, head: Mapping[str, Any], arrays: Sequence[np.ndarray] = ()) -> None:
        self.ctrl.send_multipart(encode(head, arrays))

    def register(
        self, *, host: str = "scripted", pid: int | None = None, data_addr: str | None = None, want_init: bool = False
    ) -> None:
        """``register``; ``want_init``: ask for the initial model's vector in ``assign``."""
        extra: dict[str, Any] = {"revision": REVISION}
        if self.data_keys is not None:
            extra["curve_key"] = self.data_keys[0].decode()
        if want_init:
            extra["want_init"] = 1
        self.send_control(
            header(
                "register",
                -1,
                data_addr=data_addr or self.data_addr,
                host=host,
                pid=os.getpid() if pid is None else pid,
                **extra,
            )
        )

    def accept_assignment(self, *, timeout: float = 30.0) -> Message:
        """Wait for ``assign``, remember it and connect one DEALER per neighbor (as a CURVE
        client with the neighbor's key when the ``assign`` carries ``curve``)."""
        msg = self.expect("assign", timeout=timeout)
        self.assignment = msg
        self.node = msg["node"]
        self.neighbors = {n["id"]: n["addr"] for n in msg["neighbors"]}
        self.chunk_sizes = list(msg["chunk_sizes"])
        if "curve" in msg.header:
            self.curve = msg["curve"]
            self.peer_keys = {e["id"]: e["key"] for e in self.curve["peers"]}
        for e in msg.header.get("mac", {}).get("peers", []):
            self.mac_send[e["id"]], self.mac_recv[e["id"]] = bytes.fromhex(e["send"]), bytes.fromhex(e["recv"])
        self.max_bytes = msg["config"]["runtime"]["max_message_bytes"]
        for j, addr in self.neighbors.items():
            if self.curve is not None:
                s = self.dealer(addr, curve=self.curve_client(j))
            else:
                s = self._socket(zmq.DEALER, str(self.node).encode())
                s.connect(addr)
            self.out[j] = s
        if self.count_drops:  # set up: from now on read the data socket
            self.poller.register(self.data, zmq.POLLIN)
        return msg

    def curve_client(self, key_of: int) -> dict[str, bytes]:
        """CURVE client options for :meth:`dealer`: this peer's key pair, to the server of
        peer ``key_of``."""
        assert self.curve is not None and self.data_keys is not None, "not a CURVE run"
        return {"public": self.data_keys[0], "secret": self.data_keys[1], "server": self.peer_keys[key_of].encode()}

    @property
    def neighbor_ids(self) -> list[int]:
        return sorted(self.neighbors)

    def ready(self) -> None:
        self.send_control(header("ready", self._id()))

    def _id(self) -> int:
        if self.node is None:
            raise RuntimeError("not assigned yet")
        return self.node

    def chunk_frames(
        self, round_: int, chunks: Mapping[int, np.ndarray], *, src: int | None = None, **extra: Any
    ) -> list[bytes]:
        """Frames of a ``chunk`` message carrying ``chunks`` ({index: vector}, sorted by index)."""
        indices = sorted(chunks)
        head = header("chunk", self._id() if src is None else src, round_, chunks=indices, **extra)
        return encode(head, [np.asarray(chunks[c], dtype="<f4") for c in indices])

    def send_chunks(self, round_: int, neighbor: int, chunks: Mapping[int, np.ndarray], **kw: Any) -> None:
        """Send one ``chunk`` message to ``neighbor`` over this peer's DEALER to it."""
        self.send_raw(neighbor, self.chunk_frames(round_, chunks, **kw))

    def send_raw(self, neighbor: int, frames: Sequence[bytes], *, mac: bytes | None = None) -> None:
        """Send arbitrary frames over this peer's own data DEALER to ``neighbor``; in a
        sender-MAC run followed by their tag under this peer's key for that link (or under
        ``mac``, a key of the test's choosing: ``b""`` sends no tag at all)."""
        key = self.mac_send.get(neighbor) if mac is None else mac
        tail = [mac_tag(key, frames)] if key else []
        self.out[neighbor].send_multipart([*frames, *tail])
        self.sent_msgs += 1
        self.sent_bytes += sum(len(f) for f in frames)

    def round_done(
        self,
        round_: int,
        *,
        metrics: Mapping[str, Any],
        traffic: Mapping[str, Any] | None = None,
        timing: Mapping[str, Any] | None = None,
        src: int | None = None,
    ) -> None:
        """Report a round; ``traffic`` defaults to this peer's counters since the last report."""
        if traffic is None:
            total = sum(self.drops.values())
            traffic = {
                "sent_msgs": self.sent_msgs,
                "sent_bytes": self.sent_bytes,
                "recv_msgs": len(self.inbox[round_]),
                "recv_bytes": 0,
                "dropped": total - self._reported_drops,
                "drops_total": dict(self.drops),
            }
            self.sent_msgs = self.sent_bytes = 0
            self._reported_drops = total
        timing = timing or {"train_s": 0.0, "aggregate_s": 0.0, "exchange_s": 0.0, "round_s": 0.0}
        self.send_control(
            header(
                "round_done",
                self._id() if src is None else src,
                round_,
                metrics=dict(metrics),
                traffic=dict(traffic),
                timing=dict(timing),
            )
        )

    def dealer(
        self, addr: str, routing_id: bytes | None = None, *, curve: Mapping[str, bytes] | None = None
    ) -> zmq.Socket:
        """An extra raw DEALER connected to ``addr`` (e.g. a neighbor's data address, or
        the coordinator), optionally with a chosen routing id and as a CURVE client
        (``curve``: ``public``, ``secret``, ``server`` keys, see :meth:`curve_client`);
        closed with this peer.

        A ROUTER ignores a second connection that claims a routing id already connected,
        so pick ids that are not in use on the target (or use :meth:`send_raw`).
        """
        s = self._socket(zmq.DEALER, routing_id)
        if curve is not None:
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = curve["public"], curve["secret"], curve["server"]
        s.connect(addr)
        return s


# ----------------------------------------------------------------------------- cluster


def write_config(folder: Path, text: str, name: str = "config.toml") -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Cluster:
    """``byzemu coordinator`` + ``byzemu peer --count N`` as processes of their own on 127.0.0.1.

    Output of each goes to ``coordinator.log`` / ``peers.log`` next to the run folder
    (:meth:`logs` returns both, handy in assertion messages). Both processes run in their
    own process group, so :meth:`kill` also ends the forked peer processes.
    """

    def __init__(self, config: Path, run_dir: Path, *, peers: int) -> None:
        self.config = Path(config)
        self.run_dir = Path(run_dir)
        self.peer_count = peers
        self.log_dir = self.run_dir.parent
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.coordinator: commands.Command | subprocess.Popen[bytes] | None = None
        self.peers: commands.Command | subprocess.Popen[bytes] | None = None
        self.port = 0
        self.address = ""
        #: printed by a coordinator with CURVE on; read by :meth:`wait_listening`, so CURVE
        #: runs call :meth:`start_peers` after it (not :meth:`start`)
        self.coordinator_key: str | None = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()

    def _spawn(self, args: list[str], log_name: str, env: Mapping[str, str] | None = None) -> commands.Command:
        """``byzemu ARGS`` as a process of its own, forked from the worker's forkserver
        (``tests/support/commands.py``: the CLI's real code, without an interpreter's start
        and torch's import per process)."""
        return commands.start(args, self.log_dir / log_name, env)

    def start_coordinator(self) -> None:
        """``byzemu coordinator`` on a port the system picks (``tcp://127.0.0.1:*``, so
        tests running side by side never race for one); :meth:`wait_listening` reads the
        address it bound from its log."""
        self.coordinator = self._spawn(
            ["coordinator", str(self.config), "--bind", "tcp://127.0.0.1:*", "--out", str(self.run_dir), "--quiet"],
            "coordinator.log",
        )

    def start_peers(self, count: int | None = None) -> None:
        """``byzemu peer --count N``, with the config's ``runtime.max_message_bytes`` as the
        peers' ``--max-message-bytes`` (what ``byzemu launch`` passes its peers)."""
        table = tomllib.loads(self.config.read_text())
        limit = table.get("runtime", {}).get("max_message_bytes")
        self.peers = self._spawn(
            [
                "peer",
                "--coordinator",
                self.address,
                "--count",
                str(count or self.peer_count),
                "--bind-host",
                "127.0.0.1",
                *(["--max-message-bytes", str(limit)] if limit else []),
                *(["--coordinator-key", self.coordinator_key] if self.coordinator_key else []),
            ],
            "peers.log",
        )

    def start(self) -> None:
        """The coordinator, then (once it listens) the real peers: they need seconds to come
        up, so a scripted peer that registers as soon as this returns gets id 0."""
        self.start_coordinator()
        self.wait_listening()
        self.start_peers()

    def wait_listening(self, timeout: float = 180.0) -> None:
        """Block until the coordinator has bound its control socket."""

        def listening() -> re.Match[str] | None:
            return re.search(r"coordinator listening on (tcp://127\.0\.0\.1:(\d+));", self.log("coordinator.log"))

        found = wait_until(
            listening,
            timeout=timeout,
            what="coordinator listening",
            alive=lambda: self.coordinator is not None and self.coordinator.poll() is None,
            details=self.logs,
            interval=0.05,
        )
        self.address, self.port = found.group(1), int(found.group(2))
        key = re.search(r"coordinator public key (\S{40})", self.log("coordinator.log"))
        self.coordinator_key = key.group(1) if key else None

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.coordinator, self.peers))

    def wait(self, timeout: float = 180.0) -> tuple[int | None, int | None]:
        """Wait for both processes to exit; their return codes (None if still running)."""
        deadline = time.monotonic() + timeout
        codes: list[int | None] = []
        for p in (self.coordinator, self.peers):
            if p is None:
                codes.append(None)
                continue
            try:
                codes.append(p.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes[0], codes[1]

    def kill(self) -> None:
        for p in (self.peers, self.coordinator):
            if p is None or p.poll() is not None:  # exited (and reaped): nothing of ours left
                continue
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the group we created: CLI + forked peers
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def log(self, name: str) -> str:
        path = self.log_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n)}" for n in ("coordinator.log", "peers.log"))

    def wait_log(self, name: str, needles: Iterable[str], timeout: float = 120.0) -> None:
        """Wait until log ``name`` holds every string of ``needles`` (an event, e.g. a drop
        the system under test logged), while the processes stay alive."""
        needles = list(needles)

        def missing() -> list[str]:
            text = self.log(name)
            return [n for n in needles if n not in text]

        wait_until(
            lambda: not missing(),
            timeout=timeout,
            what=f"{needles} in {name}",
            alive=self.alive,
            details=lambda: f"missing {missing()}\n{self.logs()}",
        )


@dataclass
class Results:
    """The parsed results folder of one run."""

    rounds: list[dict[str, Any]]
    summary: dict[str, Any] | None
    topology: dict[str, Any] | None

    def peer(self, round_: int, node: int) -> dict[str, Any]:
        """``rounds.jsonl`` entry of ``node`` in ``round_`` (1-based)."""
        return self.rounds[round_ - 1]["peers"][str(node)]


def read_rounds(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``rounds.jsonl`` in ``run_dir``, one per round, in order; ``[]`` before
    the file exists. Only complete (newline-terminated) lines count, so a test may read the
    file of a run that is writing its next line."""
    path = Path(run_dir) / "rounds.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def read_results(run_dir: Path) -> Results:
    run_dir = Path(run_dir)

    def load(name: str) -> dict[str, Any] | None:
        path = run_dir / name
        return json.loads(path.read_text()) if path.exists() else None

    return Results(read_rounds(run_dir), load("summary.json"), load("topology.json"))
