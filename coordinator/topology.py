"""Communication topologies for the emulated peer-to-peer network.

`build_topology` returns an undirected, connected ``networkx.Graph`` whose
nodes are exactly the plain ints ``0..n-1``. Random kinds are deterministic:
the same arguments and ``seed`` always give the same graph. Kinds that may
come out disconnected ("regular", "erdos_renyi") are resampled with seeds
derived from ``numpy.random.default_rng(seed)`` until connected, up to
``max_tries`` attempts.

Kinds:

- ``regular``: random ``degree``-regular graph (``nx.random_regular_graph``).
- ``erdos_renyi``: G(n, p), each edge present independently with probability p.
- ``ring``: cycle 0-1-...-(n-1)-0 (needs n >= 3).
- ``complete``: every pair of nodes connected.
- ``small_world``: Watts-Strogatz ring lattice with ``k`` nearest neighbours
  (k even), each edge rewired with probability ``rewire``.
- ``edge_list``: read from a text file, one edge ``u v`` per line.

Errors are raised as `TopologyError`, whose message is one line saying what
is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import networkx as nx
import numpy as np

from protocol.errors import UserError

__all__ = [
    "TOPOLOGIES",
    "TopologyError",
    "build_topology",
    "graph_to_json",
    "neighbors_of",
    "parse_edge_line",
]

TOPOLOGIES: tuple[str, ...] = (
    "regular",
    "erdos_renyi",
    "ring",
    "complete",
    "small_world",
    "edge_list",
)


class TopologyError(UserError):
    """A topology cannot be built from the given settings (one-line message)."""


def build_topology(
    kind: str,
    n: int,
    *,
    seed: int,
    degree: int = 3,
    p: float = 0.4,
    k: int = 4,
    rewire: float = 0.1,
    edge_list: str | Path | None = None,
    max_tries: int = 1000,
) -> nx.Graph:
    """Build a connected topology of ``kind`` over nodes ``0..n-1``.

    Only the keyword arguments relevant to ``kind`` are used: ``degree`` for
    "regular", ``p`` for "erdos_renyi", ``k`` and ``rewire`` for
    "small_world", ``edge_list`` for "edge_list". ``max_tries`` bounds the
    resampling of random kinds until a connected graph comes out.
    """
    if kind not in TOPOLOGIES:
        raise TopologyError(f"unknown topology.kind={kind!r}; choose one of {', '.join(TOPOLOGIES)}")
    if n < 2:
        raise TopologyError(f"nodes={n} is too few for a topology; set nodes to at least 2")
    if max_tries < 1:
        raise TopologyError(f"topology.max_tries={max_tries} must be at least 1; raise topology.max_tries")
    if kind == "regular":
        g = _regular(n, seed=seed, degree=degree, max_tries=max_tries)
    elif kind == "erdos_renyi":
        g = _erdos_renyi(n, seed=seed, p=p, max_tries=max_tries)
    elif kind == "ring":
        g = _ring(n)
    elif kind == "complete":
        g = nx.complete_graph(n)
    elif kind == "small_world":
        g = _small_world(n, seed=seed, k=k, rewire=rewire, max_tries=max_tries)
    else:
        g = _from_edge_list(n, edge_list=edge_list)
    return _canonical(n, g.edges())


def graph_to_json(g: nx.Graph) -> dict:
    """Return ``{"nodes": [...], "edges": [[u, v], ...]}``, sorted, with u < v."""
    nodes = sorted(int(v) for v in g.nodes())
    edges = sorted([min(int(u), int(v)), max(int(u), int(v))] for u, v in g.edges())
    return {"nodes": nodes, "edges": edges}


def neighbors_of(g: nx.Graph, node: int) -> list[int]:
    """Return the neighbours of ``node`` in ``g`` as a sorted list of ints."""
    if node not in g:
        raise TopologyError(
            f"node {node} is not in the topology (nodes 0..{g.number_of_nodes() - 1}); use a node id inside that range"
        )
    return sorted(int(v) for v in g.neighbors(node))


def _canonical(n: int, edges: Iterable[tuple[int, int]]) -> nx.Graph:
    """Rebuild a graph with plain-int nodes 0..n-1 and edges in sorted order."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(sorted((min(int(u), int(v)), max(int(u), int(v))) for u, v in edges))
    return g


