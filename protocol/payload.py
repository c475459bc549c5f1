"""The checks of a decoded data-plane payload against the receiver's model and graph.

:mod:`protocol.codec` checks that a message is well formed (version, kind, header fields,
frame specs and byte counts); what is checked here needs the receiver: whether the
sender may send it (a neighbor, a colluder, an honest peer in oracle mode), whether each
chunk index is one of its model's and each array has that chunk's dtype and length, and
that a chunk message carries neither none nor all of the model. Every failure is a
:class:`~protocol.codec.ProtocolError` whose reason the receiver counts as a drop
(docs/PROTOCOL.md lists the reasons). :class:`~protocol.codec.ChunkCheck` is the compiled
fast lane of :meth:`PayloadCheck.chunks` for whole chunk messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from protocol.codec import ProtocolError, is_int

_F4 = np.dtype("<f4")

#: {sender id: {chunk index: float32 vector}}
Payloads = dict[int, dict[int, np.ndarray]]


class PayloadCheck:
    """The payload checks of one receiver, built once per run.

    ``node`` is the receiver, ``neighbors`` the peers it accepts chunks from,
    ``colluders`` the Byzantine peers it accepts a collusion view from, ``num_nodes`` the
    run's size, ``bounds`` the ``(start, stop)`` of each chunk index of its model, and
    ``oracle`` whether it receives the honest models (a Byzantine peer in oracle mode)."""

    def __init__(
        self,
        *,
        node: int,
        neighbors: Sequence[int],
        colluders: Sequence[int],
        num_nodes: int,
        bounds: Sequence[tuple[int, int]],
        oracle: bool,
    ) -> None:
        self.node = node
        self._neighbors = frozenset(neighbors)
        self._colluders = frozenset(colluders)
        self._num_nodes = num_nodes
        self._bounds = list(bounds)
        self._model_size = self._bounds[-1][1] if self._bounds else 0
        self.oracle = oracle

    def chunks(self, sender: int, indices: list[Any], arrays: list[np.ndarray]) -> None:
        """Raise ProtocolError unless ``sender``'s chunk payload fits this receiver's model."""
        count = len(self._bounds)
        if sender not in self._neighbors:
            raise ProtocolError("not_neighbor", f"sender {sender} is not a neighbor of {self.node}")
        if len(indices) != len(arrays):
            raise ProtocolError("bad_chunks", "chunk list and frames differ in length")
        for c in indices:
            if not is_int(c) or not 0 <= c < count:
                raise ProtocolError("bad_chunk_index", f"chunk index {c!r}")
        if len(set(indices)) != len(indices):
            raise ProtocolError("bad_chunks", "duplicate chunk index")
        if not 1 <= len(indices) < count:  # never none, never the whole model
            raise ProtocolError("bad_chunk_count", f"{len(indices)} chunks; a message carries 1..{count - 1}")
        for c, array in zip(indices, arrays):
            self.chunk(c, array)

    def collusion(self, sender: int, items: list[Any], arrays: list[np.ndarray]) -> Payloads:
        """Validate a colluder's view ``[[honest sender, chunk index], ...]`` + frames and
        return it as ``{sender: {chunk: vector}}``; ProtocolError if anything is off."""
        if sender not in self._colluders:
            raise ProtocolError("not_colluder", f"collusion message from {sender}, not a colluder")
        if len(items) != len(arrays):
            raise ProtocolError("bad_chunks", "collusion items and frames differ in length")
        view: Payloads = {}
        for item, array in zip(items, arrays):
            if not (isinstance(item, list) and len(item) == 2 and all(is_int(x) for x in item)):
                raise ProtocolError("bad_chunks", f"collusion item {item!r}")
            src, c = item
            if not 0 <= src < self._num_nodes:
                raise ProtocolError("bad_chunks", f"collusion item names node {src}")
            self.chunk(c, array)
            if c in view.setdefault(src, {}):
                raise ProtocolError("bad_chunks", f"collusion item {item!r} repeats")
            view[src][c] = array
        return view

    def oracle_model(self, sender: int, arrays: list[np.ndarray]) -> None:
        """Validate an honest peer's whole model sent in oracle mode."""
        if not self.oracle:
            raise ProtocolError("unexpected_kind", "oracle model while not in oracle mode")
        if sender in self._colluders or sender == self.node or not 0 <= sender < self._num_nodes:
            raise ProtocolError("not_neighbor", f"oracle model from {sender}")
        self.whole_model(arrays[0], "oracle")

    def whole_model(self, array: np.ndarray, what: str) -> None:
        """Raise ProtocolError unless ``array`` is a float32 vector of the model's size."""
        if array.dtype != _F4 or array.shape != (self._model_size,):
            raise ProtocolError("bad_chunk_size", f"{what} model {array.dtype}{list(array.shape)}")

    def chunk(self, c: Any, array: np.ndarray) -> None:
        """Raise ProtocolError unless ``c`` is a chunk index of the model and ``array`` a
        float32 vector of that chunk's length."""
        if not is_int(c) or not 0 <= c < len(self._bounds):
            raise ProtocolError("bad_chunk_index", f"chunk index {c!r}")
        start, stop = self._bounds[c]
        if array.dtype != _F4 or array.shape != (stop - start,):
            raise ProtocolError(
                "bad_chunk_size", f"chunk {c}: {array.dtype}{list(array.shape)}, need <f4[{stop - start}]"
            )
