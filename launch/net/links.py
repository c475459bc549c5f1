"""Each graph link's conditions, resolved from ``[network]`` (no I/O but the link file).

A link is an undirected graph edge ``(u, v)`` with ``u < v``; both directions get its
:class:`~protocol.network_config.Link`. ``links = "default"`` gives every edge the
default link; ``"mix"`` draws one profile per edge, in edge order, from
``numpy.random.default_rng([seed, 0x4E4554])`` with the weights of ``network.mix`` (the
same config and seed always shape the same edges alike); ``"file"`` reads a CSV whose
header is ``u,v`` followed by any of the link fields (``delay_ms``, ``rate_mbit``, ...),
one row per edge, and gives the edges it does not list the default link.
"""

from __future__ import annotations

import csv
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from protocol.errors import ConfigError
from protocol.network_config import PROFILES, Link, NetworkConfig

Edge = tuple[int, int]

#: the rng stream of network.links = "mix" ("NET"), apart from every other seeded draw
_MIX_STREAM = 0x4E4554


def resolve_links(net: NetworkConfig, edges: list[Edge], *, seed: int, nodes: int) -> dict[Edge, Link]:
    """Every edge's link (keys ``(min, max)``, in ``edges``' order)."""
    edges = [(min(u, v), max(u, v)) for u, v in edges]
    default = net.default_link()
    if net.links == "mix":
        names = list(net.mix)
        weights = np.array([float(net.mix[k]) for k in names])
        rng = np.random.default_rng([seed, _MIX_STREAM])
        picks = rng.choice(len(names), size=len(edges), p=weights / weights.sum())
        return {e: default if names[k] == "default" else PROFILES[names[k]] for e, k in zip(edges, picks)}
    table = {e: default for e in edges}
    if net.links == "file":
        for edge, link in read_link_file(Path(net.link_file), default, nodes=nodes).items():
            if edge not in table:
                raise ConfigError(f"{net.link_file}: link {edge[0]},{edge[1]} is not an edge of the graph")
            table[edge] = link
    return table


def read_link_file(path: Path, default: Link, *, nodes: int) -> dict[Edge, Link]:
    """The rows of a per-link CSV, each over ``default``; ConfigError (one line naming the
    file and row) on a bad header, id or value."""
    known = [f.name for f in fields(Link)]
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"network.link_file: cannot read {path} ({exc.strerror})") from None
    reader = csv.reader(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    header = [h.strip() for h in next(reader, [])]
    if header[:2] != ["u", "v"] or len(header) < 3:
        raise ConfigError(f"{path}: the header must be u,v followed by link fields ({', '.join(known)})")
    for name in header[2:]:
        if name not in known:
            raise ConfigError(f"{path}: unknown column {name!r}; link fields are {', '.join(known)}")
    out: dict[Edge, Link] = {}
    for row_no, row in enumerate(reader, start=2):
        where = f"{path} row {row_no}"
        if len(row) != len(header):
            raise ConfigError(f"{where}: {len(row)} values for {len(header)} columns")
        try:
            u, v = int(row[0]), int(row[1])
            values = {name: float(x) for name, x in zip(header[2:], row[2:])}
        except ValueError:
            raise ConfigError(f"{where}: ids must be integers and link values numbers, got {row}") from None
        if not (0 <= u < nodes and 0 <= v < nodes) or u == v:
            raise ConfigError(f"{where}: {u},{v} is not a link between two of the {nodes} nodes")
        edge = (min(u, v), max(u, v))
        if edge in out:
            raise ConfigError(f"{where}: link {edge[0]},{edge[1]} is listed twice")
        link = replace(default, **values)
        link.check(where)
        out[edge] = link
    return out


def needs_netem(links: dict[Edge, Link]) -> bool:
    return any(link.needs_netem for link in links.values())


def netem_fields(links: list[Link]) -> list[str]:
    """The link fields set in ``links`` that only netem can apply (all but the rate)."""
    return sorted(
        {f.name for link in links for f in fields(Link) if f.name != "rate_mbit" and getattr(link, f.name) > 0}
    )


def possible_links(net: NetworkConfig, *, nodes: int) -> list[Link]:
    """Every link the section can give some edge, known before the graph is: the default,
    the profiles of ``mix`` with a weight, the rows of ``link_file``."""
    default = net.default_link()
    if net.links == "mix":
        return [default if k == "default" else PROFILES[k] for k, w in net.mix.items() if w > 0]
    if net.links == "file":
        return [default, *read_link_file(Path(net.link_file), default, nodes=nodes).values()]
    return [default]
