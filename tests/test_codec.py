"""Tests for protocol.codec (frames, strict decoding) and protocol.assignment."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from protocol import messages as m
from protocol.assignment import Assignment, Role, from_message, to_message
from protocol.codec import MAX_HEADER_BYTES, ProtocolError, decode, encode
from protocol.config import RunConfig, from_dict


def _frames(header: dict[str, Any], *arrays: bytes) -> list[bytes]:
    return [msgpack.packb(header, use_bin_type=True), *arrays]


def _chunk_header(**over: Any) -> dict[str, Any]:
    header = {
        "v": m.VERSION,
        "kind": m.CHUNK,
        "src": 2,
        "round": 3,
        "chunks": [0],
        "frames": [{"dtype": "<f4", "shape": [2]}],
    }
    header.update(over)
    return header


def _reason(frames: list[Any], **kw: Any) -> str:
    with pytest.raises(ProtocolError) as exc:
        decode(frames, **kw)
    return exc.value.reason


def _wire(frames: list[Any]) -> list[bytes]:
    """What a receiver gets: every frame as bytes."""
    return [bytes(f) for f in frames]


# ----------------------------------------------------------------------------- round trip


def test_round_trip_keeps_header_fields() -> None:
    msg = m.chunk(src=4, round_=9, chunks={5: np.zeros(3, np.float32), 1: np.ones(2, np.float32)})

    out = decode(_wire(encode(msg)))

    assert (out.kind, out.src, out.round, out["chunks"]) == ("chunk", 4, 9, [1, 5])


def test_round_trip_arrays_are_bit_equal_float32() -> None:
    a = np.array([1.5, -0.0, np.inf, np.nan, 3e-39], dtype=np.float32)
    msg = m.Message(m.CHUNK, 0, 1, {"chunks": [0]}, [a])

    (b,) = decode(_wire(encode(msg))).arrays

    assert b.dtype == np.dtype("<f4") and b.tobytes() == a.tobytes()


def test_round_trip_int64_array_keeps_shape_and_dtype() -> None:
    shard = np.arange(12, dtype=np.int64).reshape(3, 4)
    msg = m.Message(m.CHUNK, 0, 1, {"chunks": [0]}, [shard])

    (b,) = decode(_wire(encode(msg))).arrays

    assert b.dtype == np.dtype("<i8") and b.shape == (3, 4)
    np.testing.assert_array_equal(b, shard)


def test_big_endian_input_is_sent_little_endian_with_same_values() -> None:
    a = np.array([1.0, 2.5, -7.0], dtype=">f4")
    msg = m.Message(m.CHUNK, 0, 1, {"chunks": [0]}, [a])

    (b,) = decode(_wire(encode(msg))).arrays

    assert b.dtype == np.dtype("<f4") and b.tolist() == [1.0, 2.5, -7.0]


def test_round_trip_of_control_message_fields() -> None:
    msg = m.round_start(round_=4, failed=[1, 3], deadline=12.5)

    out = decode(_wire(encode(msg)))

    assert (out.src, out.round, out["failed"], out["deadline"]) == (-1, 4, [1, 3], 12.5)


def test_decoded_arrays_are_read_only_views() -> None:
    msg = m.chunk(src=0, round_=1, chunks={0: np.ones(4, np.float32)})

    (b,) = decode(_wire(encode(msg))).arrays

    assert not b.flags.writeable


def test_encode_does_not_copy_a_large_float32_array() -> None:
    a = np.arange(1 << 20, dtype=np.float32)
    msg = m.chunk(src=0, round_=1, chunks={0: a})

    frames = encode(msg)
    view = np.frombuffer(frames[1], dtype=np.float32)

    assert np.shares_memory(view, a)


def test_encode_frame_spec_lists_dtype_and_shape() -> None:
    msg = m.Message(m.CHUNK, 0, 1, {"chunks": [0]}, [np.zeros((2, 3), np.float32)])

    header = msgpack.unpackb(encode(msg)[0])

    assert header["frames"] == [{"dtype": "<f4", "shape": [2, 3]}]


def test_decode_accepts_memoryview_frames() -> None:
    msg = m.chunk(src=1, round_=2, chunks={0: np.full(3, 2.0, np.float32)})

    (b,) = decode(encode(msg)).arrays

    assert b.tolist() == [2.0, 2.0, 2.0]


# ----------------------------------------------------------------------------- size and header


def test_no_frames_is_empty() -> None:
    assert _reason([]) == "empty"


def test_total_size_above_limit_is_oversized() -> None:
    frames = _frames(_chunk_header(), b"\0" * 8)

    assert _reason(frames, max_bytes=len(frames[0]) + 7) == "oversized"


def test_total_size_at_limit_is_accepted() -> None:
    frames = _frames(_chunk_header(), b"\0" * 8)

    msg = decode(frames, max_bytes=len(frames[0]) + 8)

    assert msg.arrays[0].tolist() == [0.0, 0.0]


def test_header_above_header_limit_is_oversized() -> None:
    frames = [b"\x90" * (MAX_HEADER_BYTES + 1)]

    assert _reason(frames, max_bytes=4 * MAX_HEADER_BYTES) == "oversized"


def test_garbage_header_is_undecodable() -> None:
    assert _reason([b"\xc1"]) == "undecodable"


def test_header_with_trailing_bytes_is_undecodable() -> None:
    assert _reason([msgpack.packb({"v": 1}) + b"\x01"]) == "undecodable"


def test_msgpack_list_header_is_bad_header() -> None:
    assert _reason([msgpack.packb([1, "chunk", 0, 0])]) == "bad_header"


def test_wrong_version_is_bad_version() -> None:
    assert _reason(_frames(_chunk_header(v=2), b"\0" * 8)) == "bad_version"


def test_missing_version_is_bad_version() -> None:
    header = _chunk_header()
    del header["v"]

    assert _reason(_frames(header, b"\0" * 8)) == "bad_version"


def test_unknown_kind_is_bad_kind() -> None:
    assert _reason(_frames(_chunk_header(kind="gossip"), b"\0" * 8)) == "bad_kind"


def test_unhashable_kind_is_bad_kind() -> None:
    # Regression: a list kind raised TypeError from the set membership test.
    assert _reason(_frames(_chunk_header(kind=["chunk"]), b"\0" * 8)) == "bad_kind"


def test_known_kind_not_allowed_here_is_unexpected_kind() -> None:
    frames = _wire(encode(m.ready(src=1)))

    assert _reason(frames, allowed=m.DATA_PLANE) == "unexpected_kind"


def test_allowed_kind_is_accepted() -> None:
    frames = _wire(encode(m.ready(src=1)))

    assert decode(frames, allowed=m.TO_COORDINATOR).kind == "ready"


# ----------------------------------------------------------------------------- fields


def test_missing_kind_field_is_bad_field() -> None:
    header = _chunk_header()
    del header["chunks"]

    assert _reason(_frames(header, b"\0" * 8)) == "bad_field"


def test_bool_src_is_bad_field() -> None:
    assert _reason(_frames(_chunk_header(src=True), b"\0" * 8)) == "bad_field"


def test_bool_for_an_int_schema_field_is_bad_field() -> None:
    header = {
        "v": 1,
        "kind": m.REGISTER,
        "src": -1,
        "round": 0,
        "frames": [],
        "data_addr": "tcp://x:1",
        "host": "h",
        "pid": True,
    }

    assert _reason(_frames(header)) == "bad_field"


def test_negative_round_is_bad_field() -> None:
    assert _reason(_frames(_chunk_header(round=-1), b"\0" * 8)) == "bad_field"


def test_string_round_is_bad_field() -> None:
    assert _reason(_frames(_chunk_header(round="3"), b"\0" * 8)) == "bad_field"


def test_negative_src_is_accepted() -> None:
    assert decode(_frames(_chunk_header(src=-1), b"\0" * 8)).src == -1


# ----------------------------------------------------------------------------- frames


def test_more_array_frames_than_listed_is_bad_frames() -> None:
    assert _reason(_frames(_chunk_header(), b"\0" * 8, b"\0" * 8)) == "bad_frames"


def test_fewer_array_frames_than_listed_is_bad_frames() -> None:
    assert _reason(_frames(_chunk_header())) == "bad_frames"


def test_frame_count_fixed_by_kind_is_enforced() -> None:
    header = {"v": 1, "kind": m.READY, "src": 1, "round": 0, "frames": [{"dtype": "<f4", "shape": [1]}]}

    assert _reason(_frames(header, b"\0" * 4)) == "bad_frames"


def test_frames_not_a_list_is_bad_frames() -> None:
    assert _reason(_frames(_chunk_header(frames={"dtype": "<f4"}), b"\0" * 8)) == "bad_frames"


def test_frame_spec_not_a_map_is_bad_frames() -> None:
    assert _reason(_frames(_chunk_header(frames=["<f4"]), b"\0" * 8)) == "bad_frames"


def test_byte_length_mismatch_is_bad_frames() -> None:
    assert _reason(_frames(_chunk_header(), b"\0" * 7)) == "bad_frames"


def test_negative_dimension_is_bad_frames() -> None:
    spec = [{"dtype": "<f4", "shape": [-2]}]

    assert _reason(_frames(_chunk_header(frames=spec), b"\0" * 8)) == "bad_frames"


def test_shape_not_a_list_is_bad_frames() -> None:
    spec = [{"dtype": "<f4", "shape": 2}]

    assert _reason(_frames(_chunk_header(frames=spec), b"\0" * 8)) == "bad_frames"


def test_overflowing_shape_is_bad_frames() -> None:
    # Regression: 2**62 * 4 wrapped to 0 in int64 and matched an empty frame.
    spec = [{"dtype": "<f4", "shape": [2**62, 4]}]

    assert _reason(_frames(_chunk_header(frames=spec), b"")) == "bad_frames"


def test_huge_dimension_next_to_zero_is_bad_frames() -> None:
    # Regression: numpy's reshape raised ValueError for a dimension beyond intp.
    spec = [{"dtype": "<f4", "shape": [2**64 - 1, 0]}]

    assert _reason(_frames(_chunk_header(frames=spec), b"")) == "bad_frames"


def test_float16_dtype_is_bad_dtype() -> None:
    spec = [{"dtype": "<f2", "shape": [4]}]

    assert _reason(_frames(_chunk_header(frames=spec), b"\0" * 8)) == "bad_dtype"


def test_big_endian_dtype_is_bad_dtype() -> None:
    spec = [{"dtype": ">f4", "shape": [2]}]

    assert _reason(_frames(_chunk_header(frames=spec), b"\0" * 8)) == "bad_dtype"


def test_unhashable_dtype_is_bad_dtype() -> None:
    # Regression: a list dtype raised TypeError from the dict lookup.
    spec = [{"dtype": ["<f4"], "shape": [2]}]

    assert _reason(_frames(_chunk_header(frames=spec), b"\0" * 8)) == "bad_dtype"


def test_protocol_error_message_joins_reason_and_detail() -> None:
    err = ProtocolError("bad_kind", "unknown kind 'x'")

    assert (str(err), err.reason, err.detail) == ("bad_kind: unknown kind 'x'", "bad_kind", "unknown kind 'x'")


# ----------------------------------------------------------------------------- assignment


def _assignment(**over: Any) -> Assignment:
    cfg = from_dict(
        {
            "nodes": 4,
            "seed": 3,
            "chunks": {"count": 3, "per_neighbor": 1},
            "defense": {"params": {"own_weight": 0.5}},
            "data": {"root": "/abs/root"},
        }
    )
    values: dict[str, Any] = dict(
        node=1,
        num_nodes=4,
        neighbors=[3, 0],
        role=Role(True, "gaussian", {"sigma": 2.0}),
        config=cfg,
        shard=np.array([4, 7, 9], dtype=np.int64),
        chunk_sizes=[4, 4, 3],
    )
    values.update(over)
    return Assignment(**values)


def _through_wire(msg: m.Message) -> m.Message:
    return decode(_wire(encode(msg)), allowed=m.TO_PEER_CONTROL)


def test_assignment_round_trip_scalars_and_sorted_neighbors() -> None:
    a = _assignment()

    back, addresses = from_message(_through_wire(to_message(a, {0: "tcp://a:1", 3: "tcp://b:2"})))

    assert (back.node, back.num_nodes, back.neighbors) == (1, 4, [0, 3])
    assert addresses == {0: "tcp://a:1", 3: "tcp://b:2"}


def test_assignment_round_trip_role_config_shard_and_sizes() -> None:
    a = _assignment()

    back, _ = from_message(_through_wire(to_message(a, {0: "x", 3: "y"})))

    assert back.role == Role(True, "gaussian", {"sigma": 2.0})
    assert back.config == a.config
    assert back.shard.dtype == np.int64 and back.shard.tolist() == [4, 7, 9]
    assert back.chunk_sizes == [4, 4, 3]


def test_assignment_shard_is_a_writable_copy() -> None:
    back, _ = from_message(_through_wire(to_message(_assignment(), {0: "x", 3: "y"})))

    assert back.shard.flags.writeable


def _assign_msg(**fields: Any) -> m.Message:
    a = _assignment()
    msg = to_message(a, {0: "x", 3: "y"})
    msg.fields.update(fields)
    return _through_wire(msg)


def _bad_assignment_reason(msg: m.Message) -> str:
    with pytest.raises(ProtocolError) as exc:
        from_message(msg)
    return exc.value.reason


def test_node_out_of_range_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(node=4)) == "bad_assignment"


def test_negative_node_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(node=-1)) == "bad_assignment"


def test_neighbor_entry_that_is_not_a_map_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(neighbors=[0])) == "bad_assignment"


def test_neighbor_id_out_of_range_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(neighbors=[{"id": 4, "addr": "x"}])) == "bad_assignment"


def test_self_as_neighbor_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(neighbors=[{"id": 1, "addr": "x"}])) == "bad_assignment"


def test_neighbor_without_address_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(neighbors=[{"id": 0}])) == "bad_assignment"


def test_invalid_config_is_bad_assignment() -> None:
    cfg = RunConfig().to_dict()
    cfg["train"]["lr"] = "fast"

    assert _bad_assignment_reason(_assign_msg(config=cfg)) == "bad_assignment"


def test_non_positive_chunk_size_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(chunk_sizes=[4, 0])) == "bad_assignment"


def test_chunk_sizes_other_than_the_configs_count_are_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(chunk_sizes=[4, 4])) == "bad_assignment"  # chunks.count = 3


def test_num_nodes_other_than_the_configs_nodes_is_bad_assignment() -> None:
    assert _bad_assignment_reason(_assign_msg(num_nodes=5)) == "bad_assignment"  # nodes = 4


@pytest.mark.parametrize("shard", [[4, 4, 9], [9, 7, 4], [-1, 2, 3]])
def test_a_shard_not_strictly_ascending_or_negative_is_bad_assignment(shard: list[int]) -> None:
    msg = to_message(_assignment(shard=np.array(shard, dtype=np.int64)), {0: "x", 3: "y"})

    assert _bad_assignment_reason(_through_wire(msg)) == "bad_assignment"


def test_role_without_params_is_bad_assignment() -> None:
    role = {"byzantine": False, "attack": ""}

    assert _bad_assignment_reason(_assign_msg(role=role)) == "bad_assignment"


def test_float_shard_is_bad_assignment() -> None:
    a = _assignment()
    msg = to_message(a, {0: "x", 3: "y"})
    msg.arrays = [np.zeros(3, dtype=np.float64)]

    assert _bad_assignment_reason(_through_wire(msg)) == "bad_assignment"


def test_assign_keeps_optional_links_and_neighborhoods() -> None:
    # links and neighborhoods are optional assign fields: they must survive decoding
    msg = m.assign(node=1, num_nodes=3, neighbors=[], role={}, config={}, chunk_sizes=[2], shard=np.zeros(1, "<i8"))
    msg.fields["links"] = [{"id": 2, "addr": "tcp://h:1", "kind": "collude"}]
    msg.fields["neighborhoods"] = [{"id": 0, "degree": 3, "byzantine": 1}]

    out = decode(encode(msg))

    assert out["links"] == [{"id": 2, "addr": "tcp://h:1", "kind": "collude"}]
    assert out["neighborhoods"] == [{"id": 0, "degree": 3, "byzantine": 1}]


def test_assign_with_optional_field_of_wrong_type_is_bad_field() -> None:
    msg = m.assign(node=1, num_nodes=3, neighbors=[], role={}, config={}, chunk_sizes=[2], shard=np.zeros(1, "<i8"))
    msg.fields["links"] = "tcp://h:1"

    with pytest.raises(ProtocolError) as err:
        decode(encode(msg))

    assert err.value.reason == "bad_field"


# ----------------------------------------------------------------------------- numeric types (PROTOCOL.md)


def test_assign_config_accepts_an_int_where_a_float_is_specified() -> None:
    config = _assignment().config.to_dict()
    config["train"]["lr"] = 1  # an encoder that writes 1.0 as an int
    config["runtime"]["chunk_timeout"] = 5

    back, _ = from_message(_assign_msg(config=config))

    assert back.config.train.lr == 1.0 and back.config.runtime.chunk_timeout == 5.0


def test_assign_config_refuses_a_float_where_an_int_is_specified() -> None:
    config = _assignment().config.to_dict()
    config["rounds"] = 3.0

    assert _bad_assignment_reason(_assign_msg(config=config)) == "bad_assignment"


def test_round_start_accepts_an_int_deadline() -> None:
    frames = encode(m.Message(m.ROUND_START, m.COORDINATOR_ID, 2, {"failed": [], "deadline": 30}))

    msg = decode(_wire(frames), allowed=m.TO_PEER_CONTROL)

    assert msg["deadline"] == 30 and msg.round == 2


def test_assign_with_three_array_frames_is_bad_assignment() -> None:
    a = _assignment()
    msg = to_message(a, {0: "x", 3: "y"})
    msg.arrays += [np.zeros(11, "<f4"), np.zeros(1, "<f4")]

    assert _bad_assignment_reason(_through_wire(msg)) == "bad_assignment"
