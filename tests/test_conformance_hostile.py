"""The conformance kit's hostile messages (launch/tools/conformance_hostile.py), in
process: one per expected reason, and byzemu's own codec names the structural ones as
the kit expects a foreign peer to."""

from __future__ import annotations

import pytest

from launch.tools.conformance_checks import HOSTILE_REASONS, expected_drops
from launch.tools.conformance_hostile import hostile_messages
from protocol import messages as m
from protocol.codec import ProtocolError, decode

SIZES = [5, 5, 4, 4]
MESSAGES = hostile_messages(src=1, forged=2, round_=2, sizes=SIZES, max_bytes=1 << 16)


def test_one_message_per_expected_reason_in_order() -> None:
    assert [reason for reason, _ in MESSAGES] == HOSTILE_REASONS


@pytest.mark.parametrize(
    ("curve", "mac", "forged"),
    [(False, False, "sender_mismatch"), (True, False, "key_mismatch"), (True, True, "bad_mac")],
)
def test_the_forged_message_is_counted_by_the_runs_sender_check(curve: bool, mac: bool, forged: str) -> None:
    drops = expected_drops(curve=curve, sender_mac=mac)

    assert drops[forged] == 1 and "forged" not in drops and sum(drops.values()) == len(HOSTILE_REASONS)


@pytest.mark.parametrize("reason", ["undecodable", "bad_version", "bad_dtype", "oversized"])
def test_byzemus_codec_names_the_structural_ones(reason: str) -> None:
    frames = dict(MESSAGES)[reason]

    with pytest.raises(ProtocolError) as err:
        decode(frames, allowed=m.DATA_PLANE, max_bytes=1 << 16)

    assert err.value.reason == reason


def test_the_oversized_message_has_no_frame_over_the_socket_limit() -> None:
    frames = dict(MESSAGES)["oversized"]

    assert sum(len(f) for f in frames) > 1 << 16 and max(len(f) for f in frames) < (1 << 16) + 1024
