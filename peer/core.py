"""The node core: one peer's training, chunking, attack crafting and aggregation.

This module does no I/O. Its round is ``train`` -> ``outgoing`` (the payloads per
neighbor, crafted from attacker knowledge when the attack needs it) -> ``end_round``
(aggregate per chunk index over what arrived, maybe evaluate). Which messages go out
between these calls and which are awaited is the round schedule in :mod:`peer.rounds`;
both drivers (the ZeroMQ runtime in :mod:`peer.runtime` and the in-process reference in
:mod:`launch.run.reference`) run that one schedule and only deliver its messages, so they
run exactly the same computation, which is what makes the multi-process run and the
reference bit-identical for the same config and seed.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from peer import checkpoint, chunking
from peer.attacks import Attack, AttackContext, build_attack
from peer.attacks.base import DataInfo, Knowledge, Neighborhood, OwnTraining
from peer.data import ImageData
from peer.defenses import ChunkContext, Defense, ModelProbe, RoundView, build_defense
from peer.device import select as select_device
from peer.models import build_model
from peer.schedule import lr_schedule
from peer.training import LocalTrainer, evaluate, round_steps
from protocol.assignment import Assignment
from protocol.codec import ChunkCheck
from protocol.graph import RoundGraph
from protocol.payload import PayloadCheck, Payloads

__all__ = ["NodeCore", "Payloads", "RoundResult", "model_digest"]

_ATTACK_SALT = 0x415454  # "ATT"
_OWN_SALT = 0x4F574E  # "OWN": OwnTraining.seed
_LOSS_BATCH = 64  # local samples used by defenses that score a payload by its loss


@dataclass
class RoundResult:
    """What a peer reports for one round (metrics are deterministic, timing is not)."""

    metrics: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)
    #: the senders each inbox read found (peer/rounds.py): the run's delivery log
    delivery: dict[str, list[int]] = field(default_factory=dict)


def model_digest(vector: np.ndarray) -> str:
    """Short SHA-256 of the float32 parameter vector: equal digests = identical models."""
    return hashlib.sha256(np.ascontiguousarray(vector, "<f4").tobytes()).hexdigest()[:16]


class NodeCore:
    """One peer's state and per-round computation, built from its :class:`Assignment`."""

    def __init__(
        self,
        assignment: Assignment,
        *,
        train_data: ImageData,
        test_set: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        self.assignment = assignment
        cfg = self.config = assignment.config
        self.node = assignment.node
        #: whom this peer sends chunks to and accepts them from in the current round: the
        #: assignment's neighbors, or (a graph that changes) each round_start's graph (use_graph)
        self.receive_from = list(assignment.neighbors if assignment.receive_from is None else assignment.receive_from)
        self.neighbors = list(self.receive_from)
        self.neighborhoods = dict(assignment.neighborhoods)  #: Byzantine: n_j, f_j per peer it sends to
        self.present: frozenset[int] | None = None  #: churn: the peers in the round (None: all)
        self.welcome: list[int] = []  #: churn: the new peers it sends its model to this round
        channels, size, _ = train_data.image_shape  # every dataset's images are square
        shape = {"in_channels": channels, "image_size": size, "num_classes": train_data.num_classes}
        # every peer starts from the same model. The CPU generator alone: torch.manual_seed
        # also queues a CUDA seed with the caller's formatted stack, reading each frame's
        # source file into linecache (~0.4 MiB per peer; BENCHMARKS.md section 8)
        torch.default_generator.manual_seed(cfg.seed)
        self.model = build_model(cfg.model.name, **shape)
        #: where the model trains and evaluates (train.device; peer/device.py): the
        #: weights are drawn on the CPU above, so every device starts from the same model
        self.device = select_device(cfg.train.device, cfg.train.device_map, self.node)
        self._on_device = self.device.type != "cpu"
        if self._on_device:
            self.model.to(self.device)
        self._scratch = build_model(cfg.model.name, **shape)
        self._scratch.eval()  # only ever evaluated (loss_with_chunk)
        self._scratch_params = list(self._scratch.parameters())
        data_info = DataInfo(
            num_classes=train_data.num_classes,
            image_shape=train_data.image_shape,
            mean=train_data.mean,
            std=train_data.std,
        )
        self._data_info = data_info
        self.colluders = list(assignment.colluders)
        self.attack: Attack | None = None
        if assignment.role.byzantine:
            self.attack = build_attack(assignment.role.attack, assignment.role.params)
            byz = sorted([self.node, *self.colluders])
            self.attack.bind(data_info, colluder_rank=byz.index(self.node), colluders=len(byz))
        # every peer knows the configured attack's trigger, to measure its success rate
        self._asr_attack: Attack | None = None
        if cfg.byzantine.present:
            self._asr_attack = build_attack(cfg.byzantine.attack, cfg.byzantine.params)
            self._asr_attack.bind(data_info)
        self.defense: Defense = build_defense(
            cfg.defense.name, cfg.defense.params, cfg.defense.pre, cfg.defense.pre_params
        )
        #: Byzantine peers evaluate only when asked (eval.byzantine) or when their defense
        #: acts on its evaluations (loss_threshold's schedule): their accuracy is in no
        #: summary, and skipping it must not change their model
        self._evaluates = (
            not assignment.role.byzantine
            or cfg.eval.byzantine
            or type(self.defense).observe_evaluation is not Defense.observe_evaluation
        )
        images, labels = train_data.tensors(assignment.shard)
        self.trainer = LocalTrainer(
            model=self.model,
            images=images,
            labels=labels,
            batch_size=cfg.train.batch_size,
            lr=cfg.train.lr,
            momentum=cfg.train.momentum,
            weight_decay=cfg.train.weight_decay,
            seed=_derive_seed(cfg.seed, self.node),
            lr_at=lr_schedule(
                cfg.train.lr_schedule,
                cfg.train.lr,
                fading=cfg.train.lr_fading,
                step_epochs=cfg.train.lr_step_epochs,
                step_gamma=cfg.train.lr_step_gamma,
            ),
            device=self.device if self._on_device else None,
        )
        self._poison_hook = self.attack.batch_hook() if self.attack else None
        #: a private model copy for attacks that train with their own model (OwnTraining)
        self._own_model = copy.deepcopy(self.model) if self.attack and self.attack.uses_own_training else None
        if self._own_model is not None and self._on_device:  # an attack's own training runs in host memory
            self._own_model.cpu()
        # rounds per pass over the shard (the sampler drops a short last batch)
        steps_per_epoch = len(labels) // self.trainer.batch_size
        #: SGD steps per round: train.local_steps, or train.local_epochs full passes
        self.local_steps = round_steps(cfg.train.local_steps, cfg.train.local_epochs, steps_per_epoch)
        self.defense.set_epoch_length(steps_per_epoch / max(self.local_steps, 1))
        self.test_images, self.test_labels = test_set
        self._triggered = (
            self._asr_attack.triggered_test_set(*test_set) if self._asr_attack and self._evaluates else None
        )
        if self._on_device and self._evaluates:  # evaluated every eval.every rounds: kept on the device
            self.test_images, self.test_labels = self.test_images.to(self.device), self.test_labels.to(self.device)
            if self._triggered is not None:
                self._triggered = (self._triggered[0].to(self.device), self._triggered[1].to(self.device))
        self.loss_batch = (images[:_LOSS_BATCH], labels[:_LOSS_BATCH])
        #: the model's parameter tensors, walked once (load_state_dict copies into them)
        self._params = list(self.model.parameters())
        self.vector = chunking.flatten(self._params)
        self.vector_before = self.vector
        self.bounds = chunking.chunk_bounds(self.vector.size, cfg.chunks.count)
        sizes = [hi - lo for lo, hi in self.bounds]
        if assignment.chunk_sizes and assignment.chunk_sizes != sizes:
            raise ValueError(
                f"assigned chunk sizes {assignment.chunk_sizes} differ from this peer's model "
                f"({sizes}); coordinator and peer disagree on model {cfg.model.name!r}"
            )
        #: the compiled check of a received chunk message (sender, indices, dtypes, lengths),
        #: built once for the run; drivers that receive bytes use it before check_payload
        self.chunk_check = ChunkCheck(
            senders=assignment.neighbors, sizes=sizes, max_bytes=cfg.runtime.max_message_bytes
        )
        #: the checks of a decoded payload against this peer's model and graph
        self.payload_check = PayloadCheck(
            node=self.node,
            neighbors=assignment.neighbors,
            colluders=self.colluders,
            num_nodes=assignment.num_nodes,
            bounds=self.bounds,
            oracle=self.oracle_mode,
        )
        #: per chunk index, what end_round hands the defense besides the chunks (built once)
        self._hooks = [self._chunk_hooks(c) for c in range(len(self.bounds))]
        self._own_loss: float | None = None
        self._own_sample_loss: float | None = None
        self._train_loss = float("nan")
        self._train_s = self._train_cpu_s = 0.0
        self._craft_s = self._craft_cpu_s = 0.0

    # ------------------------------------------------------------------ round, part 1

    def begin_round(self, round_: int) -> Payloads:
        """Train, then return the payloads to send (:meth:`train` + :meth:`outgoing`);
        for drivers that do not collect attacker knowledge first."""
        self.train(round_)
        return self.outgoing(round_)

    def attacking(self, round_: int) -> bool:
        return self.attack is not None and self.attack.active(round_)

    def needs_knowledge(self, round_: int) -> bool:
        """True when this Byzantine peer crafts round ``round_`` from current benign chunks
        (it must first collect its honest neighbors' chunks and its colluders' views)."""
        return self.attacking(round_) and self.attack is not None and self.attack.needs_knowledge

    def use_graph(self, graph: RoundGraph) -> None:
        """The round's graph (a run whose graph changes): whom to send to, whom chunks come
        from, and (Byzantine) the targets' neighborhoods. Per-neighbor state of the defense
        and the attack is kept across rounds by sender id (docs/DEFENSES.md)."""
        self.neighbors, self.receive_from = list(graph.send_to), list(graph.receive_from)
        self.neighborhoods = dict(graph.neighborhoods)
        self.present = frozenset(graph.present) or None
        self.welcome = list(graph.welcome)

    def take_model(self, models: dict[int, np.ndarray]) -> None:
        """A new peer's first model (churn.join), before it first trains: the mean
        ``(1/k) * sum_j x_j`` of the ``k`` models it got, in sender order (k = 1 for
        join_model = "neighbor"); none got: it keeps the initial model. Its optimizer and
        defense start fresh, as a new peer's would."""
        if not models:
            return
        stack = np.stack([np.asarray(models[j], dtype=np.float32) for j in sorted(models)])
        self.vector = stack.mean(axis=0, dtype=np.float32)
        self.vector_before = self.vector
        chunking.load_vector(self._params, self.vector)

    def taking_part(self, nodes: Iterable[int]) -> list[int]:
        """Those of ``nodes`` that take part in the round (all but the away, under churn)."""
        return [j for j in nodes if self.present is None or j in self.present]

    def honest_neighbors(self) -> list[int]:
        """The honest peers whose chunks this one receives this round."""
        colluders = set(self.colluders)
        return [j for j in self.receive_from if j not in colluders]

    def train(self, round_: int) -> None:
        """Local training (on poisoned batches when a data-poisoning attack is active)."""
        start, cpu = time.perf_counter(), time.process_time()
        self.trainer.batch_hook = self._poison_hook if self.attacking(round_) else None
        own = self._own_training(round_) if self.attacking(round_) else None
        if self.attack is not None and own is not None:
            self.attack.prepare(round_, own)
        self.vector_before = self.vector
        self._train_loss = self.trainer.train(self.local_steps)
        self.vector = chunking.flatten(self._params)
        self._train_s = time.perf_counter() - start
        self._train_cpu_s = time.process_time() - cpu

    def outgoing(self, round_: int, knowledge: Knowledge | None = None) -> Payloads:
        """``{neighbor: {chunk index: payload}}`` to send in ``round_`` (after :meth:`train`):
        the chunk policy's chunks, crafted per neighbor when an attack is active."""
        start, cpu = time.perf_counter(), time.process_time()
        cfg = self.config
        plan = chunking.assign_chunks(
            node=self.node,
            neighbors=self.neighbors,
            round_=round_,
            count=cfg.chunks.count,
            per_neighbor=cfg.chunks.per_neighbor,
            seed=cfg.seed,
        )
        outgoing: Payloads = {}
        attacking = self.attacking(round_)
        # honest payloads are read-only views of the own vector, which is replaced each round
        # and never written in place; an attack gets copies it may change
        take = self.chunk if attacking else self._chunk_view
        for neighbor, indices in plan.items():
            payload = {c: take(c) for c in indices}
            if attacking:
                assert self.attack is not None
                degree, byz = self.neighborhoods.get(neighbor, (0, 0))
                ctx = AttackContext(
                    node=self.node,
                    round=round_,
                    neighbor=neighbor,
                    own_vector=self.vector,
                    own_before=self.vector_before,
                    bounds=self.bounds,
                    knowledge=knowledge if knowledge is not None else Knowledge(),
                    neighborhood=Neighborhood(degree=degree, byzantine=byz),
                    neighbor_is_colluder=neighbor in self.colluders,
                    rng=np.random.default_rng([cfg.seed, self.node, round_, neighbor, _ATTACK_SALT]),
                    own=self._own_training(round_),
                )
                payload = {c: np.asarray(v, dtype=np.float32) for c, v in self.attack.craft(payload, ctx).items()}
            outgoing[neighbor] = payload
        self._craft_s, self._craft_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        return outgoing

    def _own_training(self, round_: int) -> OwnTraining | None:
        """This Byzantine peer's model copy, shard and recipe for its attack in ``round_``
        (None unless the attack has ``uses_own_training``)."""
        if self._own_model is None:
            return None
        train = self.config.train
        return OwnTraining(
            model=self._own_model,
            images=self.trainer.images,
            labels=self.trainer.labels,
            vector=self.vector,
            batch_size=self.trainer.batch_size,
            local_steps=self.local_steps,
            lr=self.trainer.optimizer.lr,
            momentum=train.momentum,
            weight_decay=train.weight_decay,
            seed=int(np.random.default_rng([self.config.seed, self.node, round_, _OWN_SALT]).integers(0, 2**62)),
        )

    def chunk(self, index: int) -> np.ndarray:
        """Copy of the own chunk ``index`` of the current parameter vector."""
        start, stop = self.bounds[index]
        return self.vector[start:stop].copy()

    def _chunk_view(self, index: int) -> np.ndarray:
        """The own chunk ``index`` of the current parameter vector as a read-only view."""
        start, stop = self.bounds[index]
        view = self.vector[start:stop]
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ validation

    def check_payload(self, sender: int, indices: list[Any], arrays: list[np.ndarray]) -> None:
        """Raise ProtocolError unless ``sender``'s chunk payload fits this peer's model
        (:meth:`protocol.payload.PayloadCheck.chunks`)."""
        self.payload_check.chunks(sender, indices, arrays)

    @property
    def oracle_mode(self) -> bool:
        """This Byzantine peer receives the honest models (byzantine.knowledge = oracle)."""
        return self.attack is not None and self.attack.needs_knowledge and self.config.byzantine.knowledge == "oracle"

    def check_collusion(self, sender: int, items: list[Any], arrays: list[np.ndarray]) -> Payloads:
        """A colluder's view as ``{sender: {chunk: vector}}``; ProtocolError if anything is
        off (:meth:`protocol.payload.PayloadCheck.collusion`)."""
        return self.payload_check.collusion(sender, items, arrays)

    def check_oracle(self, sender: int, arrays: list[np.ndarray]) -> None:
        """Validate an honest peer's whole model sent in oracle mode
        (:meth:`protocol.payload.PayloadCheck.oracle_model`)."""
        self.payload_check.oracle_model(sender, arrays)

    # ------------------------------------------------------------------ round, part 2

    def end_round(self, round_: int, received: Payloads) -> RoundResult:
        """Aggregate chunk by chunk over the own chunk and ``received``; evaluate if due."""
        start, cpu = time.perf_counter(), time.process_time()
        senders = sorted(received)
        # the own vectors are replaced each round, never written in place: views of them,
        # and of the received chunks, are the defense's inputs (which it must not modify)
        vector, before = self.vector, self.vector_before
        own_all, before_all = torch.from_numpy(vector), torch.from_numpy(before)
        new = vector.copy()
        self._own_loss = None  # loss_with_chunk caches the own model's loss for this round
        self._own_sample_loss = None
        as_tensors = {j: {c: _as_tensor(v) for c, v in received[j].items()} for j in senders}
        self.defense.begin_round(round_, own_all, as_tensors, self.bounds)
        self.defense.judge_round(self._round_view(round_, own_all, before_all, as_tensors))
        received_count = 0
        degree, size = len(self.receive_from), vector.size
        for c, (lo, hi) in enumerate(self.bounds):
            from_whom = tuple(j for j in senders if c in received[j])
            if not from_whom:
                continue
            payloads = [as_tensors[j][c] for j in from_whom]
            received_count += len(payloads)
            loss_with, sample_loss_with, probe = self._hooks[c]
            ctx = ChunkContext(
                node=self.node,
                round=round_,
                index=c,
                senders=from_whom,
                degree=degree,
                model_size=size,
                own_before=before_all[lo:hi],
                loss_with=loss_with,
                sample_loss_with=sample_loss_with,
                probe=probe,
            )
            new[lo:hi] = self.defense.aggregate(own_all[lo:hi], payloads, ctx).numpy()
        aggregate_s = time.perf_counter() - start
        aggregate_cpu_s = time.process_time() - cpu
        self.vector = new
        chunking.load_vector(self._params, self.vector)
        metrics: dict[str, Any] = {
            "train_loss": self._train_loss,
            "chunks_received": received_count,
            "senders": len(senders),
            "digest": model_digest(self.vector),
        }
        metrics.update(self.defense.round_metrics())
        if self.attack is not None:
            metrics.update(self.attack.round_metrics())
        # wall seconds (``*_s``) and this process's CPU seconds (``*_cpu_s``): they differ
        # when more peers than cores share the machine
        timing = {
            "train_s": self._train_s,
            "aggregate_s": aggregate_s,
            "train_cpu_s": self._train_cpu_s,
            "aggregate_cpu_s": aggregate_cpu_s,
        }
        if self.attacking(round_):  # chunking + crafting (an attack's craft-time training)
            timing.update(craft_s=self._craft_s, craft_cpu_s=self._craft_cpu_s)
        if self.config.eval_round(round_) and self._evaluates:
            start, cpu = time.perf_counter(), time.process_time()
            acc, loss = evaluate(self.model, self.test_images, self.test_labels, batch_size=self.config.eval.batch_size)
            metrics.update(test_accuracy=acc, test_loss=loss)
            if self._triggered is not None:
                asr, _ = evaluate(self.model, *self._triggered, batch_size=self.config.eval.batch_size)
                metrics["attack_success_rate"] = asr
            self.defense.observe_evaluation(round_, acc, loss)
            timing["eval_s"] = time.perf_counter() - start
            timing["eval_cpu_s"] = time.process_time() - cpu
        return RoundResult(metrics, timing)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self, round_: int) -> dict[str, Any]:
        """Everything this node carries into round ``round_ + 1`` (call after
        :meth:`end_round`): with it a fresh core built from the same assignment continues
        bit-identically (``peer/checkpoint.py`` writes it to disk)."""
        return {
            "format": checkpoint.FORMAT,
            "round": round_,
            "node": self.node,
            "config": checkpoint.config_fingerprint(self.config),
            "digest": model_digest(self.vector),
            "model": {k: v.cpu() for k, v in self.model.state_dict().items()},  # host tensors (CPU: the same ones)
            "vector": self.vector.copy(),
            "trainer": self.trainer.state_dict(),
            "defense": self.defense.state_dict(),
            "attack": self.attack.state_dict() if self.attack is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore what :meth:`state_dict` returned; return its round. ValueError if it was
        written by another node or under a config that gives other results."""
        if state["node"] != self.node:
            raise ValueError(f"checkpoint of node {state['node']}, this is node {self.node}")
        if state["config"] != checkpoint.config_fingerprint(self.config):
            raise ValueError("checkpoint written under another config (fingerprints differ)")
        vector = np.asarray(state["vector"], dtype=np.float32)
        if vector.shape != self.vector.shape or model_digest(vector) != state["digest"]:
            raise ValueError("checkpoint model does not match its digest or this model's size")
        self.model.load_state_dict(state["model"])
        self.vector = vector.copy()
        self.vector_before = self.vector
        self.trainer.load_state_dict(state["trainer"])
        self.defense.load_state_dict(state["defense"])
        if self.attack is not None:
            self.attack.load_state_dict(state["attack"])
        return int(state["round"])

    def loss_with_chunk(self, index: int, payload: torch.Tensor, *, sample: bool = False) -> float:
        """Loss on a local batch of the own model with chunk ``index`` replaced by ``payload``:
        the fixed batch, or with ``sample`` the mini-batch trained on last this round.

        The own chunk gives the own model's loss whatever the index, so that value is
        computed once per round (rules like Sentinel and UBAR ask for it at every index).
        """
        batch = self.trainer.last_batch if sample and self.trainer.last_batch else self.loss_batch
        lo, hi = self.bounds[index]
        own = torch.from_numpy(self.vector[lo:hi])
        if payload.shape == own.shape and torch.equal(payload, own):
            if sample:
                if self._own_sample_loss is None:
                    self._own_sample_loss = self._loss_of(self.vector, batch)
                return self._own_sample_loss
            if self._own_loss is None:
                self._own_loss = self._loss_of(self.vector, batch)
            return self._own_loss
        vec = self.vector.copy()
        vec[lo:hi] = payload.numpy()
        return self._loss_of(vec, batch)

    def _chunk_hooks(self, index: int) -> tuple[Any, Any, ModelProbe]:
        """``loss_with``, ``sample_loss_with`` and ``probe`` of chunk ``index`` (they read
        the own vector when called, so one set serves every round)."""
        return (
            lambda p: self.loss_with_chunk(index, p),
            lambda p: self.loss_with_chunk(index, p, sample=True),
            self._probe(index),
        )

    def _probe(self, index: int) -> ModelProbe:
        """The own model with a payload substituted for chunk ``index`` (a scratch copy)."""
        lo, hi = self.bounds[index]

        def model_with(payload: torch.Tensor) -> torch.nn.Module:
            vec = self.vector.copy()
            vec[lo:hi] = payload.numpy()
            chunking.load_vector(self._scratch_params, vec)
            return self._scratch

        info, train = self._data_info, self.config.train
        return ModelProbe(model_with, (lo, hi), info.image_shape, info.num_classes, self.local_steps, train.lr)

    def _round_view(
        self, round_: int, own: torch.Tensor, before: torch.Tensor, received: dict[int, dict[int, torch.Tensor]]
    ) -> RoundView:
        """The whole round for neighbor-level defenses, with whole-model loss hooks and probe."""

        def loss_with(vec: torch.Tensor, sample: bool = False) -> float:
            batch = self.trainer.last_batch if sample and self.trainer.last_batch else self.loss_batch
            return self._loss_of(vec.numpy(), batch)

        def model_with(vec: torch.Tensor) -> torch.nn.Module:
            chunking.load_vector(self._scratch_params, vec.numpy())
            return self._scratch

        info, train = self._data_info, self.config.train
        span = (0, own.numel())
        probe = ModelProbe(model_with, span, info.image_shape, info.num_classes, self.local_steps, train.lr)
        return RoundView(
            node=self.node,
            round=round_,
            degree=len(self.neighbors),
            own=own,
            own_before=before,
            received=received,
            bounds=self.bounds,
            loss_with=loss_with,
            sample_loss_with=lambda vec: loss_with(vec, sample=True),
            probe=probe,
        )

    def _loss_of(self, vec: np.ndarray, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        chunking.load_vector(self._scratch_params, vec)
        with torch.no_grad():
            x, y = batch
            return float(F.cross_entropy(self._scratch(x), y).item())


def _as_tensor(chunk: np.ndarray) -> torch.Tensor:
    """A received chunk as a float32 tensor: a view of a writable float32 array (a frame
    decoded by the codec), else a copy (read-only views a driver delivers from memory)."""
    if chunk.dtype == np.float32 and chunk.flags.writeable:
        return torch.from_numpy(chunk)
    return torch.from_numpy(np.array(chunk, dtype=np.float32))


def _derive_seed(seed: int, node: int) -> int:
    """A per-node seed from the run seed (stable, independent of timing)."""
    return int(np.random.default_rng([seed, node]).integers(0, 2**62))
