"""The interface every Byzantine attack implements, and what an attacker may know.

An attack can act at two points of a Byzantine peer's round:

* data poisoning: :meth:`Attack.batch_hook` returns a function applied to every local
  training batch (e.g. stamp a trigger and relabel), or None;
* model poisoning: :meth:`Attack.craft` replaces the chunk payloads sent to one neighbor.

Attacks that train or optimise with the peer's own model and data when they act
(``alie_backdoor``'s training from the benign mean, ``back_gradient``'s poison
optimisation) set ``uses_own_training``: the node core then hands them an
:class:`OwnTraining` (a private copy of the model, the own shard, the training recipe and
a per-round seed), before local training through :meth:`Attack.prepare` and at craft
time as ``AttackContext.own``.

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
import torch.nn.functional as F
from torch import nn

from peer import chunking
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
class OwnTraining:
    """The Byzantine peer's own model, data and training recipe, for attacks that train or
    optimise when they act (``Attack.uses_own_training``).

    ``model`` is a private copy of the peer's model (same architecture and buffers): the
    attack may load any parameter vector into it (:meth:`load`) and train it; the peer's
    own model is never touched. ``images``/``labels`` are the own shard (normalised
    images, as the trainer sees them; never modify them). ``vector`` is the own parameter
    vector now: before this round's local training in :meth:`Attack.prepare`, after it
    at craft time. ``batch_size``, ``local_steps``, ``momentum`` and ``weight_decay``
    are the run's ``train`` section, ``lr`` the own trainer's learning rate now (after
    the schedule). ``seed`` is derived from (run seed, node, round): every random draw
    comes from :meth:`generator`, so the attack's randomness is the same in every driver
    and after a checkpoint, and it never consumes the trainer's batch generator.
    """

    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    vector: np.ndarray
    batch_size: int
    local_steps: int
    lr: float
    momentum: float
    weight_decay: float
    seed: int

    def generator(self, salt: int = 0) -> torch.Generator:
        """A fresh ``torch.Generator`` for this (run, node, round) and ``salt``."""
        seed = int(np.random.default_rng([self.seed, salt]).integers(0, 2**62))
        return torch.Generator().manual_seed(seed)

    def sample(self, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` distinct samples of the own shard (all of it, permuted, when the shard
        is smaller), drawn from ``generator``; new tensors."""
        idx = torch.randperm(len(self.labels), generator=generator)[:count]
        return self.images.index_select(0, idx), self.labels.index_select(0, idx)

    def load(self, vector: np.ndarray) -> nn.Module:
        """:attr:`model` with its parameters set to ``vector`` (float32, model order)."""
        chunking.load_vector(self.model, np.ascontiguousarray(vector, dtype=np.float32))
        return self.model

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss every peer minimises: mean cross-entropy."""
        return F.cross_entropy(logits, labels)


@dataclass(frozen=True)
class AttackContext:
    """What a Byzantine peer knows when it crafts the payload for one neighbor.

    ``own_vector`` is its model after this round's local training, ``own_before`` before
    it (so ``own_vector - own_before`` is its own update); ``bounds[c]`` is chunk c's
    [start, stop); ``neighborhood`` describes the target; ``neighbor_is_colluder`` tells
    whether the target is Byzantine too; ``rng`` is seeded by (seed, node, round, neighbor);
    ``own`` is the peer's model, data and recipe for attacks with ``uses_own_training``
    (None otherwise, and outside a node core, e.g. in unit tests of the pure crafting).
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
    own: OwnTraining | None = None


class Attack(ABC):
    """Base class: honest behavior unless a subclass overrides a hook."""

    name: ClassVar[str]
    #: True for rushing attacks that craft from benign chunks of the current round
    needs_knowledge: ClassVar[bool] = False
    #: True when the attack trains or optimises with its own model and data when it acts
    #: (the node core then builds an :class:`OwnTraining` for it)
    uses_own_training: bool = False
    #: attributes that live for one round only (left out of :meth:`state_dict`)
    transient: ClassVar[tuple[str, ...]] = ()
    #: timing (docs/ATTACKS.md, *Timing behaviours*; peer/rounds.py): send the round's
    #: chunks only once this fraction of runtime.chunk_timeout has passed since the end of
    #: local training (0: at once) ...
    hold: float = 0.0
    #: ... and each chunk message this many times (the receiver keeps the first)
    copies: int = 1

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
        (``peer/checkpoint.py``); default: a copy of its attributes (after :meth:`bind`),
        without the per-round ones named in ``transient``."""
        return {k: v for k, v in vars(self).items() if k not in self.transient}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, in place (hooks stay bound)."""
        vars(self).update(state)

    def batch_hook(self) -> BatchHook | None:
        """Transformation of each local training batch, or None for clean training."""
        return None

    def prepare(self, round_: int, own: OwnTraining) -> None:
        """Called before local training in every round the attack is active, for attacks
        with ``uses_own_training`` (e.g. optimise the poison points the batch hook then
        mixes in); default nothing."""

    def round_metrics(self) -> dict[str, Any]:
        """Extra values for this round's metrics of the Byzantine peer (e.g. ALIE's z per
        receiving neighbor), read once after the round's crafting; default none."""
        return {}

    def plan_warnings(
        self, *, nodes: int, byzantine: list[int], neighborhoods: dict[int, tuple[int, int]]
    ) -> list[str]:
        """Warnings shown before the run starts (e.g. ALIE attacking with z <= 0);
        ``neighborhoods`` maps every honest neighbor of a Byzantine peer to (its degree,
        its Byzantine neighbors). Default none."""
        return []

    def recipients(self, neighbors: list[int], rng: np.random.Generator) -> list[int]:
        """The neighbors that get this round's chunks, in order (timing: withholding);
        ``rng`` is seeded by (seed, node, round). Default: all of them."""
        return neighbors

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
