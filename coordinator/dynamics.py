"""Graphs that change between rounds (``topology.dynamic``): which peer sends to which in
round t.

A :class:`GraphSchedule` is a pure function of the config, the plan's first graph and
the round: the coordinator and the in-process reference build the same one and get the
same graph for every round, so both drivers exchange the same chunks (bit-identity).
Each random graph is drawn with a seed derived from ``(seed, epoch)``, where the epoch
``(t - 1) // every`` numbers the graphs; nothing depends on timing or on which rounds were
asked before.

Kinds (``topology.dynamic``):

- ``static``: the plan's graph in every round (no ``graph`` in ``round_start``).
- ``resample``: epoch 0 is the plan's graph; epoch e > 0 is a new connected graph of the
  same ``topology.kind`` and parameters, built by :func:`~coordinator.topology.build_topology`
  with the epoch's seed. Undirected.
- ``el_oracle``: EL-Oracle (de Vos et al. 2023, Sec. 3): every epoch, a random
  ``s``-regular graph over all peers (``networkx.random_regular_graph``, not required to
  be connected, as in the paper: mixing over rounds replaces connectivity); each peer
  sends to and receives from exactly s others. Needs n * s even.
- ``el_local``: EL-Local (de Vos et al. 2023, Sec. 3): every epoch, each peer i in turn
  draws s distinct others uniformly (``default_rng([seed, epoch, i, salt]).choice``) and
  pushes its chunks to them. Directed: a peer's in-degree varies by round (0 included:
  such a peer aggregates only its own model that round).
- ``schedule``: per-round undirected edge lists from the file ``topology.schedule``
  (:func:`read_schedule`).

Byzantine roles stay with node ids. Placements that read the graph (``dominating``,
``added``) are computed once on the plan's graph; ``static`` keeps it, ``resample`` keeps
it for rounds 1..every, and later graphs (and every EL or scheduled graph) are drawn over
all peers without regard to roles, so a placement's positional advantage lasts only while
the first graph does. Rules that assume a neighbor count get the round's in-degree
(``ChunkContext.degree``; docs/DEFENSES.md, *Neighbors that come and go*).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from coordinator.churn import Presence
from coordinator.topology import TopologyError, build_topology, parse_edge_line
from protocol.config import RunConfig
from protocol.graph import RoundGraph

__all__ = ["Edges", "GraphSchedule", "read_schedule"]

_EPOCH_SALT = 0x44594E  # "DYN"

#: directed edges (sender, receiver) of one round, sorted
Edges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Round:
    """One round's graph: whom each peer sends to and receives from."""

    edges: Edges
    send_to: dict[int, tuple[int, ...]]
    receive_from: dict[int, tuple[int, ...]]


