"""The checks of ``byzemu conformance`` (docs/PROTOCOL.md, *Conformance kit*): what the
tested peer's recorded rounds, drop counters and failures must show. The run itself is
``launch/tools/conformance.py``; the hostile neighbor ``launch/tools/conformance_hostile.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordinator.results import ResultsWriter
from launch.tools.conformance_churn import AWAY_ROUND, GRAPH_ROUND, Events, round_neighbors
from protocol import reports
from protocol.config import RunConfig

FOREIGN = 0  #: the user's peer registers first (unless --register-last)
FAIL_AFTER = 2  #: a byzemu neighbor of the user's peer is killed after this round, before the next starts
HOSTILE_ROUND = 2  #: the round in which the hostile neighbor sends its messages (before the kill)


#: what the hostile neighbor's messages must be dropped as, in the order it sends them
#: ("forged" depends on the run: :func:`expected_drops`)
HOSTILE_REASONS = [
    "undecodable",
    "bad_version",
    "bad_dtype",
    "bad_chunk_index",
    "bad_chunk_count",
    "bad_chunk_size",
    "forged",
    "future_round",
    "oversized",
]


def expected_drops(*, curve: bool, sender_mac: bool) -> dict[str, int]:
    """What the tested peer must count for the hostile neighbor's messages
    (``launch/tools/conformance_hostile.py``)."""
    forged = "bad_mac" if sender_mac else "key_mismatch" if curve else "sender_mismatch"
    return {reason if reason != "forged" else forged: 1 for reason in HOSTILE_REASONS}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def round_done_problems(entry: dict[str, Any], *, eval_round: bool) -> list[str]:
    """What is wrong with one recorded ``round_done`` (PROTOCOL.md, *round_done*; the rules
    of protocol/reports.py, which the coordinator enforces too); [] if nothing."""
    del eval_round  # evaluation fields are optional (a peer that omits them is left out of the statistics)
    if "metrics" not in entry:
        return ["no round_done recorded (the coordinator logs why it dropped one: bad_report)"]
    return reports.problems(entry.get("metrics", {}), entry.get("traffic", {}), entry.get("timing", {}))


def round_checks(
    results: ResultsWriter,
    cfg: RunConfig,
    *,
    foreign: int,
    failures: dict[int, tuple[int, str]],
    curve: bool,
    events: Events,
) -> list[Check]:
    """The checks of a finished run whose records are in ``results``: ``foreign`` is the
    tested peer's node id, ``failures`` why the coordinator marked peers failed (node ->
    (round, reason)), ``curve`` whether the run used CURVE, ``events`` whom the kit's
    graph change and churn event concern (launch/tools/conformance_churn.py)."""
    checks = []
    fail = failures.get(foreign)
    if fail is not None and fail[0] == 0:
        checks.append(Check("ready", False, f"marked failed: {fail[1]}"))
    else:
        checks.append(Check("ready", True, "answered ready in time"))
    killed = max(set(range(cfg.nodes)) - {foreign})
    k = cfg.chunks.per_neighbor
    short_rounds: set[int] = set()  # rounds in which a byzemu peer missed your peer's chunks
    records = results.run.records()  # whole records, per-peer parts included (the coordinator keeps slim ones)
    for record in records:
        t, peers = record["round"], record["peers"]
        neighbors = {n: round_neighbors(record, n, cfg.nodes) for n in range(cfg.nodes)}  # the round's graph
        me = peers[str(foreign)]
        if me["status"] != "ok":
            why = failures.get(foreign, (t, me["status"]))[1]
            checks.append(Check(f"round {t}", False, f"no round_done from your peer ({why})"))
            continue
        problems = round_done_problems(me, eval_round=cfg.eval_round(t))
        checks.append(Check(f"round {t}: round_done fields", not problems, "; ".join(problems) or "valid"))
        live = {j for j in neighbors[foreign] if peers[str(j)]["status"] == "ok"}
        got = me["metrics"]
        want = {"senders": len(live), "chunks_received": k * len(live)}
        seen = {key: got.get(key) for key in want}
        checks.append(
            Check(
                f"round {t}: chunks to your peer",
                seen == want,
                f"reported {seen}, byzemu neighbors {sorted(live)} sent {want}",
            )
        )
        short = {
            j: peers[str(j)]["metrics"]["senders"]
            for j in sorted(live)
            if peers[str(j)]["metrics"]["senders"] != len({i for i in neighbors[j] if peers[str(i)]["status"] == "ok"})
        }
        if short:
            short_rounds.add(t)
        checks.append(
            Check(
                f"round {t}: chunks from your peer",
                not short,
                f"byzemu peers {sorted(short)} missed a chunk message (senders {short})"
                if short
                else f"byzemu neighbors {sorted(live)} each accepted its chunk message",
            )
        )
    if not records:
        return checks
    checks += _event_checks(records, cfg, foreign=foreign, events=events, short_rounds=short_rounds)
    last = records[-1]
    mine = last["peers"][str(foreign)].get("traffic", {}).get("drops_total", {})
    theirs = {
        j: e["traffic"]["drops_total"]
        for j, e in last["peers"].items()
        if int(j) != foreign and e["status"] == "ok" and e["traffic"]["drops_total"]
    }
    # a killed sender's connection closing is one connection_dropped at each of its neighbors
    expected = {"connection_dropped": 1} if len(records) > FAIL_AFTER else {}
    bad_theirs = {j: d for j, d in theirs.items() if d not in ({}, expected)}
    # the hostile neighbor's messages (launch/tools/conformance_hostile.py), each counted once
    hostile = expected_drops(curve=curve, sender_mac=cfg.runtime.sender_mac)
    if len(records) >= HOSTILE_ROUND:
        counted = {r: mine.get(r, 0) for r in hostile}
        wrong = {r: c for r, c in counted.items() if c != hostile[r]}
        checks.append(
            Check(
                "hostile messages",
                not wrong,
                f"round {HOSTILE_ROUND}: a byzemu neighbor sent one message for each of {sorted(hostile)}; "
                + (f"your peer counted {wrong} (each should be 1)" if wrong else "your peer counted each once"),
            )
        )
    allowed = {**hostile, "connection_dropped": 1}
    bad_mine = {r: c - allowed.get(r, 0) for r, c in mine.items() if c > allowed.get(r, 0)}
    coordinator = {r: c for r, c in last.get("coordinator_drops", {}).items() if {r: c} != expected}
    checks.append(
        Check(
            "drops",
            not bad_theirs and not bad_mine and not coordinator,
            f"at byzemu peers {bad_theirs or 'none'}, at your peer {bad_mine or 'none'}, at the coordinator "
            f"{coordinator or 'none'} (beyond the killed peer's closed connections and the hostile messages)",
        )
    )
    if len(records) > FAIL_AFTER:
        after = records[FAIL_AFTER:]
        reported = all(r["peers"][str(foreign)]["status"] == "ok" for r in after)
        # a byzemu peer waits until the chunk deadline for chunks it misses from your peer:
        # only a slow round without that is your peer waiting for the failed one
        slow = [
            r["round"] for r in after if r["round_s"] >= cfg.runtime.chunk_timeout and r["round"] not in short_rounds
        ]
        checks.append(
            Check(
                "peer_failed",
                reported and not slow,
                f"node {killed} killed after round {FAIL_AFTER}: your peer "
                + (
                    "missed a later round"
                    if not reported
                    else f"waited for the failed peer's chunks until the chunk deadline in rounds {slow}"
                    if slow
                    else "went on without it in every later round"
                ),
            )
        )
    return checks


def _event_checks(
    records: list[dict[str, Any]], cfg: RunConfig, *, foreign: int, events: Events, short_rounds: set[int]
) -> list[Check]:
    """The graph-change and churn-event checks: in each event's round the tested peer sent
    to and awaited exactly the round's neighbors (its reported senders, no chunk deadline
    waited out, no ``not_round_neighbor`` at the peer it must leave out). A round in which
    a byzemu peer missed the tested peer's chunks (``short_rounds``) lasts the deadline
    because of that byzemu peer's wait, which the ``chunks from your peer`` check reports."""
    last = records[-1]["peers"]
    checks = []
    cases = [
        (GRAPH_ROUND, "graph change", events.dropped, f"no edge to node {events.dropped}"),
        (AWAY_ROUND, "churn", events.away, f"node {events.away} away"),
    ]
    for round_, name, left_out, what in cases:
        if len(records) < round_:
            continue
        record = records[round_ - 1]
        me = record["peers"][str(foreign)]
        live = {j for j in round_neighbors(record, foreign, cfg.nodes) if record["peers"][str(j)]["status"] == "ok"}
        senders = me.get("metrics", {}).get("senders")
        slow = record["round_s"] >= cfg.runtime.chunk_timeout and round_ not in short_rounds
        sent = last[str(left_out)].get("traffic", {}).get("drops_total", {}).get("not_round_neighbor", 0)
        problems = [
            *([f"your peer reported {senders} senders"] if senders != len(live) else []),
            *(["the round lasted the chunk deadline (your peer waited for a peer that sends nothing)"] if slow else []),
            *([f"node {left_out} dropped {sent} message(s) from it as not_round_neighbor"] if sent else []),
        ]
        checks.append(
            Check(
                f"round {round_}: {name}",
                not problems,
                f"{what}: " + ("; ".join(problems) if problems else f"your peer exchanged with exactly {sorted(live)}"),
            )
        )
    return checks
