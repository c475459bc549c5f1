"""The optimisation that attacks with their own model run when they act.

* :func:`train_from` — SGD from a start vector on ``alpha * CE + (1 - alpha) * MSE to the
  start`` (``alie_backdoor``: Baruch et al., 003_e5d7416090bcf41d.txt, Sec. 3.4 and
  Algorithm 4 line 2);
* :func:`unrolled_validation_loss` / :func:`poison_gradient` — the validation loss after T
  unrolled SGD steps on clean + poison data, and its gradient with respect to the poison
  features by reverse-mode differentiation through the T steps (``back_gradient``:
  Muñoz-González et al., AISec 2017, [21] in 004_596173574beda768.txt).

Everything runs on the module handed in (``OwnTraining.model``, a private copy), in its
training mode, on CPU tensors; randomness only from the generators passed in. Functions
never modify their tensor arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from peer import chunking

Batch = tuple[torch.Tensor, torch.Tensor]


# ----------------------------------------------------------------------------- training from a start


def mixed_loss(
    model: nn.Module, anchor: Sequence[torch.Tensor], batch: Batch, *, alpha: float
) -> torch.Tensor:
    r""":math:`\alpha\,\ell_{CE}(x, y) + (1 - \alpha)\,\ell_\Delta`, with
    :math:`\ell_\Delta = \frac{1}{d}\sum_{i=1}^{d} (w_i - a_i)^2` the MSE between the
    model's d parameters w and the ``anchor`` a (one tensor per parameter, model order):
    003 Sec. 3.4, "ell_Delta is the MSE Loss between the new parameters and the original
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


def unrolled_validation_loss(
    model: nn.Module,
    start: dict[str, torch.Tensor],
    poison: Batch,
    clean: Sequence[Batch],
    validation: Batch,
    *,
    lr: float,
    weight: float,
    create_graph: bool,
) -> torch.Tensor:
    r"""The attacker's objective A: the mean cross-entropy on ``validation`` of the
    parameters after T = len(``clean``) unrolled SGD steps from ``start``
    (``{name: tensor}``), step t on

    .. math:: L_t(w) = (1 - \phi)\,\ell_{CE}(w; D_t) + \phi\,\ell_{CE}(w; D_p)

    with :math:`D_t` = ``clean[t]``, :math:`D_p` = ``poison`` and :math:`\phi` =
    ``weight`` (the share of poison rows in a training batch), and
    :math:`w_{t+1} = w_t - \eta \nabla_w L_t(w_t)` (:math:`\eta` = ``lr``). With
    ``create_graph`` the steps stay differentiable (for :func:`poison_gradient`)."""
    buffers = dict(model.named_buffers())
    w = {n: t.detach().requires_grad_(True) for n, t in start.items()}
    names = list(w)
    xp, yp = poison
    for xc, yc in clean:
        loss = (1.0 - weight) * F.cross_entropy(functional_call(model, (w, buffers), (xc,)), yc)
        loss = loss + weight * F.cross_entropy(functional_call(model, (w, buffers), (xp,)), yp)
        grads = torch.autograd.grad(loss, [w[n] for n in names], create_graph=create_graph)
        w = {n: w[n] - lr * g for n, g in zip(names, grads)}
        if not create_graph:
            w = {n: t.detach().requires_grad_(True) for n, t in w.items()}
    xv, yv = validation
    return F.cross_entropy(functional_call(model, (w, buffers), (xv,)), yv)


def poison_gradient(
    model: nn.Module,
    start: dict[str, torch.Tensor],
    poison: Batch,
    clean: Sequence[Batch],
    validation: Batch,
    *,
    lr: float,
    weight: float,
) -> tuple[float, torch.Tensor]:
    r"""(A, :math:`\nabla_{x_p} A`): :func:`unrolled_validation_loss` and its gradient with
    respect to the poison features, by plain reverse-mode differentiation through the
    unrolled steps (Muñoz-González et al. reverse the learning procedure to avoid storing
    the T intermediate parameter vectors; with the few steps used here storing them is
    cheap, and the gradient is the same)."""
    xp = poison[0].detach().clone().requires_grad_(True)
    value = unrolled_validation_loss(
        model, start, (xp, poison[1]), clean, validation, lr=lr, weight=weight, create_graph=True
    )
    (grad,) = torch.autograd.grad(value, [xp])
    return float(value.item()), grad.detach()
