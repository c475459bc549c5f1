"""What every trigger-based (backdoor) attack shares: the trigger, the poisoned batches,
the attack-success-rate test set and the optional model-replacement boost.

``backdoor``, ``dba`` and ``alie_backdoor`` subclass :class:`TriggerAttack` (``backdoor``
and ``dba`` through :class:`BoostedTriggerAttack`) and declare only what differs (which
part of the trigger a colluder stamps, what is sent, their own parameters). The bases are
not registered. The trigger parameters are declared once, keyword-only, in
:class:`TriggerAttack`; a subclass's ``__init__`` takes ``**kwargs`` and passes them on,
and the registry reads the parameters through the class hierarchy
(:func:`peer.registry.keyword_parameters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from peer.attacks import ops
from peer.attacks.base import Attack, AttackContext, DataInfo
from peer.training import BatchHook


class TriggerAttack(Attack):
    """Base of the attacks that poison training batches with a square pixel trigger.

    It validates the trigger parameters (``target``, ``fraction``, ``trigger_size``,
    ``trigger_value``, ``trigger_position``; their meaning is documented on
    :class:`~peer.attacks.backdoor.BackdoorAttack`) and ``boost``, fits the trigger to the
    dataset in :meth:`bind`, stamps ceil(fraction * B) samples of every training batch
    with :meth:`_local_mask` (the whole trigger unless a subclass splits it) and the
    target label, sends the trained chunks boosted by ``boost`` (unchanged at the default
    1) and builds the attack-success-rate set with the full trigger.

    Subclasses override :meth:`_local_mask` (which part of the trigger a colluder stamps)
    and :meth:`craft` (what is sent), and add their own parameters.
    """

    def __init__(
        self,
        *,
        target: int = 0,
        fraction: float = 0.5,
        trigger_size: int = 4,
        trigger_value: float = 255.0,
        trigger_position: str | Sequence[int] = "bottom_right",
        **kwargs: Any,  # start_round, interval (Attack)
    ) -> None:
        super().__init__(**kwargs)
        self.target = ops.check_int("target", target)
        self.fraction = ops.check_range("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=False)
        self.trigger_size = ops.check_int("trigger_size", trigger_size, minimum=1)
        self.trigger_value = ops.check_range("trigger_value", trigger_value, 0.0, 255.0, lo_open=False, hi_open=False)
        self.trigger_position = ops.check_position(trigger_position)
        self.boost = 1.0  #: the sent chunks are the trained ones (BoostedTriggerAttack: a parameter)

    # ------------------------------------------------------------------ bind

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        super().bind(data, colluder_rank=colluder_rank, colluders=colluders)
        ops.check_class("target", self.target, data.num_classes)
        height, width = data.image_shape[-2], data.image_shape[-1]
        origin = ops.trigger_origin(self.trigger_position, self.trigger_size, height, width)
        #: full (global) trigger, used for the attack success rate
        self.mask = ops.square_mask(height, width, origin, self.trigger_size)
        value = data.normalise(self.trigger_value)  # float, or (C, 1, 1) per-channel values
        self.value = value if isinstance(value, torch.Tensor) else float(value)
        self.local_mask = self._local_mask(colluder_rank, colluders)

    def _local_mask(self, colluder_rank: int, colluders: int) -> torch.Tensor:
        """The part of the trigger this peer stamps on its training batches: all of it."""
        return self.mask

    # ------------------------------------------------------------------ hooks

    def batch_hook(self) -> BatchHook | None:
        if not hasattr(self, "local_mask"):
            raise RuntimeError(f"{self.name}: bind() must be called before batch_hook()")
        mask, value, target, fraction = self.local_mask, self.value, self.target, self.fraction

        def poison(
            images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
        ) -> tuple[torch.Tensor, torch.Tensor]:
            rows = ops.pick_rows(len(labels), fraction, generator)
            x = ops.stamp(images, mask, value, rows)
            y = torch.where(rows, torch.as_tensor(target, dtype=labels.dtype), labels)
            return x, y

        return poison

    def boost_for(self, ctx: AttackContext) -> float:
        """The factor of the own update sent to ``ctx.neighbor`` (``boost``)."""
        return self.boost

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        boost = self.boost_for(ctx)
        if boost == 1.0:
            return {c: ops.to_f32(v, v) for c, v in sorted(payload.items())}
        out = {}
        for c, v in sorted(payload.items()):
            before = ops.before_chunk(ctx, c)
            out[c] = ops.to_f32(before + boost * ops.update(ops.own_chunk(payload, c), before), v)
        return out

    def triggered_test_set(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not hasattr(self, "mask"):
            raise RuntimeError(f"{self.name}: bind() must be called before triggered_test_set()")
        keep = labels != self.target
        x = ops.stamp(images[keep], self.mask, self.value)
        y = torch.full((int(keep.sum()),), self.target, dtype=labels.dtype)
        return x, y


class BoostedTriggerAttack(TriggerAttack):
    """A trigger attack with the optional model-replacement ``boost`` (> 0, default 1: the
    trained chunks are sent unchanged); its meaning is documented on
    :class:`~peer.attacks.backdoor.BackdoorAttack`."""

    def __init__(self, *, boost: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.boost = ops.check_positive("boost", boost)
