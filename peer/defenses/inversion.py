"""Model inversion by gradient matching (DFL-Dual's dummy datasets), bounded in cost.

The own model with a candidate chunk substituted (:class:`peer.defenses.base.ModelProbe`)
is inverted into a small dummy dataset whose gradient on that chunk matches the
candidate's mean gradient; used by ``dfl_dual`` to compare candidates in the data domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from peer.defenses.base import ModelProbe


def dummy_labels(num_classes: int, per_class: int) -> torch.Tensor:
    """``per_class`` samples of every class, class-major: [0]*k + [1]*k + ..."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def dummy_start(probe: ModelProbe, per_class: int, seed: int) -> torch.Tensor:
    """The dummy features every candidate starts from: N(0, 1) images drawn from a
    generator seeded by ``seed`` (the same start for every candidate, so that the dummy
    datasets differ only through the models)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (probe.num_classes * per_class, *probe.image_shape)
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def invert(
    probe: ModelProbe,
    payload: torch.Tensor,
    target: torch.Tensor,
    start: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    lr: float,
) -> torch.Tensor:
    r"""Dummy features x' after ``steps`` Adam steps (learning rate ``lr``) on

    .. math:: \big\lVert \big[\nabla_\theta \ell(x', y'; \theta)\big]_{lo:hi} - g \big\rVert_2^2

    where :math:`\theta` is the own model with ``payload`` substituted for the chunk
    ``probe.span`` = [lo, hi), :math:`g` = ``target`` and :math:`\ell` the mean
    cross-entropy (DFL-Dual Eq. 5 restricted to the chunk). Labels y' stay fixed.

    Only the parameter tensors that overlap the chunk are differentiated (their gradients
    are the same numbers as in the whole gradient; the others would enter the match with
    weight zero): for a chunk of LeNet's fully connected layers the backward passes then
    stop there instead of running through the convolutions."""
    model = probe.model_with(payload)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    lo, hi = probe.span
    needed, first = _overlapping(params, lo, hi)
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    target = target.to(torch.float32)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        grads = torch.autograd.grad(loss, needed, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])[lo - first : hi - first]
        match = (flat - target).pow(2).sum()
        (dx,) = torch.autograd.grad(match, x)
        x.grad = dx
        opt.step()
    for p, flag in zip(params, flags):
        p.requires_grad_(flag)
    return x.detach()


def _overlapping(params: Sequence[torch.Tensor], lo: int, hi: int) -> tuple[list[torch.Tensor], int]:
    """The parameter tensors that hold some of the flat coordinates [lo, hi), in order,
    and the flat offset of the first of them."""
    needed: list[torch.Tensor] = []
    first, offset = 0, 0
    for p in params:
        end = offset + p.numel()
        if end > lo and offset < hi:
            if not needed:
                first = offset
            needed.append(p)
        offset = end
    return needed, first
