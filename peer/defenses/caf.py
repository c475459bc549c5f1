"""CAF: covariance-bound agnostic filter."""

from __future__ import annotations

import torch

from peer.defenses import ops
from peer.defenses.base import ChunkContext, Kept
from peer.defenses.bounded import BoundedRule
from peer.defenses.registry import DEFENSES


@DEFENSES.register("caf")
class CovarianceAgnosticFilter(BoundedRule):
    r"""Down-weight candidates along the top direction of the weighted covariance until the
    total weight falls to n - 2f; return the weighted mean whose covariance had the
    smallest top eigenvalue.

    With weights :math:`c_i = 1` (i = 0..m), while :math:`\sum_i c_i > n - 2f`:

    .. math::

        \mu_c = \frac{\sum_i c_i x_i}{\sum_i c_i},\quad
        \Sigma_c = \frac{\sum_i c_i (x_i-\mu_c)(x_i-\mu_c)^\top}{\sum_i c_i},\quad
        (\lambda, v) = \text{top eigenpair of } \Sigma_c,

    remember :math:`\mu_c` if :math:`\lambda` is the smallest so far, then
    :math:`\tau_i = ((x_i-\mu_c)^\top v)^2` and
    :math:`c_i \leftarrow \max(0, c_i(1 - \tau_i/\max_{k: c_k > 0} \tau_k))`.
    Allouah, Guerraoui & Stephan, "Towards Trustworthy Federated Learning with Untrusted
    Participants" (ICML 2025), CAF.

    Difference from ByzFL 0.0.11 ``CAF``: ByzFL estimates the eigenpair with one power
    iteration from a random start (its result is random and inexact for d > 1); here the
    eigenpair is exact (:func:`peer.defenses.ops.top_eigen`, through the n x n Gram
    matrix), so the rule is deterministic. For d = 1 the two agree exactly
    (tests/test_byzfl_parity.py). ByzFL takes the maximum of tau over all candidates,
    including those already at weight 0: a removed far outlier then keeps the maximum,
    the others' weights shrink by tiny factors and the loop can run for thousands of
    iterations; here the maximum is over the candidates still weighted (one of them drops
    to 0 in each pass, so at most n passes), as in the filters CAF builds on (Diakonikolas
    et al.). ByzFL returns None for f = 0 (the loop never runs); here f = 0 gives the mean.

    ``f`` defaults to the per-node bound :func:`peer.defenses.ops.byzantine_bound`, clamped to n - 1.
    Chunk-level adaptation: candidates are the own chunk and this index's payloads.
    Fallback: no payload -> own chunk; all candidates equal (no spread) -> their mean;
    the loop also stops once at most one candidate keeps weight.
    Payloads holding NaN/Inf are discarded first. Takes any pre-step output.
    """

    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        n = x.shape[0]
        f = self.f_for(ctx, kept.m, n)
        c = torch.ones(n, dtype=torch.float64)
        best, best_value = ops.mean_rows(x), float("inf")
        while float(c.sum()) > n - 2 * f and int((c > 0).sum()) > 1:
            mu = (c[:, None] * x).sum(dim=0) / c.sum()
            diffs = x - mu
            value, v = ops.top_eigen(diffs, c / c.sum())
            if value < best_value:
                best, best_value = mu, value
            tau = (diffs @ v) ** 2
            top = float(tau[c > 0].max())
            if top <= 0.0:
                break
            c = (c * (1.0 - tau / top)).clamp(min=0.0)
        return best
