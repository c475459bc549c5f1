"""Encoding and strict decoding of byzemu messages (msgpack header + raw array frames).

:func:`encode` turns a :class:`~protocol.messages.Message` into ZeroMQ frames without
copying the arrays; :func:`decode` checks every structural property of a received
message and raises :class:`ProtocolError` with a short machine-readable ``reason`` (used
as the drop counter's key) and a human-readable detail. Context checks that need the
receiver's state (is the sender a neighbor, is the round in the window, are chunk sizes
right) live with the receiver and raise the same error type.

:class:`ChunkCheck` is the data path's fast lane: one validation of a whole ``chunk``
message compiled once per run from what the receiver expects (its neighbors, the length
of each chunk of its model, the size limit). It accepts exactly the well-formed chunk
messages that fit, their arrays float32 views of the received frames (no copy), and
hands anything else back to :func:`decode` and the receiver's checks, which name the
reason of the drop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeGuard

import msgpack
import numpy as np

from protocol import messages as m

MAX_HEADER_BYTES = 1 << 20  #: frame 0 larger than this is rejected before unpacking


class ProtocolError(Exception):
    """A received message is malformed or unexpected; ``reason`` names the check."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _frame_spec(array: np.ndarray) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape)}


def encode(msg: m.Message) -> list[Any]:
    """Frames of ``msg``: the packed header, then one buffer per array (no copies)."""
    arrays = []
    for a in msg.arrays:
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        arrays.append(np.ascontiguousarray(a, dtype=dt))
    header = {
        "v": m.VERSION,
        "kind": msg.kind,
        "src": msg.src,
        "round": msg.round,
        "frames": [_frame_spec(a) for a in arrays],
        **msg.fields,
    }
    packed = msgpack.packb(header, use_bin_type=True)
    return [packed, *(a.data.cast("B") for a in arrays)]


def _buffer(frame: Any) -> memoryview:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return memoryview(frame)
    return memoryview(frame.buffer)  # zmq.Frame


