"""The compiled chunk check (``protocol.codec.ChunkCheck``, built by ``NodeCore``) on real
msgpack frames: it accepts exactly the well-formed chunk messages that fit the receiver,
as views of the frames, and never a message that the generic path (``codec.decode`` +
``NodeCore.check_payload``) would drop; what it declines, the generic path names.

Receiver: node 0 of a 3-peer complete graph, logistic regression (7,850 parameters) in 8
chunks: chunks 0 and 1 hold 982 values, chunks 2..7 hold 981 (7850 = 8 * 981 + 2).
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.plan import build_plan
from peer import data as datasets
from peer.core import NodeCore
from protocol import messages as m
from protocol.codec import ChunkCheck, FittedChunk, ProtocolError, decode, encode
from protocol.config import from_dict


@pytest.fixture(scope="module")
def core() -> NodeCore:
    cfg = from_dict(
        {
            "name": "chunk-check",
            "seed": 3,
            "nodes": 3,
            "rounds": 2,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "root": "", "synthetic_size": 30, "test_samples": 10},
            "model": {"name": "logreg"},
            "chunks": {"count": 8, "per_neighbor": 4},
        }
    )
    train = datasets.load("synthetic", None, train=True, synthetic_size=30, seed=3)
    test = datasets.load("synthetic", None, train=False, synthetic_size=30, seed=3)
    return NodeCore(build_plan(cfg).assignment(0), train_data=train, test_set=datasets.test_subset(test, 10))


def _frames(header: dict[str, Any], arrays: list[np.ndarray]) -> list[bytearray]:
    return [bytearray(msgpack.packb(header, use_bin_type=True)), *(bytearray(a.tobytes()) for a in arrays)]


def _good(src: int = 1, chunks: tuple[int, ...] = (0, 5)) -> tuple[dict[str, Any], list[np.ndarray]]:
    arrays = [np.full(982 if c < 2 else 981, c + 0.5, dtype="<f4") for c in chunks]
    header = {
        "v": 1,
        "kind": "chunk",
        "src": src,
        "round": 4,
        "chunks": list(chunks),
        "frames": [{"dtype": "<f4", "shape": [a.size]} for a in arrays],
    }
    return header, arrays


def _generic_reason(core: NodeCore, frames: list[bytearray]) -> str | None:
    """The generic path's verdict: None if it accepts, else the drop reason."""
    try:
        msg = decode(frames, allowed=m.DATA_PLANE)
        if msg.kind == m.CHUNK:
            core.check_payload(msg.src, msg["chunks"], msg.arrays)
    except ProtocolError as exc:
        return exc.reason
    return None


def test_well_formed_chunk_message_decodes_to_views_of_the_frames(core: NodeCore) -> None:
    frames = encode(m.chunk(src=2, round_=7, chunks={1: np.full(982, 1.5, "<f4"), 6: np.full(981, -2.0, "<f4")}))
    frames = [bytearray(f) for f in frames]

    msg = core.chunk_check.decode(frames)

    assert isinstance(msg, FittedChunk)
    assert (msg.kind, msg.src, msg.round, msg["chunks"]) == ("chunk", 2, 7, [1, 6])
    assert [a.shape for a in msg.arrays] == [(982,), (981,)]
    assert msg.arrays[0][0] == 1.5 and msg.arrays[1][980] == -2.0
    frames[1][0:4] = np.float32(9.0).tobytes()  # the array is the frame's memory, not a copy
    assert msg.arrays[0][0] == 9.0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, a: h.update(src=0), "not_neighbor"),  # itself
        (lambda h, a: h.update(src=3), "not_neighbor"),
        (lambda h, a: h.update(chunks=[0, 8]), "bad_chunk_index"),
        (lambda h, a: h.update(chunks=[0, True]), "bad_chunk_index"),
        (lambda h, a: h.update(chunks=[0, 0]), "bad_chunks"),
        (lambda h, a: h.update(chunks=[5, 0]), "bad_chunk_size"),  # 981 values under index 0 (982)
        (lambda h, a: h["frames"][1].update(dtype="<f8"), "bad_frames"),  # 981 * 8 bytes needed
        (lambda h, a: h["frames"][1].update(shape=[981.0]), "bad_frames"),
        (lambda h, a: h["frames"][1].update(shape=[3, 327]), "bad_chunk_size"),
        (lambda h, a: h.update(round=-1), "bad_field"),
        (lambda h, a: h.update(v=2), "bad_version"),
        (lambda h, a: h.update(kind="collude"), "bad_field"),
        (lambda h, a: h.update(src=True), "bad_field"),
    ],
)
def test_malformed_chunk_message_is_declined_and_named_by_the_generic_path(core, change, reason) -> None:
    header, arrays = _good()
    change(header, arrays)
    frames = _frames(header, arrays)

    fast = core.chunk_check.decode(frames)

    assert fast is None
    assert _generic_reason(core, frames) == reason


def test_whole_model_in_one_message_is_declined(core: NodeCore) -> None:
    header, arrays = _good(chunks=tuple(range(8)))
    frames = _frames(header, arrays)

    assert core.chunk_check.decode(frames) is None
    assert _generic_reason(core, frames) == "bad_chunk_count"


def test_oversized_chunk_message_is_declined() -> None:
    header, arrays = _good()
    frames = _frames(header, arrays)
    limit = sum(len(f) for f in frames) - 1

    check = ChunkCheck(senders=[1, 2], sizes=[982, 982, *[981] * 6], max_bytes=limit)

    assert check.decode(frames) is None
    with pytest.raises(ProtocolError, match="oversized"):
        decode(frames, allowed=m.DATA_PLANE, max_bytes=limit)


def test_extra_header_key_takes_the_generic_path_which_accepts_it(core: NodeCore) -> None:
    header, arrays = _good()
    header["note"] = "hello"
    frames = _frames(header, arrays)

    assert core.chunk_check.decode(frames) is None
    assert _generic_reason(core, frames) is None


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 1000),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.lists(st.integers(-1, 9), max_size=9),
    st.just([0, 5]),
    st.just({"dtype": "<f4", "shape": [981]}),
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(
        ["v", "kind", "src", "round", "chunks", "frames", "frames.0", "frames.1", "frames.1.dtype", "frames.1.shape"]
    ),
    value=_VALUES,
)
def test_compiled_check_never_accepts_what_the_generic_path_drops(core: NodeCore, key: str, value: Any) -> None:
    header, arrays = _good()
    target, *path = key.split(".")
    if not path:
        header[target] = value
    elif len(path) == 1:
        header[target][int(path[0])] = value
    else:
        header[target][int(path[0])][path[1]] = value
    frames = _frames(header, arrays)

    fast = core.chunk_check.decode(frames)
    generic = _generic_reason(core, frames)

    assert fast is None or generic is None, (key, value, generic)
