"""Distributed backdoor: each colluder trains with one part of a shared trigger."""

from __future__ import annotations

from typing import Any

import torch

from peer.attacks import ops
from peer.attacks.base import DataInfo
from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import BoostedTriggerAttack


@ATTACKS.register("dba")
class DistributedBackdoorAttack(BoostedTriggerAttack):
    r"""The backdoor's trigger split into local patterns, one per colluder.

    The global trigger is the ``trigger_size`` x ``trigger_size`` square of ``backdoor``.
    Its pixels, in row-major order, are cut into ``parts`` contiguous near-equal groups
    (``numpy.array_split``); with parts = trigger_size each part is one horizontal strip
    (row) of the square. The Byzantine peer with rank r among the colluders (sorted ids)
    stamps only part :math:`r \bmod \text{parts}` on the poisoned samples of its batches;
    the union of the parts is the global trigger, which the attack success rate uses
    (:meth:`triggered_test_set` stamps the full square).

    ``parts`` defaults to min(number of Byzantine peers, trigger_size²), so that every
    colluder gets a distinct non-empty part when possible; an explicit ``parts`` larger
    than trigger_size² is rejected at bind. Other parameters and the optional ``boost``
    as in ``backdoor`` (shared code: :class:`~peer.attacks.trigger.TriggerAttack`).

    Xie et al., "DBA: Distributed Backdoor Attacks against Federated Learning" (ICLR 2020).
    Their MNIST global trigger is four separated bars; here the parts are adjacent strips
    of one square so that ``backdoor`` and ``dba`` share a trigger and compare directly.
    """

    def __init__(self, *, parts: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # the trigger parameters and boost (peer/attacks/trigger.py)
        self.parts = None if parts is None else ops.check_int("parts", parts, minimum=1)

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        pixels = self.trigger_size**2
        if self.parts is not None and self.parts > pixels:
            raise ValueError(f"parts={self.parts} exceeds the {pixels} pixels of a trigger of size {self.trigger_size}")
        super().bind(data, colluder_rank=colluder_rank, colluders=colluders)

    def part_count(self, colluders: int) -> int:
        """Number of local patterns: ``parts``, or min(colluders, trigger_size²)."""
        if self.parts is not None:
            return self.parts
        return max(1, min(colluders, self.trigger_size**2))

    def part_masks(self, colluders: int) -> list[torch.Tensor]:
        """Every local pattern (after :meth:`bind`); their union is the full trigger."""
        return ops.split_mask(self.mask, self.part_count(colluders))

    def _local_mask(self, colluder_rank: int, colluders: int) -> torch.Tensor:
        masks = self.part_masks(colluders)
        return masks[colluder_rank % len(masks)]
