"""The conformance kit's graph change and churn event (docs/PROTOCOL.md, *Conformance kit*).

Every kit run is a run whose graph changes (``topology.dynamic = "schedule"``), so the
peer under test gets ``assign`` → ``receive_from`` and a ``graph`` in every
``round_start``:

* **graph change**, round :data:`GRAPH_ROUND`: the complete graph without the edge between
  the tested peer and one byzemu peer (``dropped``); from the next round on the graph is
  complete again. The tested peer must send to and await exactly that round's neighbors;
* **churn event**, round :data:`AWAY_ROUND` (the round after a byzemu peer is killed): a
  byzemu peer (``away``) is away for the round (``churn.away``) and returns in the next
  one. The tested peer must neither send to it nor wait for it in that round, and take its
  chunks again after.

A chunk the tested peer sends to a peer that is not its round neighbor is counted by that
byzemu peer as ``not_round_neighbor`` (an away peer counts it in its next round), which the
``drops`` check reports; waiting for a peer that does not send makes the round last the
chunk deadline, which the checks of those rounds report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol import config as config_mod
from protocol.config import RunConfig

GRAPH_ROUND = 1  #: the round without the edge (tested peer, dropped)
AWAY_ROUND = 3  #: the round the ``away`` byzemu peer sits out (after the kill after round 2)
MIN_NODES = 4  #: the tested peer, the dropped edge's peer, the away peer and the killed one
MIN_ROUNDS = AWAY_ROUND + 1  #: the away peer comes back, so its drop counters are recorded
SCHEDULE = "graph-schedule.txt"  #: the schedule file, in the run's folder


@dataclass(frozen=True)
class Events:
    """Who the kit's graph change and churn event concern."""

    dropped: int  #: the byzemu peer without an edge to the tested peer in GRAPH_ROUND
    away: int  #: the byzemu peer away in AWAY_ROUND


def events(cfg: RunConfig, *, foreign: int, killed: int) -> Events:
    """The kit's choice of peers: the lowest-id byzemu peers other than the killed one."""
    others = [j for j in range(cfg.nodes) if j not in (foreign, killed)]
    return Events(dropped=others[1], away=others[0])


def with_events(cfg: RunConfig, out_dir: Path, ev: Events, *, foreign: int) -> RunConfig:
    """``cfg`` with the kit's schedule (written to ``out_dir``) and absence."""
    complete = [(i, j) for i in range(cfg.nodes) for j in range(i + 1, cfg.nodes)]
    cut = tuple(sorted((foreign, ev.dropped)))
    lines = [f"round {GRAPH_ROUND}", *(f"{i} {j}" for i, j in complete if (i, j) != cut)]
    lines += [f"round {GRAPH_ROUND + 1}", *(f"{i} {j}" for i, j in complete)]
    path = out_dir / SCHEDULE
    path.write_text("\n".join(lines) + "\n")
    data = cfg.to_dict()
    data["topology"].update(dynamic="schedule", schedule=str(path.resolve()))
    data["churn"]["away"] = [*data["churn"]["away"], [ev.away, AWAY_ROUND, AWAY_ROUND]]
    return config_mod.from_dict(data)


def round_neighbors(record: dict[str, object], node: int, nodes: int) -> set[int]:
    """``node``'s neighbors in a recorded round (its ``graph``; a complete graph without one)."""
    graph = record.get("graph")
    if not isinstance(graph, dict):
        return set(range(nodes)) - {node}
    return {v if u == node else u for u, v in graph["edges"] if node in (u, v)}
