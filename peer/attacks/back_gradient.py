"""Back-gradient poisoning: optimise a few poison points through unrolled training, then
mix them into the own training batches."""

from __future__ import annotations

from typing import Any

import torch

from peer.attacks import ops
from peer.attacks.base import Attack, DataInfo, OwnTraining
from peer.attacks.optim import UnrolledProblem
from peer.attacks.registry import ATTACKS
from peer.training import BatchHook

FLIPS = ("random", "reverse")
_SALT = 0x42475244  # "BGRD": this attack's draws from OwnTraining.generator


@ATTACKS.register("back_gradient")
class BackGradientAttack(Attack):
    r"""Optimised data poisoning by back-gradient descent (Muñoz-González, Biggio, Demontis,
    Paudice, Wongrassamee, Lupu & Roli, "Towards Poisoning of Deep Learning Algorithms with
    Back-gradient Optimization", AISec 2017; [21] in Sun et al. 2024, which uses
    it as one of its three untargeted attacks, Sec. 5.1 and Table 1).

    The attacker solves the bilevel problem
    :math:`\max_{x_p} A(x_p) = \ell_{CE}(w_T(x_p); D_{val})`, with :math:`w_T` the model
    after T SGD steps on clean + poison data
    (:class:`peer.attacks.optim.UnrolledProblem`)

    .. math::

        w_{t+1} = w_t - \eta\,\nabla_w\big[(1-\phi)\,\ell_{CE}(w_t; D_t)
                  + \phi\,\ell_{CE}(w_t; D_p)\big], \qquad t = 0..T-1,

    by projected gradient ascent on the poison features,
    :math:`x_p \leftarrow \Pi_{box}\big(x_p + s\,r\,\nabla_{x_p}A / \lVert\nabla_{x_p}A\rVert_\infty\big)`,
    with :math:`\nabla_{x_p}A` by reverse-mode differentiation through the T unrolled
    steps (:meth:`~peer.attacks.optim.UnrolledProblem.gradient`; the paper reverses the learning
    procedure to save memory, which T = 5 does not need). In every round the attack is
    active, before local training (:meth:`prepare`):

    * :math:`w_0` = the own model now; :math:`\eta` = ``lr`` (default: the own trainer's
      learning rate); T = ``unroll``; :math:`D_t` = T disjoint batches of
      B - ceil(fraction·B) clean own samples (B = ``train.batch_size``); :math:`D_{val}`
      = ``validation`` other own samples with their true labels (the error-generic
      attack); :math:`\phi` = ceil(fraction·B)/B, the poison share of a training batch;
    * :math:`D_p` = ``points`` own samples with flipped labels (``flip = "random"``: y + r
      mod C, r uniform in 1..C-1; ``"reverse"``: C - 1 - y), labels fixed while their
      features are optimised (the paper's initialisation: clean points, labels flipped);
    * ``iterations`` ascent steps; the step moves the coordinate with the largest
      gradient by s = ``step`` times the input range r (pixel 0..255 in the normalised
      space), the box is that range; the candidate with the largest A (the initial
      points included) is kept.

    Then local training replaces ceil(fraction·B) rows of every batch (chosen as the
    other data-poisoning attacks choose them) with poison points (a permutation of the
    set drawn from the trainer's generator, cycled when a batch takes more than
    ``points``), and the trained chunks are sent as they are: an honest-looking update
    that carries the poison. Deviations from the paper, for a bounded cost: all points
    move together per iteration (the paper updates one point at a time, with a line
    search for the step); the inner problem is T steps of plain SGD (the peer trains
    ``train.local_steps`` steps with momentum); the poison set is re-optimised from
    fresh points every active round (stateless, so checkpoints need nothing). Cost:
    ``iterations`` + 1 unrolled passes of T steps per round, each backward pass through
    second derivatives (docs/ATTACKS.md, *back_gradient*, has the measured CPU).
    :meth:`round_metrics` records A before and after the optimisation
    (``back_gradient_loss``). Needs only the own model and data.
    """

    uses_own_training = True
    transient = ("_poison", "_loss")

    def __init__(
        self,
        *,
        points: int = 16,
        unroll: int = 5,
        iterations: int = 5,
        step: float = 0.25,
        fraction: float = 0.5,
        validation: int = 64,
        lr: float | None = None,
        flip: str = "random",
        start_round: int = 1,
        interval: int = 1,
    ) -> None:
        super().__init__(start_round=start_round, interval=interval)
        self.points = ops.check_int("points", points, minimum=1)
        self.unroll = ops.check_int("unroll", unroll, minimum=1)
        self.iterations = ops.check_int("iterations", iterations, minimum=0)
        self.step = ops.check_range("step", step, 0.0, 1.0, lo_open=True, hi_open=False)
        self.fraction = ops.check_range("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        self.validation = ops.check_int("validation", validation, minimum=1)
        self.lr = None if lr is None else ops.check_positive("lr", lr)
        self.flip = ops.check_choice("flip", flip, FLIPS)
        self._poison: tuple[torch.Tensor, torch.Tensor] | None = None
        self._loss: list[float] | None = None

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        super().bind(data, colluder_rank=colluder_rank, colluders=colluders)
        if data.num_classes < 2:
            raise ValueError(f"back_gradient flips labels and needs at least 2 classes, got {data.num_classes}")
        low, high = data.normalise(0.0), data.normalise(255.0)
        self.low = torch.as_tensor(low, dtype=torch.float32)
        self.high = torch.as_tensor(high, dtype=torch.float32)

    # ------------------------------------------------------------------ optimisation

    def flipped(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        classes = self.data.num_classes
        if self.flip == "reverse":
            return classes - 1 - labels
        offset = torch.randint(1, classes, labels.shape, generator=generator, dtype=labels.dtype)
        return (labels + offset) % classes

    def problem(self, own: OwnTraining) -> tuple[tuple[torch.Tensor, torch.Tensor], UnrolledProblem]:
        """(initial poison set, the inner problem), drawn from the own shard with this
        round's generator: one permutation, cut into the poison points, the validation
        samples and the T clean batches (wrapping around when the shard is smaller than
        all of them together). The model copy is loaded with the own vector."""
        generator = own.generator(_SALT)
        batch = own.batch_size
        k = ops.poison_count(self.fraction, batch)
        clean_rows = max(batch - k, 1)
        need = self.points + self.validation + self.unroll * clean_rows
        n = len(own.labels)
        idx = torch.randperm(n, generator=generator)[torch.arange(need) % n]

        def take(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
            return own.images.index_select(0, idx[lo:hi]), own.labels.index_select(0, idx[lo:hi])

        xp, yp = take(0, self.points)
        base = self.points + self.validation
        model = own.load(own.vector)
        model.train()
        inner = UnrolledProblem(
            model=model,
            start={name: p.detach().clone() for name, p in model.named_parameters()},
            clean=[take(base + t * clean_rows, base + (t + 1) * clean_rows) for t in range(self.unroll)],
            validation=take(self.points, base),
            lr=self.lr if self.lr is not None else own.lr,
            weight=k / batch,
        )
        return (xp, self.flipped(yp, generator)), inner

    def optimise(self, own: OwnTraining) -> tuple[tuple[torch.Tensor, torch.Tensor], list[float]]:
        """The poison set after ``iterations`` projected ascent steps and [A of the initial
        set, A of the kept set]."""
        (xp, yp), inner = self.problem(own)
        scale = self.step * (self.high - self.low)
        best_x, best_a, first = xp, float("-inf"), None
        for _ in range(self.iterations):
            a, grad = inner.gradient((xp, yp))
            first = a if first is None else first
            if a > best_a:
                best_x, best_a = xp, a
            peak = float(grad.abs().max())
            if not 0.0 < peak < float("inf"):
                break
            xp = torch.minimum(torch.maximum(xp + scale * grad / peak, self.low), self.high)
        else:  # the last step's result has not been scored yet
            a = inner.value((xp, yp))
            first = a if first is None else first
            if a > best_a:
                best_x, best_a = xp, a
        return (best_x.detach(), yp), [first, best_a]

    def prepare(self, round_: int, own: OwnTraining) -> None:
        self._poison, self._loss = self.optimise(own)

    # ------------------------------------------------------------------ hooks

    def round_metrics(self) -> dict[str, Any]:
        loss, self._loss = self._loss, None
        return {"back_gradient_loss": loss} if loss is not None else {}

    def batch_hook(self) -> BatchHook | None:
        def poison(
            images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if self._poison is None:  # prepare() has not run (not a node core): clean batch
                return images, labels
            xp, yp = self._poison
            rows = ops.pick_rows(len(labels), self.fraction, generator)
            k = int(rows.sum())
            pick = torch.randperm(len(yp), generator=generator).repeat(-(-k // len(yp)))[:k]
            x, y = images.clone(), labels.clone()
            x[rows], y[rows] = xp.index_select(0, pick), yp.index_select(0, pick)
            return x, y

        return poison
