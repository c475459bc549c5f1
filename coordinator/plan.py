"""The experiment plan: graph, Byzantine roles and data shards, derived from the config.

The coordinator and the in-process reference build the same :class:`Plan` from the same
config, so both hand every node an identical :class:`~protocol.assignment.Assignment`.
Building the plan also validates everything that can be checked before any process
starts: topology feasibility, role counts, data directory, model, defense and attack
names and parameters.

Validation is cheap where it repeats: the model is built (with one forward pass, to check
that it fits the dataset) once per (model, image shape, classes) in a process
(:func:`model_size`), and a :class:`Planner` (``byzemu sweep``) plans each distinct config
once and reads each dataset's training labels once.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from coordinator.dynamics import GraphSchedule
from coordinator.roles import added_count, attach_added, choose_byzantine, dominate
from coordinator.sharding import make_shards
from coordinator.topology import build_topology, graph_to_json, neighbors_of
from peer import data
from peer.attacks import ATTACKS, build_attack
from peer.attacks.base import DataInfo
from peer.chunking import chunk_bounds
from peer.defenses import build_defense
from peer.models import MODELS, ModelError, build_model, check_input, param_count
from peer.registry import RegistryError
from protocol.assignment import Assignment, Role
from protocol.config import RunConfig

log = logging.getLogger("byzemu.plan")


@dataclass
class Plan:
    """Who is connected to whom, who is Byzantine, and which samples each node holds."""

    config: RunConfig
    graph: nx.Graph
    byzantine: list[int]
    shards: list[np.ndarray]
    chunk_sizes: list[int]
    #: plan-time warnings (e.g. an ALIE attack whose z <= 0), also logged when built
    warnings: list[str] = field(default_factory=list)
    #: the graph of every round (topology.dynamic; the plan's graph when static)
    schedule: GraphSchedule | None = None

    @property
    def rounds(self) -> GraphSchedule:
        """The graph schedule (built from ``graph`` if the plan was made without one)."""
        if self.schedule is None:
            self.schedule = GraphSchedule(self.config, self.graph, self.byzantine)
        return self.schedule

    def role(self, node: int) -> Role:
        b = self.config.byzantine
        if node in self.byzantine:
            return Role(True, b.attack, dict(b.params))
        return Role(False, "", {})

    @property
    def oracle(self) -> bool:
        """Oracle knowledge mode is on and the attack uses knowledge."""
        b = self.config.byzantine
        return b.knowledge == "oracle" and bool(self.byzantine) and ATTACKS.get(b.attack).needs_knowledge

    def assignment(self, node: int) -> Assignment:
        byzantine = node in self.byzantine
        a = Assignment(
            node=node,
            num_nodes=self.config.nodes,
            neighbors=[],
            role=self.role(node),
            config=self.config,
            shard=self.shards[node],
            chunk_sizes=list(self.chunk_sizes),
            colluders=[b for b in self.byzantine if b != node] if byzantine else [],
            oracle_targets=list(self.byzantine) if (self.oracle and not byzantine) else [],
        )
        if self.rounds.dynamic:  # every peer may become a neighbor; round_start says who is
            a.neighbors = [j for j in range(self.config.nodes) if j != node]
            first = self.rounds.presence.next_round(node, 0) or 1
            a.receive_from = list(self.rounds.view(node, first).receive_from)
            a.first_round = first if first > 1 else None
            a.join_from = list(self.rounds.join_from(node))
            return a
        a.neighbors = neighbors_of(self.graph, node)
        if byzantine:
            bset = set(self.byzantine)
            a.neighborhoods = {
                j: (len(nb), len(bset.intersection(nb))) for j in a.neighbors for nb in [neighbors_of(self.graph, j)]
            }
        return a

    def topology_json(self, peers: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Graph and roles (plus, when given, each peer's pid/host/address) for results."""
        nodes = []
        for i in range(self.config.nodes):
            entry: dict[str, Any] = {
                "id": i,
                "role": self.role(i).label,
                "byzantine": i in self.byzantine,
                "neighbors": neighbors_of(self.graph, i),
                "shard_size": int(self.shards[i].size),
            }
            if peers and i in peers:
                entry.update(peers[i])
            nodes.append(entry)
        graph = graph_to_json(self.graph)
        out: dict[str, Any] = {"kind": self.config.topology.kind, "nodes": nodes, "edges": graph["edges"]}
        if self.rounds.dynamic:  # the graph above is the plan's first; rounds.jsonl has each round's
            out["dynamic"] = self.config.topology.dynamic
        return out


#: reads the training labels of ``cfg``'s dataset (what the shards are drawn from)
LabelReader = Callable[[RunConfig], np.ndarray]


def read_train_labels(cfg: RunConfig) -> np.ndarray:
    d = cfg.data
    root = Path(d.root) if d.root else None
    return data.train_labels(d.dataset, root, synthetic_size=d.synthetic_size, seed=cfg.seed)


