"""The round recorder: one line of ``rounds.jsonl`` per round, for both drivers.

The coordinator (``coordinator/server.py``) and the in-process reference
(``launch/run/reference.py``) hand it the peers' round reports (``metrics``, ``traffic``,
``timing``: the maps of ``round_done``, docs/PROTOCOL.md) and when the round started and
closed; it builds the record (:func:`coordinator.results.round_record`: per-peer entries,
honest statistics), adds what only the caller knows (the coordinator's drops, checkpoint
completeness, refused registrations), appends it flushed and reports progress. Both
drivers' peers count traffic with :class:`peer.traffic.Traffic`, so a record has one
format whichever driver ran it; docs/RESULTS.md lists its fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coordinator.plan import Plan
from coordinator.results import ResultsWriter, round_record


class RoundRecorder:
    """Appends one record per round to ``results``; ``started`` is the monotonic time
    rounds count from (``elapsed_s``)."""

    def __init__(
        self,
        *,
        plan: Plan,
        results: ResultsWriter,
        started: float,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.results = results
        self.started = started
        self.progress = progress
        self.roles = {i: plan.role(i).label for i in range(plan.config.nodes)}

    def record(
        self,
        *,
        round_: int,
        reports: Mapping[int, dict[str, Any]],
        failed: set[int],
        t0: float,
        t1: float,
        coordinator_drops: Mapping[str, int],
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record round ``round_``: ``reports[i]`` is peer i's ``metrics``/``traffic``/
        ``timing``; ``failed`` the peers known failed when it closed; ``t0``/``t1`` when
        it started and closed (monotonic); ``coordinator_drops`` the coordinator's drop
        counters so far (the reference has none); ``extra`` further top-level fields."""
        record = round_record(
            round_=round_,
            roles=self.roles,
            reports=dict(reports),
            failed=failed,
            elapsed_s=t1 - self.started,
            round_s=t1 - t0,
        )
        record.update(extra or {})
        record["coordinator_drops"] = dict(coordinator_drops)
        self.results.append_round(record)
        if self.progress is not None:
            self.progress(record)
        return record


#: the scalar types msgpack decodes that JSON records verbatim
_SCALARS = frozenset({type(None), bool, int, float, str})


def recordable(value: Any, max_depth: int = 32) -> bool:
    """True if ``rounds.jsonl`` can record ``value`` verbatim: nil/bool/int/float/str and
    lists/str-keyed maps of them, nested at most ``max_depth`` deep (msgpack also yields
    bytes, ext types and bytes keys, which a peer's report must not hold).

    Exact types, as msgpack decodes them (a subclass is refused), and only containers go
    on the stack: the coordinator checks every ``round_done`` while the barrier waits
    (BENCHMARKS.md, *Where the exchange's time goes*)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        t = type(v)
        if t is dict:
            if not all(type(k) is str for k in v):
                return False
            children: Any = v.values()
        elif t is list:
            children = v
        else:
            if t not in _SCALARS:
                return False
            continue
        if children and depth >= max_depth:
            return False
        for x in children:
            tx = type(x)
            if tx is dict or tx is list:
                stack.append((x, depth + 1))
            elif tx not in _SCALARS:
                return False
    return True
