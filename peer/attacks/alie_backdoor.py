"""ALIE backdoor: train a backdoor from the benign mean, then clip into the benign spread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from peer.attacks import ops
from peer.attacks.alie import ALIEAttack
from peer.attacks.base import AttackContext, DataInfo, OwnTraining
from peer.attacks.optim import train_from
from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import TriggerAttack

#: Baruch et al.'s backdoor z (= alpha), Sec. 4.2
PAPER_Z = 0.2
#: Baruch et al. 2019 Sec. 4.2: "low alpha and z (both 0.2)"
PAPER_ALPHA = 0.2
#: Baruch et al. 2019 Sec. 4.2: 1000 triggered images per round, trained "for 5 rounds"
PAPER_SAMPLES = 1000
PAPER_EPOCHS = 5
_SALT = 0x414C4942  # "ALIB": this attack's draws from OwnTraining.generator


@ATTACKS.register("alie_backdoor")
class ALIEBackdoorAttack(TriggerAttack):
    r"""Train a backdoored model starting from the benign mean, then clip every sent
    coordinate into the benign spread (Baruch, Baruch & Goldberg, "A Little Is Enough",
    NeurIPS 2019, Sec. 3.4, Algorithm 4, Sec. 4.2):

    .. math::

        v = \mathrm{SGD}_{w_0 = \mu}\big[\alpha\,\ell_{backdoor}(w)
            + (1 - \alpha)\,\tfrac{1}{d}\lVert w - \mu\rVert^2\big], \qquad
        \tilde{x}_c = \min\big(\max(v_c,\ \mu_c - |z|\sigma_c),\ \mu_c + |z|\sigma_c\big)

    :math:`\mu_c, \sigma_c` are the coordinate-wise mean and sample std of the benign
    chunks of index c known this round (as ``alie``); :math:`\ell_{backdoor}` is the
    cross-entropy on ``samples`` images of the own shard with the trigger stamped and the
    label ``target``; :math:`\ell_\Delta` the MSE between the parameters and the start
    (Baruch et al. 2019: "the MSE Loss between the new parameters and the original ones", over all d
    parameters). Algorithm 4 line 4 prints the clip as :math:`\mu_j \pm z^{max}_j`; the
    range of Sec. 3.2 is :math:`\mu \pm z\sigma`, which is what is used (|z|: a clipping
    half-width must be non-negative).

    Defaults are Baruch et al. 2019, Sec. 4.2: z = alpha = 0.2, 1000 triggered samples per round,
    5 passes over them, the upper-left 5x5 pixels at maximum intensity (255), target 0.
    Baruch et al. 2019 is silent on the optimiser, learning rate and batch size of this training
    (its supplement): plain SGD with the run's ``train.lr`` (the own trainer's current
    learning rate) and ``train.batch_size`` unless ``lr`` / ``batch_size`` are given.
    Giving ``z_rule`` (and no ``z``) computes z as ``alie`` does.

    Chunk-level adaptation: the start :math:`w_0` is the attacker's whole own model (after
    this round's local training) with every chunk index c for which a benign chunk is
    known this round replaced by :math:`\mu_c` (in oracle mode: every chunk, the mean of
    all honest models, as in the paper); chunks with none known keep the own chunk (the
    ``alie`` fallback k = 0). The training runs once per round on that whole vector, in
    a private copy of the model; each neighbor then gets the clip of v's slices for its
    chunks with its own z (equal for every neighbor unless ``z_rule`` is given). k = 1:
    sigma = 0, the known benign chunk is sent.

    ``from_mu = false`` keeps byzemu's earlier approximation (no training from mu: the
    own model, trained on batches of which ``fraction`` is triggered, is clipped); the
    same happens when crafting without the own model (``ctx.own`` is None, outside a node
    core). Local training always poisons ``fraction`` of each batch (which only matters
    for chunks where no benign chunk is known). :meth:`round_metrics` records the mixed
    loss over the backdoor samples before and after the training
    (``alie_backdoor_loss``) and the z per neighbor (``alie_z``). A rushing attack
    (``needs_knowledge``); no ``boost``; ASR on the full-trigger test set as ``backdoor``.
    """

    needs_knowledge = True
    transient = ("_trained", "_loss", "_z_used")

    def __init__(
        self,
        *,
        z: float | None = None,
        z_rule: str | None = None,
        alpha: float = PAPER_ALPHA,
        samples: int = PAPER_SAMPLES,
        epochs: int = PAPER_EPOCHS,
        lr: float | None = None,
        batch_size: int | None = None,
        from_mu: bool = True,
        trigger_size: int = 5,
        trigger_position: str | Sequence[int] = (0, 0),
        **kwargs: Any,  # target, fraction, trigger_value (TriggerAttack); start_round, interval (Attack)
    ) -> None:
        super().__init__(trigger_size=trigger_size, trigger_position=trigger_position, **kwargs)
        if z is None and z_rule is None:
            z = PAPER_Z  # Baruch et al. 2019 Sec. 4.2; set z_rule to compute z as alie does instead
        self._init_z(z, z_rule or "neighbourhood")  # type: ignore[misc]  # borrowed, see _init_z
        self.alpha = ops.check_range("alpha", alpha, 0.0, 1.0, lo_open=False, hi_open=False)
        self.samples = ops.check_int("samples", samples, minimum=1)
        self.epochs = ops.check_int("epochs", epochs, minimum=0)
        self.lr = None if lr is None else ops.check_positive("lr", lr)
        self.batch_size = None if batch_size is None else ops.check_int("batch_size", batch_size, minimum=1)
        if not isinstance(from_mu, bool):
            raise ValueError(f"from_mu={from_mu!r} must be true or false")
        self.from_mu = from_mu
        self.uses_own_training = from_mu
        self._trained: tuple[int, np.ndarray] | None = None
        self._loss: list[float] | None = None

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        super().bind(data, colluder_rank=colluder_rank, colluders=colluders)
        self._byzantine = max(int(colluders), 1)

    # ALIEAttack's z rule, borrowed: it uses only z, z_rule, _byzantine and _z_used, which
    # _init_z sets here too (mypy checks the self type of a borrowed function: ignored below)
    _init_z = ALIEAttack._init_z
    z_for = ALIEAttack.z_for
    plan_warnings = ALIEAttack.plan_warnings

    def round_metrics(self) -> dict[str, Any]:
        metrics = ALIEAttack.round_metrics(self)  # type: ignore[arg-type]  # borrowed, see _init_z
        if self._loss is not None:
            metrics["alie_backdoor_loss"], self._loss = self._loss, None
        return metrics

    def backdoor_set(self, own: OwnTraining, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``samples`` images of the own shard (drawn from ``generator``), every one with
        the full trigger stamped and labelled ``target`` (Baruch et al. 2019 Sec. 4.2)."""
        x, y = own.sample(self.samples, generator)
        return ops.stamp(x, self.mask, self.value), torch.full_like(y, self.target)

    def start_vector(self, ctx: AttackContext) -> np.ndarray:
        """The own model with every chunk replaced by mu_c, the mean of the benign chunks
        of index c known this round (the own chunk where none is known)."""
        mu = [
            ops.coord_mean(ops.reference_stack(ctx, c, ops.chunk(ctx.own_vector, ctx.bounds, c)))
            for c in range(len(ctx.bounds))
        ]
        return np.concatenate(mu).astype(np.float32)

    def trained_vector(self, ctx: AttackContext, own: OwnTraining) -> np.ndarray:
        """v of Algorithm 4 line 2, computed once per round (every neighbor's payload is
        clipped from the same v)."""
        if self._trained is None or self._trained[0] != ctx.round:
            generator = own.generator(_SALT)
            data = self.backdoor_set(own, generator)
            v, before, after = train_from(
                own.model,
                self.start_vector(ctx),
                data,
                alpha=self.alpha,
                lr=self.lr if self.lr is not None else own.lr,
                epochs=self.epochs,
                batch_size=self.batch_size or own.batch_size,
                generator=generator,
            )
            self._trained, self._loss = (ctx.round, v), [before, after]
        return self._trained[1]

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        width = abs(self.z_for(ctx))  # type: ignore[misc]  # borrowed, see _init_z
        trained = self.trained_vector(ctx, ctx.own) if self.from_mu and ctx.own is not None else None
        out = {}
        for c, v in sorted(payload.items()):
            own = ops.own_chunk(payload, c)
            stack = ops.reference_stack(ctx, c, own)
            mu, sigma = ops.coord_mean(stack), ops.coord_std(stack)
            sent = own if trained is None else ops.chunk(trained, ctx.bounds, c)
            out[c] = ops.to_f32(np.clip(sent, mu - width * sigma, mu + width * sigma), v)
        return out
