"""The interface every Byzantine attack implements, and what an attacker may know.

An attack can act at two points of a Byzantine peer's round:

* data poisoning: :meth:`Attack.batch_hook` returns a function applied to every local
  training batch (e.g. stamp a trigger and relabel), or None;
* model poisoning: :meth:`Attack.craft` replaces the chunk payloads sent to one neighbor.

``start_round`` and ``interval`` gate both: the attack is active in round t when
t >= start_round and (t - start_round) % interval == 0; otherwise the peer behaves
honestly.

Knowledge (docs/ATTACKS.md, *Knowledge*). A Byzantine peer knows its own data and
model and the chunks it receives. Attacks that set ``needs_knowledge`` are *rushing*: in
round t the peer first collects the round-t chunks of its honest neighbors, shares them
with its colluders over the collusion channel and waits for theirs, and only then crafts
what it sends (:class:`Knowledge`). In ``oracle`` mode (``byzantine.knowledge =
"oracle"``) every honest peer also sends its whole trained model to every Byzantine peer,
for reproducing papers that assume omniscience.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from peer.training import BatchHook

#: {sender: {chunk index: vector}}
Payloads = dict[int, dict[int, np.ndarray]]


@dataclass(frozen=True)
class DataInfo:
    """The dataset facts an attack validates its parameters against."""

    num_classes: int
    image_shape: tuple[int, ...]  #: (C, H, W) of one normalised image
    #: normalisation: x_norm = (x / 255 - mean) / std, with one value for every channel
    #: (float) or one per channel (tuple, e.g. CIFAR-10's RGB statistics)
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]

    def normalise(self, pixel: float) -> float | torch.Tensor:
        """A raw pixel value in [0, 255] in the normalised space the model sees: a float,
        or, with per-channel statistics, a float32 tensor of shape (C, 1, 1) that
        broadcasts over (B, C, H, W) images."""
        if isinstance(self.mean, tuple) or isinstance(self.std, tuple):
            c = self.image_shape[0]
            mean = np.broadcast_to(np.asarray(self.mean, dtype=np.float64), (c,))
            std = np.broadcast_to(np.asarray(self.std, dtype=np.float64), (c,))
            value = (pixel / 255.0 - mean) / std
            return torch.from_numpy(value.astype(np.float32)).view(c, 1, 1)
        return (pixel / 255.0 - self.mean) / self.std


@dataclass(frozen=True)
class Neighborhood:
    """What a Byzantine peer knows of a target neighbor j: n_j and f_j."""

    degree: int  #: number of j's graph neighbors
    byzantine: int  #: Byzantine peers among j's neighbors


@dataclass
class Knowledge:
    """Benign information a Byzantine peer has when it crafts in round t.

    ``observed``: round-t chunks it received from its honest neighbors;
    ``shared``: what each colluder observed, ``{colluder: {sender: {chunk: vector}}}``;
    ``oracle``: ``{honest node: whole trained vector}`` in oracle mode, else None.
    """

    observed: Payloads = field(default_factory=dict)
    shared: dict[int, Payloads] = field(default_factory=dict)
    oracle: dict[int, np.ndarray] | None = None

    def benign_chunks(self, index: int, bounds: list[tuple[int, int]]) -> list[np.ndarray]:
        """Every benign payload known for chunk ``index``, one per honest sender, ordered by
        sender id (a sender seen by several colluders counts once). In oracle mode: the
        slice ``index`` of every honest model."""
        if self.oracle is not None:
            lo, hi = bounds[index]
            return [self.oracle[j][lo:hi] for j in sorted(self.oracle)]
        by_sender: dict[int, np.ndarray] = {}
        for view in [self.observed, *(self.shared[c] for c in sorted(self.shared))]:
            for sender, chunks in view.items():
                if index in chunks and sender not in by_sender:
                    by_sender[sender] = chunks[index]
        return [by_sender[s] for s in sorted(by_sender)]

    def benign_stack(self, index: int, bounds: list[tuple[int, int]]) -> np.ndarray:
        """:meth:`benign_chunks` as a (k, d_c) float64 array (k may be 0)."""
        lo, hi = bounds[index]
        chunks = self.benign_chunks(index, bounds)
        if not chunks:
            return np.zeros((0, hi - lo))
        return np.stack([np.asarray(c, dtype=np.float64) for c in chunks])


@dataclass(frozen=True)
class AttackContext:
    """What a Byzantine peer knows when it crafts the payload for one neighbor.

    ``own_vector`` is its model after this round's local training, ``own_before`` before
    it (so ``own_vector - own_before`` is its own update); ``bounds[c]`` is chunk c's
    [start, stop); ``neighborhood`` describes the target; ``neighbor_is_colluder`` tells
    whether the target is Byzantine too; ``rng`` is seeded by (seed, node, round, neighbor).
    """

    node: int
    round: int
    neighbor: int
    own_vector: np.ndarray
    own_before: np.ndarray
    bounds: list[tuple[int, int]]
    knowledge: Knowledge
    neighborhood: Neighborhood
    neighbor_is_colluder: bool
    rng: np.random.Generator


class Attack(ABC):
    """Base class: honest behavior unless a subclass overrides a hook."""

    name: ClassVar[str]
    #: True for rushing attacks that craft from benign chunks of the current round
    needs_knowledge: ClassVar[bool] = False

    def __init__(self, *, start_round: int = 1, interval: int = 1) -> None:
        if start_round < 1:
            raise ValueError(f"start_round={start_round} must be >= 1")
        if interval < 1:
            raise ValueError(f"interval={interval} must be >= 1")
        self.start_round = start_round
        self.interval = interval

    def active(self, round_: int) -> bool:
        return round_ >= self.start_round and (round_ - self.start_round) % self.interval == 0

    def bind(self, data: DataInfo, *, colluder_rank: int = 0, colluders: int = 1) -> None:
        """Check parameters against the dataset (ValueError with a clear message) and keep
        what the attack needs. ``colluder_rank`` in 0..colluders-1 is this peer's position
        among the Byzantine peers (e.g. which part of a distributed trigger it uses)."""
        self.data = data

    def state_dict(self) -> dict[str, Any]:
        """Everything this attack carries from round to round, for a checkpoint
        (``peer/checkpoint.py``); default: a copy of its attributes (after :meth:`bind`)."""
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, in place (hooks stay bound)."""
        vars(self).update(state)

    def batch_hook(self) -> BatchHook | None:
        """Transformation of each local training batch, or None for clean training."""
        return None

    def craft(self, payload: dict[int, np.ndarray], ctx: AttackContext) -> dict[int, np.ndarray]:
        """Payload actually sent to ``ctx.neighbor``; default: the honest payload."""
        return payload

    def triggered_test_set(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For backdoor attacks: the test images of non-target classes with the (full)
        trigger stamped, labelled with the target class; the attack success rate is the
        fraction an honest model classifies as the target. None for other attacks."""
        return None