def decode(
    frames: Sequence[Any],
    *,
    allowed: frozenset[str] = m.KINDS,
    max_bytes: int = 64 * 1024 * 1024,
) -> m.Message:
    """Decode and structurally validate one multipart message.

    Checks, in order: total size, header size, msgpack validity, header is a map,
    protocol version, kind known and allowed here, ``src``/``round`` integers, kind
    fields present with the right types, frame list matches the array frames (count,
    dtype, shape, byte length). Arrays are returned as read-only views of the frames.
    """
    if not frames:
        raise ProtocolError("empty", "no frames")
    buffers = [_buffer(f) for f in frames]
    total = sum(b.nbytes for b in buffers)
    if total > max_bytes:
        raise ProtocolError("oversized", f"{total} bytes > limit {max_bytes}")
    head = buffers[0]
    if head.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError("oversized", f"header of {head.nbytes} bytes")
    try:
        header = msgpack.unpackb(head, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ProtocolError("undecodable", f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header is not a map")
    if not is_int(header.get("v")) or header.get("v") != m.VERSION:
        raise ProtocolError("bad_version", f"version {header.get('v')!r}, expected {m.VERSION}")
    kind = header.get("kind")
    if not isinstance(kind, str) or kind not in m.KINDS:
        raise ProtocolError("bad_kind", f"unknown kind {kind!r}")
    if kind not in allowed:
        raise ProtocolError("unexpected_kind", f"{kind!r} is not accepted on this socket")
    src, round_ = header.get("src"), header.get("round")
    if not is_int(src) or not is_int(round_) or round_ < 0:
        raise ProtocolError("bad_field", "src and round must be integers, round >= 0")
    fields: dict[str, Any] = {}
    for name, types in m.SCHEMAS[kind].items():
        value = header.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise ProtocolError("bad_field", f"{kind}.{name} missing or of wrong type")
        fields[name] = value
    for name, types in m.OPTIONAL.get(kind, {}).items():
        if name in header:
            value = header[name]
            if not isinstance(value, types) or isinstance(value, bool):
                raise ProtocolError("bad_field", f"{kind}.{name} of wrong type")
            fields[name] = value
    specs = header.get("frames")
    if not isinstance(specs, list):
        raise ProtocolError("bad_frames", "frames must be a list")
    expected = m.FRAME_COUNT[kind]
    if len(specs) != len(buffers) - 1 or (expected is not None and len(specs) != expected):
        raise ProtocolError("bad_frames", f"{len(buffers) - 1} array frames, header lists {len(specs)}")
    arrays = [_array(spec, buf) for spec, buf in zip(specs, buffers[1:])]
    return m.Message(kind, src, round_, fields, arrays)


class FittedChunk(m.Message):
    """A ``chunk`` message that :class:`ChunkCheck` decoded and checked against the
    receiver's model (sender a neighbor, indices, count, dtypes, lengths): the receiver
    skips its own payload check for it."""


#: the header keys of a chunk message, exactly (anything more takes the generic path)
_CHUNK_KEYS = frozenset({"v", "kind", "src", "round", "frames", "chunks"})


class ChunkCheck:
    """One compiled validation of a ``chunk`` message for one receiver.

    Built once per run from the senders the receiver accepts chunks from (its graph
    neighbors), the length of each chunk index of its model and the run's message size
    limit. :meth:`decode` returns a :class:`FittedChunk` (array frames as float32 views of
    the received buffers, no copy) when the message is exactly a well-formed chunk message
    that fits, and None for anything else, so that the caller runs :func:`decode` and its
    own payload check, which raise :class:`ProtocolError` with the reason. It never
    accepts a message that those would reject: every test below is at least as strict as
    theirs (header keys exactly these, ``int`` never ``bool``, each frame spec equal to
    ``{"dtype": "<f4", "shape": [length of that chunk]}``, the frame that many bytes,
    1..C-1 distinct in-range indices, one frame per index).
    """

    def __init__(self, *, senders: Sequence[int], sizes: Sequence[int], max_bytes: int) -> None:
        self._senders = frozenset(senders)
        self._specs = [{"dtype": "<f4", "shape": [n]} for n in sizes]
        self._nbytes = [4 * n for n in sizes]
        self._count = len(sizes)
        self._max_bytes = max_bytes

    def decode_data(self, frames: Sequence[Any]) -> m.Message:
        """A data-plane message from ``frames``: the compiled check first, and for anything
        it declines the generic :func:`decode` (which names the reason of a drop)."""
        return self.decode(frames) or decode(frames, allowed=m.DATA_PLANE, max_bytes=self._max_bytes)

    def decode(self, frames: Sequence[Any]) -> FittedChunk | None:
        n = len(frames) - 1
        if not 1 <= n < self._count:
            return None
        buffers = [_buffer(f) for f in frames]
        head = buffers[0]
        if head.nbytes > MAX_HEADER_BYTES or sum(b.nbytes for b in buffers) > self._max_bytes:
            return None
        try:
            header = msgpack.unpackb(head, raw=False, strict_map_key=True)
        except Exception:  # garbage: decode() names it
            return None
        if type(header) is not dict or header.keys() != _CHUNK_KEYS:
            return None
        v, src, round_ = header["v"], header["src"], header["round"]
        chunks, specs = header["chunks"], header["frames"]
        if (
            header["kind"] != m.CHUNK
            or type(v) is not int
            or v != m.VERSION
            or type(src) is not int
            or src not in self._senders
            or type(round_) is not int
            or round_ < 0
            or type(chunks) is not list
            or type(specs) is not list
            or len(chunks) != n
            or len(specs) != n
        ):
            return None
        expected, nbytes, count = self._specs, self._nbytes, self._count
        arrays = []
        for c, spec, buf in zip(chunks, specs, buffers[1:]):
            if (
                type(c) is not int
                or not 0 <= c < count
                or spec != expected[c]
                or type(spec["shape"][0]) is not int
                or buf.nbytes != nbytes[c]
            ):
                return None
            arrays.append(np.frombuffer(buf, dtype=_F4))
        if len(set(chunks)) != n:  # after the loop: every index is an int by now
            return None
        return FittedChunk(m.CHUNK, src, round_, {"chunks": chunks}, arrays)


_F4 = np.dtype("<f4")


def is_int(value: Any) -> TypeGuard[int]:
    """An int that is not a bool (msgpack decodes both; protocol fields want the int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _array(spec: Any, buf: memoryview) -> np.ndarray:
    if not isinstance(spec, dict):
        raise ProtocolError("bad_frames", "frame spec is not a map")
    name = spec.get("dtype")
    dtype = m.DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        raise ProtocolError("bad_dtype", f"dtype {spec.get('dtype')!r} not allowed")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(is_int(s) and s >= 0 for s in shape):
        raise ProtocolError("bad_frames", "shape must be a list of non-negative integers")
    count = math.prod(shape)  # exact (Python ints): a hostile shape cannot overflow
    if count * dtype.itemsize != buf.nbytes:
        raise ProtocolError("bad_frames", f"frame has {buf.nbytes} bytes, spec needs {count * dtype.itemsize}")
    try:
        return np.frombuffer(buf, dtype=dtype).reshape(shape)
    except ValueError:  # e.g. a dimension beyond numpy's limits next to a zero, > 64 dims
        raise ProtocolError("bad_frames", f"shape {shape} not representable") from None
