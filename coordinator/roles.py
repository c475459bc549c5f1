"""Choose which peers are Byzantine.

`choose_byzantine` returns the sorted list of Byzantine node ids out of
``0..n-1``. At least one peer must stay honest.

Placements:

- ``random``: the number of Byzantine peers is ``count`` if ``count > 0``,
  otherwise ``fraction * n`` rounded half up, i.e.
  ``int(math.floor(fraction * n + 0.5))`` (not Python's ``round``, which
  rounds halves to even: 0.25 * 10 gives 3 here, ``round`` would give 2).
  They are drawn with ``default_rng(seed).choice(n, size, replace=False)``,
  so the same arguments and seed always give the same ids.
- ``explicit``: exactly the ids in ``nodes``; ``count`` or ``fraction``, if
  set, must give the same number.
- ``dominating``: the Byzantine peers surround the honest peer ``target`` so that
  they are the majority of its neighbors (the "Byzantine majority around a peer"
  setting of DFL-Dual). With b Byzantine peers (``count`` or ``fraction`` as for
  ``random``) and d = deg(target), a seeded choice of min(b, d) of target's
  neighbors become Byzantine; the other b - d (if b > d) are drawn, seeded, from
  the remaining peers and *attached* to target: `dominate` adds the edges
  (byzantine, target), so the graph the run uses has them. The result must give
  target more Byzantine than honest neighbors, i.e. 2 min(b, d) > d when b <= d;
  otherwise a `RolesError` says how many are needed.

- ``added``: Guo et al.'s construction (Guo et al. 2022, Sec. VI-A: "we first
  generate a decentralized network in which all the nodes strictly follow the learning
  procedure. Then we randomly add Byzantine nodes to the network"). With b Byzantine
  peers (``count`` or ``fraction`` of all n, as for ``random``; Guo et al. 2022 defines the ratio
  over all nodes), the benign graph is built first over ids ``0..n-b-1`` and the
  Byzantine peers are the ids ``n-b..n-1``; `attach_added` links each of them to each
  benign peer independently with probability ``p`` (the topology's connection rate,
  Guo et al.'s "connection rate"), redrawing a Byzantine peer's links until it has at least
  one. Guo et al. 2022 does not say how the added nodes connect; this is our reading. No edges
  between Byzantine peers (they collude over their own channel anyway).

- ``honest_connected``: b Byzantine peers (``count`` or ``fraction`` as for ``random``)
  placed so that the honest peers induce a connected subgraph of the graph, hence every
  honest peer has at least one honest neighbor (DFL-Dual's setting: Sun et al. 2024,
  §5.6.1, notes that even with 80 % Byzantine clients "the remaining two benign clients
  are connected"). Seeded draws as ``random`` are tried until one qualifies (uniform over
  the qualifying placements; the first draw is ``random``'s own); after
  ``HONEST_CONNECTED_TRIES`` draws a connected honest set is grown from a seeded start
  instead. Fewer than 2 honest peers, or no connected component holding n - b peers, is
  a `RolesError` saying how many Byzantine peers the graph allows.

Errors are raised as `RolesError`, whose message is one line saying what is
wrong and how to fix it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import networkx as nx
import numpy as np

from protocol.errors import UserError

__all__ = ["PLACEMENTS", "RolesError", "attach_added", "added_count", "choose_byzantine", "dominate"]

PLACEMENTS: tuple[str, ...] = ("random", "explicit", "dominating", "added", "honest_connected")

#: seeded uniform draws tried by placement "honest_connected" before growing a connected set
HONEST_CONNECTED_TRIES = 1000


class RolesError(UserError):
    """The Byzantine roles cannot be chosen from the given settings (one-line message)."""


def choose_byzantine(
    n: int,
    *,
    seed: int,
    count: int = 0,
    fraction: float = 0.0,
    nodes: Sequence[int] = (),
    placement: str = "random",
    graph: nx.Graph | None = None,
    target: int = 0,
) -> list[int]:
    """Return the sorted Byzantine node ids among ``0..n-1``.

    Set at most one of ``count`` and ``fraction``; with neither set (and
    placement "random") no peer is Byzantine. Placement "dominating" needs the
    ``graph`` and the honest ``target``; use `dominate` to also get the edges it adds.
    """
    if placement == "dominating":
        if len(nodes) > 0:
            raise RolesError(
                "byzantine.nodes is only used with byzantine.placement=explicit; "
                "set placement to explicit or clear byzantine.nodes"
            )
        if graph is None:
            raise RolesError("byzantine.placement=dominating needs the graph")  # pragma: no cover
        return dominate(graph, seed=seed, count=count, fraction=fraction, target=target)[0]
    _check_common(n, count=count, fraction=fraction, placement=placement)
    if placement == "explicit":
        return _explicit(n, nodes=nodes, count=count, fraction=fraction)
    if placement == "added":
        if len(nodes) > 0:
            raise RolesError(
                "byzantine.nodes is only used with byzantine.placement=explicit; "
                "set placement to explicit or clear byzantine.nodes"
            )
        number = _number(n, count=count, fraction=fraction)
        return list(range(n - number, n))
    if len(nodes) > 0:
        raise RolesError(
            "byzantine.nodes is only used with byzantine.placement=explicit; "
            "set placement to explicit or clear byzantine.nodes"
        )
    number = _number(n, count=count, fraction=fraction)
    if number == 0:
        return []
    rng = np.random.default_rng(seed)
    if placement == "honest_connected":
        if graph is None:
            raise RolesError("byzantine.placement=honest_connected needs the graph")  # pragma: no cover
        return _honest_connected(graph, number, rng)
    return sorted(int(v) for v in rng.choice(n, size=number, replace=False))


def _honest_connected(graph: nx.Graph, number: int, rng: np.random.Generator) -> list[int]:
    """Placement "honest_connected" (module docstring): ``number`` Byzantine ids whose
    complement induces a connected subgraph of at least 2 peers."""
    n = graph.number_of_nodes()
    honest = n - number
    largest = max((len(c) for c in nx.connected_components(graph)), default=0)
    if honest < 2:
        raise RolesError(
            f"byzantine.placement=honest_connected: {number} Byzantine of {n} peers leave {honest} honest, "
            f"and a connected honest subgraph needs at least 2; use at most {n - 2} Byzantine peers"
        )
    if largest < honest:
        raise RolesError(
            f"byzantine.placement=honest_connected: the {honest} honest peers cannot be connected, the graph's "
            f"largest component has {largest} peers; use at least {n - largest} Byzantine peers or a connected graph"
        )
    for _ in range(HONEST_CONNECTED_TRIES):
        byz = sorted(int(v) for v in rng.choice(n, size=number, replace=False))
        rest = set(range(n)) - set(byz)
        if nx.is_connected(graph.subgraph(rest)):
            return byz
    start = int(rng.choice(sorted(v for c in nx.connected_components(graph) if len(c) >= honest for v in c)))
    grown = {start}
    while len(grown) < honest:
        frontier = sorted({int(u) for v in grown for u in graph.neighbors(v)} - grown)
        grown.add(int(rng.choice(frontier)))
    return sorted(set(range(n)) - grown)


def added_count(n: int, *, count: int = 0, fraction: float = 0.0) -> int:
    """Placement "added": how many of the n peers are the added Byzantine ones."""
    _check_common(n, count=count, fraction=fraction, placement="added")
    return _number(n, count=count, fraction=fraction)


def attach_added(n: int, number: int, *, seed: int, p: float) -> list[tuple[int, int]]:
    """Placement "added": edges ``(benign, byzantine)`` joining the Byzantine peers
    ``n-number..n-1`` to the benign peers ``0..n-number-1``, each with probability ``p``,
    at least one per Byzantine peer (seeded; see the module docstring)."""
    if not 0.0 < p <= 1.0:
        raise RolesError(f"topology.p={p} must be in (0, 1] for byzantine.placement=added")
    rng = np.random.default_rng([seed, 0xADD])
    benign = n - number
    edges: list[tuple[int, int]] = []
    for b in range(benign, n):
        while True:
            links = [v for v in range(benign) if rng.random() < p]
            if links:
                break
        edges.extend((v, b) for v in links)
    return edges


def dominate(
    graph: nx.Graph, *, seed: int, count: int = 0, fraction: float = 0.0, target: int = 0
) -> tuple[list[int], list[tuple[int, int]]]:
    """Placement "dominating": Byzantine ids around ``target`` and the edges to attach.

    Returns ``(ids, added)``: the sorted Byzantine ids and the sorted edges
    ``(min, max)`` that must be added to ``graph`` (the caller adds them; ``graph``
    is not changed here). See the module docstring for the rule.
    """
    n = graph.number_of_nodes()
    _check_common(n, count=count, fraction=fraction, placement="dominating")
    target = _check_id(target, n, field="byzantine.target")
    number = _number(n, count=count, fraction=fraction)
    if number == 0:
        raise RolesError(
            "byzantine.placement=dominating needs Byzantine peers; set byzantine.count or byzantine.fraction"
        )
    rng = np.random.default_rng(seed)
    neighbors = sorted(int(v) for v in graph.neighbors(target))
    degree = len(neighbors)
    inner = min(number, degree)
    if 2 * inner <= degree:
        raise RolesError(
            f"byzantine.count={number} Byzantine neighbors are not a majority of peer "
            f"{target}'s {degree} neighbors; raise byzantine.count to at least "
            f"{degree // 2 + 1} or pick another byzantine.target"
        )
    chosen = [int(v) for v in rng.choice(neighbors, size=inner, replace=False)] if inner else []
    others = [v for v in range(n) if v != target and v not in neighbors]
    extra = [int(v) for v in rng.choice(others, size=number - inner, replace=False)] if number > inner else []
    added = sorted((min(v, target), max(v, target)) for v in extra)
    return sorted(chosen + extra), added


def _check_common(n: int, *, count: int, fraction: float, placement: str) -> None:
    """Validate the settings shared by both placements."""
    if placement not in PLACEMENTS:
        raise RolesError(f"unknown byzantine.placement={placement!r}; choose one of {', '.join(PLACEMENTS)}")
    if n < 1:
        raise RolesError(f"nodes={n} must be at least 1; raise nodes")
    if count < 0:
        raise RolesError(f"byzantine.count={count} must be >= 0; fix byzantine.count")
    if not 0.0 <= fraction < 1.0:
        raise RolesError(f"byzantine.fraction={fraction} must be in [0, 1); fix byzantine.fraction")
    if count > 0 and fraction > 0.0:
        raise RolesError(
            f"byzantine.count={count} and byzantine.fraction={fraction} are both set; set only one of them"
        )


def _number(n: int, *, count: int, fraction: float) -> int:
    """How many Byzantine peers: ``count``, else fraction*n rounded half up."""
    if count > 0:
        if count >= n:
            raise RolesError(f"byzantine.count={count} must be less than nodes={n}: at least one honest peer is needed")
        return count
    number = int(math.floor(fraction * n + 0.5))
    if number >= n:
        raise RolesError(
            f"byzantine.fraction={fraction} gives {number} Byzantine peers with nodes={n}: "
            "at least one honest peer is needed; lower byzantine.fraction"
        )
    return number


def _explicit(n: int, *, nodes: Sequence[int], count: int, fraction: float) -> list[int]:
    """Validate and return the explicitly listed Byzantine ids."""
    ids = [_check_id(v, n) for v in nodes]
    duplicates = sorted({v for v in ids if ids.count(v) > 1})
    if duplicates:
        raise RolesError(f"byzantine.nodes lists {duplicates} more than once; list each id once")
    if len(ids) >= n:
        raise RolesError(
            f"byzantine.nodes has {len(ids)} ids but nodes={n}: at least one honest peer is needed; remove some ids"
        )
    if count > 0 and count != len(ids):
        raise RolesError(
            f"byzantine.count={count} disagrees with the {len(ids)} ids in byzantine.nodes; "
            "fix byzantine.count or set it to 0"
        )
    if fraction > 0.0 and _number(n, count=0, fraction=fraction) != len(ids):
        raise RolesError(
            f"byzantine.fraction={fraction} with nodes={n} disagrees with the {len(ids)} ids "
            "in byzantine.nodes; fix byzantine.fraction or set it to 0"
        )
    return sorted(ids)


def _check_id(value: object, n: int, *, field: str = "byzantine.nodes entry") -> int:
    """Return ``value`` as an int if it is an integer node id in 0..n-1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RolesError(f"{field} {value!r} is not an integer node id; use ints in 0..{n - 1}")
    if not 0 <= int(value) < n:
        raise RolesError(f"{field} {value} is outside 0..{n - 1} (nodes={n}); fix {field.split()[0]} or raise nodes")
    return int(value)
