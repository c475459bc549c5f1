"""Local SGD and evaluation on one peer's data (no I/O, no global state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: hook that a data-poisoning attack installs: (images, labels, generator) -> (images, labels)
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class LocalTrainer:
    """Runs ``steps`` SGD steps per call on mini-batches drawn without replacement.

    Batches come from a seeded permutation of the local shard that is redrawn whenever it
    runs out (epoch by epoch), so the sequence of batches depends only on the seed.
    The optimizer (and its momentum buffer) lives across rounds.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        lr: float,
        momentum: float,
        weight_decay: float,
        seed: int,
        batch_hook: BatchHook | None = None,
    ) -> None:
        if len(labels) == 0:
            raise ValueError("a peer needs at least one training sample")
        self.model = model
        self.images = images
        self.labels = labels
        self.batch_size = min(batch_size, len(labels))
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.batch_hook = batch_hook
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.labels), generator=self.generator)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        x, y = self.images[idx], self.labels[idx]
        if self.batch_hook is not None:
            x, y = self.batch_hook(x, y, self.generator)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state (momentum buffers), the sampler's RNG state and its position in
        the current epoch: with the model, all a checkpoint needs to draw the same batches."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "order": self._order.clone(),
            "pos": self._pos,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()
        self._pos = int(state["pos"])

    def train(self, steps: int) -> float:
        """Run ``steps`` SGD steps; return the mean training loss (nan if steps == 0)."""
        self.model.train()
        total = 0.0
        for _ in range(steps):
            x, y = self._next_batch()
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += float(loss.item())
        return total / steps if steps else float("nan")


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of ``model`` on the given set."""
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            x, y = images[start : start + batch_size], labels[start : start + batch_size]
            out = model(x)
            loss_sum += float(F.cross_entropy(out, y, reduction="sum").item())
            correct += int((out.argmax(1) == y).sum().item())
    n = max(len(labels), 1)
    return correct / n, loss_sum / n
