"""The round recorder: one line of ``rounds.jsonl`` per round, for both drivers.

The coordinator (``coordinator/server.py``) and the in-process reference
(``launch/run/reference.py``) hand it the peers' round reports (``metrics``, ``traffic``,
``timing``: the maps of ``round_done``, docs/PROTOCOL.md) and when the round started and
closed; it builds the record (:func:`coordinator.results.round_record`: per-peer entries,
honest statistics), adds what only the caller knows (the coordinator's drops, checkpoint
completeness, refused registrations), appends it flushed and reports progress. Each
report's ``delivery`` (the senders the peer's inbox reads found) goes to the delivery log
(:class:`coordinator.deliveries.DeliveryLog`), not into the record. Both
drivers' peers count traffic with :class:`peer.traffic.Traffic`, so a record has one
format whichever driver ran it; docs/RESULTS.md lists its fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coordinator.deliveries import DeliveryLog, well_formed
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
        self.deliveries = DeliveryLog(results.run, fresh=not results.records)
        self.schedule = plan.rounds

    def close(self) -> None:
        """Close the delivery log (the run's last round is recorded or the run stopped)."""
        self.deliveries.close()

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
        reports = {n: dict(r) for n, r in reports.items()}
        delivery = {n: r["delivery"] for n, r in reports.items() if well_formed(r.get("delivery"))}
        self.deliveries.append(round_, delivery)
        for r in reports.values():
            r.pop("delivery", None)
        record = round_record(
            round_=round_,
            roles=self.roles,
            reports=reports,
            failed=failed,
            elapsed_s=t1 - self.started,
            round_s=t1 - t0,
        )
        if self.schedule.dynamic:  # the round's graph (coordinator/dynamics.py)
            record["graph"] = {"directed": self.schedule.directed, "edges": self.schedule.edges_json(round_)}
        away = self.schedule.presence.away(round_)
        if self.schedule.presence.active:  # churn: who took part (coordinator/churn.py)
            record["away"] = sorted(away)
            for node in away:
                record["peers"][str(node)]["status"] = "away"
        record.update(extra or {})
        for node in record.get("pending", ()):  # a churn slot whose process was not there (joins.py)
            record["peers"][str(node)]["status"] = "pending"
        record["coordinator_drops"] = dict(coordinator_drops)
        self.results.append_round(record)
        if self.progress is not None:
            self.progress(record)
        return record