class GraphSchedule:
    """The graph of every round of a run (see the module docstring)."""

    def __init__(self, cfg: RunConfig, first: nx.Graph, byzantine: list[int]) -> None:
        self.cfg = cfg
        self.kind = cfg.topology.dynamic
        self.nodes = cfg.nodes
        self.byzantine = frozenset(byzantine)
        self._first = first
        self._epochs: dict[int, _Round] = {}
        self._thinned: dict[tuple[int, frozenset[int]], _Round] = {}
        #: who takes part in each round ([churn]); the away are cut out of the round's graph
        self.presence = Presence(cfg)
        self._blocks = read_schedule(cfg.topology.schedule, cfg.nodes) if self.kind == "schedule" else []
        self.round(1)  # an impossible EL graph fails at plan time, in one line

    @property
    def dynamic(self) -> bool:
        """Whether the graph ever changes (a dynamic kind, or churn)."""
        return self.kind != "static" or self.presence.active

    @property
    def directed(self) -> bool:
        return self.kind == "el_local"

    def round(self, round_: int) -> _Round:
        """The graph of round ``round_`` (>= 1), without the peers away in it."""
        if self.kind == "schedule":
            starts = [start for start, _ in self._blocks]
            epoch = max(i for i, s in enumerate(starts) if s <= round_)
        elif self.kind == "static":
            epoch = 0
        else:
            epoch = (round_ - 1) // self.cfg.topology.every
        away = self.presence.absent(round_)
        if not away:
            return self._epoch(epoch)
        key = (epoch, away)
        if key not in self._thinned:
            kept = [(u, v) for u, v in self._epoch(epoch).edges if u not in away and v not in away]
            self._thinned[key] = _round_of(self.nodes, kept)
        return self._thinned[key]

    def view(self, node: int, round_: int) -> RoundGraph:
        """``node``'s part of round ``round_`` (what its ``round_start`` carries); with the
        next round's senders unless ``round_`` is the last."""
        now = self.round(round_)
        upcoming = self.presence.next_round(node, round_)
        following = self.round(upcoming).receive_from[node] if upcoming is not None else ()
        hoods = {}
        if node in self.byzantine:
            for j in now.send_to[node]:
                senders = now.receive_from[j]
                hoods[j] = (len(senders), len(self.byzantine.intersection(senders)))
        if not self.presence.active:
            return RoundGraph(now.send_to[node], now.receive_from[node], following, hoods)
        joiners = self.presence.joining(round_)
        return RoundGraph(
            now.send_to[node],
            now.receive_from[node],
            following,
            hoods,
            next_round=upcoming or 0,
            present=tuple(sorted(self.presence.present(round_))),
            welcome=tuple(sorted(j for j in joiners if node in self.join_from(j))),
        )

    def join_from(self, node: int) -> tuple[int, ...]:
        """A new peer's model sources in its join round (``[churn] join``): its lowest-id
        sender of that round (``join_model = "neighbor"``) or all of them (``"average"``),
        leaving out senders that join in the same round; empty for any other peer."""
        join = self.presence.joins.get(node)
        if join is None:
            return ()
        joining = self.presence.joining(join)
        senders = tuple(j for j in self.round(join).receive_from[node] if j not in joining)
        return senders[:1] if self.cfg.churn.join_model == "neighbor" else senders

    def edges_json(self, round_: int) -> list[list[int]]:
        """Round ``round_``'s edges for its record: ``[u, v]`` pairs, u < v (undirected
        kinds), or ``[sender, receiver]`` (el_local)."""
        edges = self.round(round_).edges
        if self.directed:
            return [list(e) for e in edges]
        return [[u, v] for u, v in edges if u < v]

    def _epoch(self, epoch: int) -> _Round:
        if epoch not in self._epochs:
            self._epochs[epoch] = self._draw(epoch)
        return self._epochs[epoch]

    def _draw(self, epoch: int) -> _Round:
        n, t = self.nodes, self.cfg.topology
        seed = int(np.random.default_rng([self.cfg.seed, epoch, _EPOCH_SALT]).integers(0, 2**32))
        if self.kind == "static" or (self.kind == "resample" and epoch == 0):
            pairs = _both_ways(self._first.edges())
        elif self.kind == "resample":
            g = build_topology(
                t.kind,
                n,
                seed=seed,
                degree=t.degree,
                p=t.p,
                k=t.k,
                rewire=t.rewire,
                edge_list=Path(t.edge_list) if t.edge_list else None,
            )
            pairs = _both_ways(g.edges())
        elif self.kind == "el_oracle":
            if (n * t.s) % 2:
                raise TopologyError(
                    f"topology.dynamic=el_oracle with s={t.s} and nodes={n}: an s-regular graph needs "
                    "nodes * s even; change topology.s or nodes"
                )
            pairs = _both_ways(nx.random_regular_graph(t.s, n, seed=seed).edges())
        elif self.kind == "el_local":
            pairs = set()
            for i in range(n):
                others = np.array([j for j in range(n) if j != i])
                rng = np.random.default_rng([self.cfg.seed, epoch, i, _EPOCH_SALT])
                pairs.update((i, int(j)) for j in rng.choice(others, size=t.s, replace=False))
        else:
            pairs = _both_ways(self._blocks[epoch][1])
        return _round_of(n, pairs)


def _round_of(n: int, pairs: Iterable[tuple[int, int]]) -> _Round:
    """A round's graph from its directed edges."""
    edges = tuple(sorted(pairs))
    send: dict[int, list[int]] = {i: [] for i in range(n)}
    recv: dict[int, list[int]] = {i: [] for i in range(n)}
    for u, v in edges:
        send[u].append(v)
        recv[v].append(u)
    return _Round(edges, {i: tuple(v) for i, v in send.items()}, {i: tuple(sorted(v)) for i, v in recv.items()})


def _both_ways(edges: object) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for u, v in edges:  # type: ignore[attr-defined]
        out.update({(int(u), int(v)), (int(v), int(u))})
    return out


def read_schedule(path: str | Path, n: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """Blocks ``(first round, undirected edges)`` of a schedule file, by first round.

    The file holds ``round R`` lines, each followed by the ``u v`` edges (one per line,
    ``#`` comments) of rounds R, R+1, ... until the next ``round`` line. The first block
    must be ``round 1`` and rounds must ascend; every node id must be in ``0..n-1``. A peer
    without an edge in a block aggregates only its own model in those rounds.
    TopologyError (one line, naming file and line) otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"cannot read topology.schedule={str(path)!r} ({exc.strerror}); fix the path") from None
    blocks: list[tuple[int, list[tuple[int, int]]]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{i}"
        words = line.split("#", 1)[0].split()
        if words[:1] == ["round"]:
            if len(words) != 2 or not words[1].isdigit() or int(words[1]) < 1:
                raise TopologyError(f"{where}: expected 'round R' with R >= 1, got {line.strip()!r}; fix that line")
            start = int(words[1])
            if (blocks and start <= blocks[-1][0]) or (not blocks and start != 1):
                need = f"above round {blocks[-1][0]}" if blocks else "1 (the first block)"
                raise TopologyError(f"{where}: round {start} must be {need}; order the blocks by round")
            blocks.append((start, []))
            continue
        edge = parse_edge_line(line, n=n, where=where)
        if edge is None:
            continue
        if not blocks:
            raise TopologyError(f"{where}: an edge before the first 'round 1' line; start the file with 'round 1'")
        blocks[-1][1].append(edge)
    if not blocks:
        raise TopologyError(f"{path}: no 'round R' block; start the file with 'round 1' and its edges")
    return blocks