def _derived_seeds(seed: int, count: int) -> Iterable[int]:
    """Yield ``count`` deterministic 32-bit seeds derived from ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield int(rng.integers(0, 2**32))


def _first_connected(sample: Callable[[int], nx.Graph], *, seed: int, max_tries: int) -> nx.Graph | None:
    """Return the first connected graph ``sample`` yields, or None after max_tries."""
    for derived in _derived_seeds(seed, max_tries):
        g = sample(derived)
        if nx.is_connected(g):
            return g
    return None


def _regular(n: int, *, seed: int, degree: int, max_tries: int) -> nx.Graph:
    """Random connected ``degree``-regular graph."""
    if degree < 1 or degree >= n or (n * degree) % 2 != 0:
        raise TopologyError(
            f"topology.degree={degree} is impossible with nodes={n}: a d-regular graph "
            "needs n*d even and 1 <= d < n; change topology.degree or nodes"
        )
    if degree == 1 and n > 2:
        raise TopologyError(
            f"topology.degree=1 with nodes={n} can never be connected (it is a matching); "
            "set topology.degree to at least 2"
        )
    g = _first_connected(lambda s: nx.random_regular_graph(degree, n, seed=s), seed=seed, max_tries=max_tries)
    if g is None:
        raise TopologyError(
            f"topology.kind=regular with degree={degree} and nodes={n} was never connected "
            f"in {max_tries} tries; raise topology.degree"
        )
    return g


def _erdos_renyi(n: int, *, seed: int, p: float, max_tries: int) -> nx.Graph:
    """Connected G(n, p) graph."""
    if not 0.0 < p <= 1.0:
        raise TopologyError(f"topology.p={p} must be in (0, 1]; set topology.p to e.g. 0.4")
    g = _first_connected(lambda s: nx.gnp_random_graph(n, p, seed=s), seed=seed, max_tries=max_tries)
    if g is None:
        raise TopologyError(
            f"topology.kind=erdos_renyi with p={p} and nodes={n} was never connected "
            f"in {max_tries} tries; raise topology.p"
        )
    return g


def _ring(n: int) -> nx.Graph:
    """Cycle graph over n >= 3 nodes."""
    if n < 3:
        raise TopologyError(f"topology.kind=ring needs nodes >= 3, got nodes={n}; use complete")
    return nx.cycle_graph(n)


def _small_world(n: int, *, seed: int, k: int, rewire: float, max_tries: int) -> nx.Graph:
    """Connected Watts-Strogatz small-world graph."""
    if k < 2 or k >= n or k % 2 != 0:
        raise TopologyError(
            f"topology.k={k} is invalid with nodes={n}: small_world needs an even k "
            "with 2 <= k < nodes; change topology.k or nodes"
        )
    if not 0.0 <= rewire <= 1.0:
        raise TopologyError(f"topology.rewire={rewire} must be in [0, 1]; set topology.rewire to e.g. 0.1")
    try:
        return nx.connected_watts_strogatz_graph(n, k, rewire, tries=max_tries, seed=seed)
    except nx.NetworkXError:
        raise TopologyError(
            f"topology.kind=small_world with k={k} and rewire={rewire} was never connected "
            f"in {max_tries} tries; raise topology.k or lower topology.rewire"
        ) from None


def _from_edge_list(n: int, *, edge_list: str | Path | None) -> nx.Graph:
    """Graph read from an edge-list file; must cover all nodes and be connected."""
    if edge_list is None:
        raise TopologyError("topology.kind=edge_list needs a file; set topology.edge_list to its path")
    path = Path(edge_list)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"cannot read topology.edge_list={str(path)!r} ({exc.strerror}); fix the path") from None
    edges = [parse_edge_line(line, n=n, where=f"{path}:{i}") for i, line in enumerate(text.splitlines(), start=1)]
    g = _canonical(n, (e for e in edges if e is not None))
    isolated = sorted(v for v in g.nodes() if g.degree(v) == 0)
    if isolated:
        raise TopologyError(f"{path}: nodes {isolated} appear in no edge; add an edge for each of nodes 0..{n - 1}")
    if not nx.is_connected(g):
        parts = nx.number_connected_components(g)
        raise TopologyError(f"{path}: the graph has {parts} disconnected parts; add edges joining them")
    return g


def parse_edge_line(line: str, *, n: int, where: str) -> tuple[int, int] | None:
    """Parse one ``u v`` line; None for blank or comment-only lines."""
    content = line.split("#", 1)[0].strip()
    if not content:
        return None
    fields = content.split()
    if len(fields) != 2 or not all(_is_int(f) for f in fields):
        raise TopologyError(f"{where}: expected two node ids 'u v', got {content!r}; fix that line")
    u, v = int(fields[0]), int(fields[1])
    for node in (u, v):
        if not 0 <= node < n:
            raise TopologyError(
                f"{where}: node id {node} is outside 0..{n - 1} (nodes={n}); fix that line or change nodes"
            )
    if u == v:
        raise TopologyError(f"{where}: self-loop {u}-{v} is not allowed; remove that line")
    return u, v


def _is_int(text: str) -> bool:
    """True if ``text`` is a plain ASCII decimal integer, optionally signed."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()
