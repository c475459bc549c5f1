"""The optimisation that attacks with their own model run when they act.

* :func:`train_from` — SGD from a start vector on ``alpha * CE + (1 - alpha) * MSE to the
  start`` (``alie_backdoor``: Baruch et al. 2019, Sec. 3.4 and
  Algorithm 4 line 2);
* :class:`UnrolledProblem` — the validation loss after T unrolled SGD steps on clean +
  poison data, and its gradient with respect to the poison features by reverse-mode
  differentiation through the T steps (``back_gradient``:
  Muñoz-González et al., AISec 2017, [21] in Sun et al. 2024).

Everything runs on the module handed in (``OwnTraining.model``, a private copy), in its
training mode, on CPU tensors; randomness only from the generators passed in. Functions
never modify their tensor arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from peer import chunking

Batch = tuple[torch.Tensor, torch.Tensor]


# ----------------------------------------------------------------------------- training from a start


def mixed_loss(model: nn.Module, anchor: Sequence[torch.Tensor], batch: Batch, *, alpha: float) -> torch.Tensor:
    r""":math:`\alpha\,\ell_{CE}(x, y) + (1 - \alpha)\,\ell_\Delta`, with
    :math:`\ell_\Delta = \frac{1}{d}\sum_{i=1}^{d} (w_i - a_i)^2` the MSE between the
    model's d parameters w and the ``anchor`` a (one tensor per parameter, model order):
    Baruch et al. 2019 Sec. 3.4, "ell_Delta is the MSE Loss between the new parameters and the original
    ones"."""
    params = list(model.parameters())
    d = sum(p.numel() for p in params)
    delta = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor)) / d
    x, y = batch
    return alpha * F.cross_entropy(model(x), y) + (1.0 - alpha) * delta


def train_from(
    model: nn.Module,
    start: np.ndarray,
    data: Batch,
    *,
    alpha: float,
    lr: float,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[np.ndarray, float, float]:
    r"""Train ``model`` from the parameter vector ``start`` (float32, model order) by plain
    SGD (no momentum, no weight decay) on :func:`mixed_loss` with the anchor = ``start``:
    ``epochs`` passes over ``data``, each in a fresh order drawn from ``generator``, in
    batches of ``batch_size`` (the last one may be short). Returns (trained vector,
    mixed loss over all of ``data`` before, after)."""
    chunking.load_vector(model, np.ascontiguousarray(start, dtype=np.float32))
    anchor = [p.detach().clone() for p in model.parameters()]
    params = list(model.parameters())
    model.train()
    x, y = data
    before = _full_loss(model, anchor, data, alpha)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for lo in range(0, len(y), batch_size):
            idx = order[lo : lo + batch_size]
            loss = mixed_loss(model, anchor, (x.index_select(0, idx), y.index_select(0, idx)), alpha=alpha)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(g, alpha=lr)
    after = _full_loss(model, anchor, data, alpha)
    return chunking.flatten(params), before, after


def _full_loss(model: nn.Module, anchor: Sequence[torch.Tensor], data: Batch, alpha: float) -> float:
    with torch.no_grad():
        return float(mixed_loss(model, anchor, data, alpha=alpha).item())


# ----------------------------------------------------------------------------- back-gradient


@dataclass(frozen=True)
class UnrolledProblem:
    r"""The inner problem of back-gradient poisoning: T = len(``clean``) SGD steps from
    ``start`` (``{name: tensor}`` for ``model``), step t on

    .. math:: L_t(w) = (1 - \phi)\,\ell_{CE}(w; D_t) + \phi\,\ell_{CE}(w; D_p)

    with :math:`D_t` = ``clean[t]``, :math:`D_p` the poison set and :math:`\phi` =
    ``weight`` (the share of poison rows in a training batch),
    :math:`w_{t+1} = w_t - \eta \nabla_w L_t(w_t)` (:math:`\eta` = ``lr``); the
    attacker's objective A is the mean cross-entropy of :math:`w_T` on ``validation``."""

    model: nn.Module
    start: dict[str, torch.Tensor]
    clean: Sequence[Batch]
    validation: Batch
    lr: float
    weight: float

    def objective(self, poison: Batch, *, create_graph: bool = False) -> torch.Tensor:
        """A(poison); with ``create_graph`` the unrolled steps stay differentiable."""
        model, buffers = self.model, dict(self.model.named_buffers())
        w = {n: t.detach().requires_grad_(True) for n, t in self.start.items()}
        names = list(w)
        xp, yp = poison
        for xc, yc in self.clean:
            loss = (1.0 - self.weight) * F.cross_entropy(functional_call(model, (w, buffers), (xc,)), yc)
            loss = loss + self.weight * F.cross_entropy(functional_call(model, (w, buffers), (xp,)), yp)
            grads = torch.autograd.grad(loss, [w[n] for n in names], create_graph=create_graph)
            w = {n: w[n] - self.lr * g for n, g in zip(names, grads)}
            if not create_graph:
                w = {n: t.detach().requires_grad_(True) for n, t in w.items()}
        xv, yv = self.validation
        return F.cross_entropy(functional_call(model, (w, buffers), (xv,)), yv)

    def value(self, poison: Batch) -> float:
        """A(poison) as a float (no graph kept)."""
        return float(self.objective(poison).detach().item())

    def gradient(self, poison: Batch) -> tuple[float, torch.Tensor]:
        r"""(A, :math:`\nabla_{x_p} A`) by plain reverse-mode differentiation through the
        unrolled steps (Muñoz-González et al. reverse the learning procedure to avoid
        storing the T intermediate parameter vectors; with the few steps used here
        storing them is cheap, and the gradient is the same)."""
        xp = poison[0].detach().clone().requires_grad_(True)
        value = self.objective((xp, poison[1]), create_graph=True)
        (grad,) = torch.autograd.grad(value, [xp])
        return float(value.detach().item()), grad.detach()
