"""Local SGD and evaluation on one peer's data (no I/O, no global state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: hook that a data-poisoning attack installs: (images, labels, generator) -> (images, labels)
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


class SGD:
    """Stochastic gradient descent with momentum and L2 weight decay: the update of
    ``torch.optim.SGD`` (dampening 0, no Nesterov, single-tensor CPU path), bit for bit
    (``tests/test_training.py`` compares them step by step)::

        g_t = grad L(w_t) + lambda * w_t            (weight decay lambda)
        b_1 = g_1,   b_t = mu * b_(t-1) + g_t       (momentum mu; b_t = g_t when mu = 0)
        w_(t+1) = w_t - eta * b_t                   (learning rate eta)

    byzemu does not construct ``torch.optim.SGD`` because creating any torch optimizer
    imports ``torch._dynamo`` (its ``add_param_group`` is wrapped by
    ``torch._disable_dynamo``), which costs ~2 s of CPU in every freshly started peer, or
    in the forkserver before any peer can start (BENCHMARKS.md, *Start-up*).
    """

    def __init__(self, params: Any, *, lr: float, momentum: float, weight_decay: float) -> None:
        self.params: list[torch.Tensor] = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        #: one momentum buffer per parameter, None until its first step
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            d_p = p.grad
            if self.weight_decay != 0:
                d_p = d_p.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = d_p.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(d_p, alpha=1)
                d_p = buf
            p.add_(d_p, alpha=-self.lr)

    def state_dict(self) -> dict[str, Any]:
        return {"momentum_buffers": [None if b is None else b.to("cpu", copy=True) for b in self.buffers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        buffers = state["momentum_buffers"]
        if len(buffers) != len(self.params):
            raise ValueError(f"optimizer state for {len(buffers)} parameters, the model has {len(self.params)}")
        # on the parameter's device (a checkpoint holds them in host memory)
        self.buffers = [None if b is None else b.to(p.device, copy=True) for b, p in zip(buffers, self.params)]


def round_steps(local_steps: int, local_epochs: int, steps_per_epoch: int) -> int:
    """SGD steps of one round: ``local_epochs`` full passes over the shard
    (``local_epochs * steps_per_epoch``, the sampler dropping a short last batch) when
    ``local_epochs`` > 0, as Sun et al. 2024 (§4.2: each client performs E epochs of local
    mini-batch SGD per round); else ``local_steps``."""
    return local_epochs * steps_per_epoch if local_epochs > 0 else local_steps


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
        lr_at: Callable[[int], float] | None = None,
        device: torch.device | None = None,
    ) -> None:
        if len(labels) == 0:
            raise ValueError("a peer needs at least one training sample")
        self.model = model
        self.images = images
        self.labels = labels
        self.batch_size = min(batch_size, len(labels))
        self.optimizer = SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.generator = torch.Generator().manual_seed(seed)
        self.batch_hook = batch_hook
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        #: learning rate per completed epoch (peer/schedule.py); None keeps ``lr``
        self.lr_at = lr_at
        self.epoch = -1  # completed passes over the shard, once the first is drawn: 0
        #: the last mini-batch drawn (as trained on, in host memory), for rules that score on it (UBAR)
        self.last_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        #: a CUDA device the model is on (peer/device.py): each batch is copied there after
        #: it is drawn and poisoned in host memory; None: the CPU, no copy
        self.device = device

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.labels), generator=self.generator)
            self._pos = 0
            self.epoch += 1
            if self.lr_at is not None:
                self.optimizer.lr = self.lr_at(self.epoch)
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        # index_select: the same rows as images[idx], a third of advanced indexing's cost
        x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
        if self.batch_hook is not None:
            x, y = self.batch_hook(x, y, self.generator)
        self.last_batch = (x, y)
        if self.device is not None:
            return x.to(self.device), y.to(self.device)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state (momentum buffers), the sampler's RNG state and its position in
        the current epoch: with the model, all a checkpoint needs to draw the same batches."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "order": self._order.clone(),
            "pos": self._pos,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()
        self._pos = int(state["pos"])
        self.epoch = int(state.get("epoch", -1))
        if self.lr_at is not None and self.epoch >= 0:
            self.optimizer.lr = self.lr_at(self.epoch)

    def train(self, steps: int) -> float:
        """Run ``steps`` SGD steps; return the mean training loss (nan if steps == 0)."""
        if not self.model.training:  # set recursively on every submodule: only when it changes
            self.model.train()
        total = 0.0
        for _ in range(steps):
            x, y = self._next_batch()
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += float(loss.item())
        return total / steps if steps else float("nan")


#: images per forward pass in :func:`evaluate`: the activations of a LeNet forward pass
#: over 128 MNIST images (~2.4 MB after the first convolution) stay in the caches, where
#: 1,000 (~19 MB) do not; 1.6-1.8x less CPU per evaluation (bench/compute_floor.py)
FORWARD_BATCH = 128


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of ``model`` on the given set.

    The loss is summed per ``batch_size`` items (``eval.batch_size``), as it always was;
    the forward pass runs over at most :data:`FORWARD_BATCH` images at a time, under
    ``torch.inference_mode``. Splitting the forward pass leaves every logit bit-identical
    for the models whose per-image output does not depend on the batch (lenet, cnn_guo,
    cnn_masuda, mlp, logreg: ``tests/test_training.py``), so accuracy and loss are
    unchanged for them.
    """
    if model.training:  # recursive: only when the mode changes
        model.eval()
    correct, loss_sum = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            stop = min(start + batch_size, len(labels))
            y = labels[start:stop]
            pieces = [model(images[lo : min(lo + FORWARD_BATCH, stop)]) for lo in range(start, stop, FORWARD_BATCH)]
            out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            loss_sum += float(F.cross_entropy(out, y, reduction="sum").item())
            correct += int((out.argmax(1) == y).sum().item())
    n = max(len(labels), 1)
    return correct / n, loss_sum / n
