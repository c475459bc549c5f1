"""CDL: plain chunk-wise averaging, the baseline of chunked decentralized learning."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from peer.defenses.base import ChunkContext, Defense
from peer.defenses.registry import DEFENSES


@DEFENSES.register("cdl")
class ChunkedAverage(Defense):
    r"""Plain average of the own chunk and the received chunks of the same index.

    With own chunk :math:`x_c` and received payloads :math:`r_1..r_m` for index c:

    * ``own_weight`` unset (uniform, the CDL/D-PSGD gossip average):
      :math:`x_c \leftarrow \frac{1}{m+1}\left(x_c + \sum_j r_j\right)`
    * ``own_weight = w`` in [0, 1]:
      :math:`x_c \leftarrow w\,x_c + (1-w)\frac{1}{m}\sum_j r_j`

    With m = 0 the chunk stays as it is. Decentralized averaging as in Lian et al.,
    "Can Decentralized Algorithms Outperform Centralized Algorithms?" (NeurIPS 2017),
    applied per chunk index over only the chunks received this round.
    """

    def __init__(self, *, own_weight: float | None = None) -> None:
        if own_weight is not None and not 0.0 <= float(own_weight) <= 1.0:
            raise ValueError(f"own_weight={own_weight} must be in [0, 1]")
        self.own_weight = None if own_weight is None else float(own_weight)

    def aggregate(self, own: torch.Tensor, received: Sequence[torch.Tensor], ctx: ChunkContext) -> torch.Tensor:
        if not received:
            return own.clone()
        if self.own_weight is None:
            return torch.stack([own, *received]).mean(dim=0)
        w = self.own_weight
        return w * own + (1.0 - w) * torch.stack(list(received)).mean(dim=0)
