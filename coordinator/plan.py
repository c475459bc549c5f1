"""The experiment plan: graph, Byzantine roles and data shards, derived from the config.

The coordinator and the in-process reference build the same :class:`Plan` from the same
config, so both hand every node an identical :class:`~protocol.assignment.Assignment`.
Building the plan also validates everything that can be checked before any process
starts: topology feasibility, role counts, data directory, model, defense and attack
names and parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from coordinator.roles import choose_byzantine, dominate
from coordinator.sharding import make_shards
from coordinator.topology import build_topology, graph_to_json, neighbors_of
from peer import datasets
from peer.attacks import ATTACKS, build_attack
from peer.attacks.base import DataInfo
from peer.registry import RegistryError
from peer.defenses import build_defense
from peer.chunking import chunk_bounds
from peer.models import MODELS, ModelError, build_model, check_input, param_count
from protocol.assignment import Assignment, Role
from protocol.config import RunConfig


@dataclass
class Plan:
    """Who is connected to whom, who is Byzantine, and which samples each node holds."""

    config: RunConfig
    graph: nx.Graph
    byzantine: list[int]
    shards: list[np.ndarray]
    chunk_sizes: list[int]

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
        neighbors = neighbors_of(self.graph, node)
        byzantine = node in self.byzantine
        bset = set(self.byzantine)
        return Assignment(
            node=node,
            num_nodes=self.config.nodes,
            neighbors=neighbors,
            role=self.role(node),
            config=self.config,
            shard=self.shards[node],
            chunk_sizes=list(self.chunk_sizes),
            colluders=[b for b in self.byzantine if b != node] if byzantine else [],
            oracle_targets=list(self.byzantine) if (self.oracle and not byzantine) else [],
            neighborhoods={
                j: (len(nb), len(bset.intersection(nb)))
                for j in neighbors
                for nb in [neighbors_of(self.graph, j)]
            }
            if byzantine
            else {},
        )

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
        return {"kind": self.config.topology.kind, "nodes": nodes, "edges": graph["edges"]}


def build_plan(cfg: RunConfig) -> Plan:
    """Validate ``cfg`` against the world and derive the plan (raises user-facing errors)."""
    t = cfg.topology
    graph = build_topology(
        t.kind,
        cfg.nodes,
        seed=cfg.seed,
        degree=t.degree,
        p=t.p,
        k=t.k,
        rewire=t.rewire,
        edge_list=Path(t.edge_list) if t.edge_list else None,
    )
    b = cfg.byzantine
    if b.placement == "dominating" and not b.nodes:
        byzantine, attached = dominate(
            graph, seed=cfg.seed, count=b.count, fraction=b.fraction, target=b.target
        )
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
    build_defense(cfg.defense.name, cfg.defense.params, cfg.defense.pre, cfg.defense.pre_params)
    attack = build_attack(b.attack, b.params)
    data_info = DataInfo(
        num_classes=datasets.num_classes(cfg.data.dataset),
        image_shape=datasets.image_shape(cfg.data.dataset),
        mean=0.0,
        std=1.0,
    )
    try:
        attack.bind(data_info, colluder_rank=0, colluders=max(len(byzantine), 1))
    except ValueError as exc:
        raise RegistryError(f"byzantine.attack={b.attack!r}: {exc}") from None
    d = cfg.data
    root = Path(d.root) if d.root else None
    labels = datasets.train_labels(d.dataset, root, synthetic_size=d.synthetic_size, seed=cfg.seed)
    shards = make_shards(
        labels,
        cfg.nodes,
        split=d.split,
        seed=cfg.seed,
        alpha=d.alpha,
        shards_per_node=d.shards_per_node,
        samples_per_node=d.samples_per_node,
        p=d.p,
    )
    size = _model_size(cfg)
    chunk_sizes = [hi - lo for lo, hi in chunk_bounds(size, cfg.chunks.count)]
    return Plan(cfg, graph, byzantine, shards, chunk_sizes)


def _model_size(cfg: RunConfig) -> int:
    """Parameter count of ``cfg``'s model built for its dataset's images, after one forward
    pass on a blank image: a model that does not fit the dataset fails here, in one line
    (ModelError), before any process starts."""
    name, dataset = cfg.model.name, cfg.data.dataset
    shape = datasets.image_shape(dataset)
    classes = datasets.num_classes(dataset)
    try:
        model = build_model(name, in_channels=shape[0], image_size=shape[1], num_classes=classes)
        check_input(model, shape, classes)
    except ModelError as exc:
        if name not in MODELS:
            raise
        raise ModelError(
            f"model.name={name!r} does not fit data.dataset={dataset!r} "
            f"({'x'.join(map(str, shape))} images, {classes} classes): {exc}"
        ) from None
    return param_count(model)
