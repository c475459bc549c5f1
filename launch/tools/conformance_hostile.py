"""The conformance kit's hostile neighbor: a byzemu peer that, in one round, sends the peer
under test messages it must drop, each under the reason docs/PROTOCOL.md names.

:class:`HostileRuntime` is a :class:`~peer.runtime.PeerRuntime` that, when round
:data:`HOSTILE_ROUND` starts, sends the tested peer the messages of
:func:`hostile_messages` over its own data connection (with its CURVE identity, its
routing id, and its sender MAC when the run has one), before its real chunk message of
that round, then runs the round as any byzemu peer. The kit then expects exactly
:func:`expected_drops` in the tested peer's ``drops_total``, beyond what the rest of the
run explains.

The messages: a header that is not msgpack (``undecodable``), version 2 (``bad_version``),
a float16 frame (``bad_dtype``), an index C (``bad_chunk_index``), every index
(``bad_chunk_count``), a frame one value short (``bad_chunk_size``), a well-formed chunk
claiming another live neighbor as ``src`` (forged: ``sender_mismatch``, ``key_mismatch``
with CURVE, ``bad_mac`` with sender MAC), a valid chunk for round t+2 (early beyond the
window: ``future_round``; the tested peer is in round t-1 or t), and a message one byte
over ``runtime.max_message_bytes`` whose frames are each under the socket's frame limit
(``oversized``, not a closed connection).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import msgpack
import numpy as np

from launch.tools.conformance_checks import HOSTILE_ROUND
from peer.options import PeerOptions
from peer.runtime import PeerRuntime
from protocol.graph import RoundGraph

log = logging.getLogger("byzemu.peer")


def _frames(head: dict[str, Any], arrays: list[np.ndarray]) -> list[bytes]:
    head = {**head, "frames": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]}
    return [msgpack.packb(head, use_bin_type=True), *(a.tobytes() for a in arrays)]


def hostile_messages(
    *, src: int, forged: int, round_: int, sizes: list[int], max_bytes: int
) -> list[tuple[str, list[bytes]]]:
    """(reason, frames) of each hostile message, in the order of
    :data:`~launch.tools.conformance_checks.HOSTILE_REASONS`; reason ``"forged"`` depends on
    the run (:func:`~launch.tools.conformance_checks.expected_drops`)."""
    head = {"v": 1, "kind": "chunk", "src": src, "round": round_}
    c0 = np.zeros(sizes[0], "<f4")
    every = [np.zeros(n, "<f4") for n in sizes]
    half = (max_bytes // 2) + 1  # two frames: one byte over the message limit together
    big = [np.zeros(half, "u1"), np.zeros(half, "u1")]
    return [
        ("undecodable", [b"\xc1 not msgpack"]),
        ("bad_version", _frames({**head, "v": 2, "chunks": [0]}, [c0])),
        ("bad_dtype", _frames({**head, "chunks": [0]}, [np.zeros(sizes[0], "<f2")])),
        ("bad_chunk_index", _frames({**head, "chunks": [len(sizes)]}, [c0])),
        ("bad_chunk_count", _frames({**head, "chunks": list(range(len(sizes)))}, every)),
        ("bad_chunk_size", _frames({**head, "chunks": [0]}, [c0[:-1]])),
        ("forged", _frames({**head, "src": forged, "chunks": [0]}, [c0])),
        ("future_round", _frames({**head, "round": round_ + 2, "chunks": [0]}, [c0])),
        ("oversized", [msgpack.packb({**head, "chunks": [0, 1], "frames": []}), *(b.tobytes() for b in big)]),
    ]


class HostileRuntime(PeerRuntime):
    """A byzemu peer that sends ``target`` the hostile messages at the start of
    :data:`HOSTILE_ROUND`, then plays the round normally."""

    def __init__(self, options: PeerOptions, *, target: int) -> None:
        super().__init__(options)
        self.target = target

    def run_round(self, round_: int, failed: list[int], graph: RoundGraph | None = None) -> None:
        if round_ == HOSTILE_ROUND and self.core is not None and self.target not in failed:
            # the round's neighbors (a graph that changes: its round_start's, not the last round's)
            self._attack(round_, self.core.neighbors if graph is None else list(graph.send_to))
        super().run_round(round_, failed, graph)

    def _attack(self, round_: int, neighbors: list[int]) -> None:
        assert self.core is not None
        sock = self.data.link(self.target) if self.target in neighbors else None
        others = sorted(set(neighbors) - {self.target, self.node})
        if sock is None or not others:
            log.error("hostile peer %d: peer %d is not its neighbor, or no one to forge", self.node, self.target)
            return
        messages = hostile_messages(
            src=self.node,
            forged=others[0],
            round_=round_,
            sizes=list(self.core.assignment.chunk_sizes),
            max_bytes=self.core.config.runtime.max_message_bytes,
        )
        for _, frames in messages:
            wire = frames if self.data.mac is None else self.data.mac.sign(self.target, frames)
            sock.send_multipart(wire)


def runtime_for(target: int) -> functools.partial[HostileRuntime]:
    """A picklable factory of a :class:`HostileRuntime` against ``target``
    (``launch.run.procs.start_peers(..., runtime=...)``)."""
    return functools.partial(HostileRuntime, target=target)