def build_plan(cfg: RunConfig, *, labels: LabelReader = read_train_labels) -> Plan:
    """Validate ``cfg`` against the world and derive the plan (raises user-facing errors)."""
    t = cfg.topology
    b = cfg.byzantine
    added = added_count(cfg.nodes, count=b.count, fraction=b.fraction) if b.placement == "added" else 0
    graph = build_topology(
        t.kind,
        cfg.nodes - added,
        seed=cfg.seed,
        degree=t.degree,
        p=t.p,
        k=t.k,
        rewire=t.rewire,
        edge_list=Path(t.edge_list) if t.edge_list else None,
    )
    if added:  # Byzantine peers joined after the benign graph is built
        graph.add_nodes_from(range(cfg.nodes - added, cfg.nodes))
        graph.add_edges_from(attach_added(cfg.nodes, added, seed=cfg.seed, p=t.p))
    if b.placement == "dominating" and not b.nodes:
        byzantine, attached = dominate(graph, seed=cfg.seed, count=b.count, fraction=b.fraction, target=b.target)
        graph.add_edges_from(attached)  # Byzantine peers attached around the target
    else:
        byzantine = choose_byzantine(
            cfg.nodes,
            seed=cfg.seed,
            count=b.count,
            fraction=b.fraction,
            nodes=b.nodes,
            placement=b.placement,
            graph=graph,
            target=b.target,
        )
    schedule = GraphSchedule(cfg, graph, byzantine)  # reads topology.schedule, draws round 1
    build_defense(cfg.defense.name, cfg.defense.params, cfg.defense.pre, cfg.defense.pre_params)
    attack = build_attack(b.attack, b.params)
    warnings = _attack_warnings(attack, graph, byzantine, cfg.nodes)
    data_info = DataInfo(
        num_classes=data.num_classes(cfg.data.dataset),
        image_shape=data.image_shape(cfg.data.dataset),
        mean=0.0,
        std=1.0,
    )
    try:
        attack.bind(data_info, colluder_rank=0, colluders=max(len(byzantine), 1))
    except ValueError as exc:
        raise RegistryError(f"byzantine.attack={b.attack!r}: {exc}") from None
    d = cfg.data
    shards = make_shards(
        labels(cfg),
        cfg.nodes,
        split=d.split,
        seed=cfg.seed,
        alpha=d.alpha,
        shards_per_node=d.shards_per_node,
        samples_per_node=d.samples_per_node,
        p=d.p,
    )
    size = model_size(cfg.model.name, cfg.data.dataset)
    chunk_sizes = [hi - lo for lo, hi in chunk_bounds(size, cfg.chunks.count)]
    for line in warnings:
        log.warning("warning: %s", line)
    return Plan(cfg, graph, byzantine, shards, chunk_sizes, warnings, schedule)


def _attack_warnings(attack: Any, graph: nx.Graph, byzantine: list[int], nodes: int) -> list[str]:
    """The attack's own plan-time warnings, given every honest target's neighborhood."""
    if not byzantine:
        return []
    bset = set(byzantine)
    targets = {j for b in byzantine for j in neighbors_of(graph, b) if j not in bset}
    neighborhoods = {
        j: (len(nb), len(bset.intersection(nb))) for j in sorted(targets) for nb in [neighbors_of(graph, j)]
    }
    return attack.plan_warnings(nodes=nodes, byzantine=list(byzantine), neighborhoods=neighborhoods)


def model_size(name: str, dataset: str) -> int:
    """Parameter count of model ``name`` built for ``dataset``'s images, after one forward
    pass on a blank image: a model that does not fit the dataset fails here, in one line
    (ModelError), before any process starts. Built once per (model, image shape, classes)
    in a process."""
    shape = data.image_shape(dataset)
    classes = data.num_classes(dataset)
    try:
        return _fitted_size(MODELS.get(name), name, shape, classes)
    except ModelError as exc:
        if name not in MODELS:
            raise
        raise ModelError(
            f"model.name={name!r} does not fit data.dataset={dataset!r} "
            f"({'x'.join(map(str, shape))} images, {classes} classes): {exc}"
        ) from None


@functools.cache
def _fitted_size(builder: object, name: str, shape: tuple[int, int, int], classes: int) -> int:
    """:func:`model_size`'s work; ``builder`` (``MODELS[name]``) is part of the key, so a
    model registered anew under a name is built anew. Failures are not cached."""
    model = build_model(name, in_channels=shape[0], image_size=shape[1], num_classes=classes)
    check_input(model, shape, classes)
    return param_count(model)


def initial_model(cfg: RunConfig) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The model every peer starts from, as ``NodeCore`` builds it (``torch.manual_seed(seed)``,
    then ``build_model``): its parameters' names and shapes in flattening order, and the
    flattened float32 vector. Sent in ``assign`` (docs/PROTOCOL.md, *Initial model*) so that
    a peer written without torch can start from the same vector."""
    import torch

    from peer.chunking import flatten

    shape = data.image_shape(cfg.data.dataset)
    with torch.random.fork_rng(devices=[]):  # leaves this process's own generator alone
        torch.manual_seed(cfg.seed)
        model = build_model(
            cfg.model.name, in_channels=shape[0], image_size=shape[1], num_classes=data.num_classes(cfg.data.dataset)
        )
    layout = [{"name": name, "shape": list(p.shape)} for name, p in model.named_parameters()]
    return layout, flatten(model)


class Planner:
    """Validates many configs (a sweep's runs) without repeating work: each distinct config
    is planned once, each dataset's training labels are read once (per root, and per
    size and seed for a generated dataset), the model once per shape (:func:`model_size`).

    It keeps no plan (a plan holds every node's shard); use :func:`build_plan` for the
    run itself.
    """

    def __init__(self) -> None:
        self._planned: set[str] = set()
        self._labels: dict[tuple, np.ndarray] = {}

    def check(self, cfg: RunConfig) -> None:
        """Plan ``cfg`` unless an identical config was planned before (raises user-facing
        errors)."""
        key = json.dumps(cfg.to_dict(), sort_keys=True)
        if key not in self._planned:
            build_plan(cfg, labels=self._train_labels)
            self._planned.add(key)

    def _train_labels(self, cfg: RunConfig) -> np.ndarray:
        d = cfg.data
        spec = data.spec(d.dataset)
        source = data.Source(root=Path(d.root) if d.root else None, synthetic_size=d.synthetic_size, seed=cfg.seed)
        key = (d.dataset, *spec.cache_key(source))
        if key not in self._labels:
            self._labels[key] = read_train_labels(cfg)
        return self._labels[key]
