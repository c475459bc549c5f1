"""The rules of a ``round_done`` report (protocol/reports.py, docs/PROTOCOL.md *round_done*):
what the coordinator drops as ``bad_report`` and what it records (a NaN loss included)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from protocol import reports
from protocol.rundir import round_line

METRICS = {"chunks_received": 4, "senders": 2, "digest": "0123456789abcdef", "train_loss": 0.5}
TRAFFIC = {"sent_msgs": 2, "sent_bytes": 10, "recv_msgs": 2, "recv_bytes": 10, "dropped": 0, "drops_total": {}}
TIMING = {"round_s": 0.25}


def test_a_complete_report_has_no_problem() -> None:
    assert reports.problems(METRICS, TRAFFIC, TIMING) == []


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_is_accepted_and_recorded_as_null(value: float) -> None:
    metrics = {**METRICS, "train_loss": value}

    assert reports.problems(metrics, TRAFFIC, {"round_s": value}) == []
    assert round_line({"train_loss": value}) == b'{"train_loss": null}\n'


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"digest": "0123456789ABCDEF"}, "metrics.digest must be 16 lowercase hex digits, is '0123456789ABCDEF'"),
        ({"digest": "0123"}, "metrics.digest must be 16 lowercase hex digits, is '0123'"),
        ({"senders": -1}, "metrics.senders must be an int >= 0, is -1"),
        ({"chunks_received": 2.0}, "metrics.chunks_received must be an int >= 0, is 2.0"),
        ({"chunks_received": True}, "metrics.chunks_received must be an int >= 0, is True"),
        ({"test_loss": "low"}, "metrics.test_loss must be a number, is 'low'"),
        ({"blob": b"\x00"}, "metrics holds values JSON cannot record"),
    ],
)
def test_a_malformed_metric_is_named(change: dict[str, Any], problem: str) -> None:
    assert reports.problems({**METRICS, **change}, TRAFFIC, TIMING) == [problem]


def test_missing_required_metrics_and_counters_are_each_named() -> None:
    got = reports.problems({}, {"drops_total": {"oversized": -1}}, {"round_s": "1"})

    assert got == [
        "metrics.chunks_received must be an int >= 0, is None",
        "metrics.senders must be an int >= 0, is None",
        "metrics.digest must be 16 lowercase hex digits, is None",
        "traffic.sent_msgs must be an int >= 0, is None",
        "traffic.sent_bytes must be an int >= 0, is None",
        "traffic.recv_msgs must be an int >= 0, is None",
        "traffic.recv_bytes must be an int >= 0, is None",
        "traffic.dropped must be an int >= 0, is None",
        "traffic.drops_total must map reasons to ints >= 0, is {'oversized': -1}",
        "timing values must be numbers",
    ]


def test_a_rules_own_metric_is_free_form() -> None:
    assert reports.problems({**METRICS, "alie_z": {"3": 1.5}}, TRAFFIC, TIMING) == []
