"""Tests for coordinator.results: stats, round records, summary and the results folder."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from coordinator.results import ResultsWriter, round_record, stats, summarize
from protocol.config import from_dict


def _strict_json(text: str) -> Any:
    def reject(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


# ----------------------------------------------------------------------------- stats


def test_stats_of_one_two_three() -> None:
    s = stats([1, 2, 3])

    assert s is not None
    assert s["mean"] == 2.0
    assert s["std"] == pytest.approx(math.sqrt(2 / 3))
    assert (s["worst"], s["n"]) == (1, 3)


def test_stats_worst_max_for_losses() -> None:
    assert stats([0.5, 2.0, 1.0], worst="max")["worst"] == 2.0  # type: ignore[index]


def test_stats_ignores_nan_and_inf() -> None:
    s = stats([1.0, math.nan, 3.0, math.inf])

    assert s == {"mean": 2.0, "std": 1.0, "worst": 1.0, "n": 2}


def test_stats_of_single_value_has_zero_std() -> None:
    assert stats([0.25]) == {"mean": 0.25, "std": 0.0, "worst": 0.25, "n": 1}


def test_stats_of_no_finite_values_is_none() -> None:
    assert stats([]) is None and stats([math.nan]) is None


# ----------------------------------------------------------------------------- round_record


ROLES = {0: "honest", 1: "honest", 2: "byzantine:gaussian", 3: "honest", 4: "honest"}


def _report(acc: float, loss: float, train: float, agg: float) -> dict[str, Any]:
    return {
        "metrics": {"test_accuracy": acc, "test_loss": loss, "train_loss": train},
        "traffic": {"sent_bytes": 10},
        "timing": {"aggregate_s": agg},
    }


def _record() -> dict[str, Any]:
    reports = {
        0: _report(0.8, 0.5, 0.4, 0.1),
        1: _report(0.6, 0.9, 0.6, 0.3),
        2: _report(0.1, 5.0, 9.0, 0.2),  # Byzantine: excluded from honest stats
    }
    # 3 failed (known dead), 4 simply did not report
    return round_record(round_=5, roles=ROLES, reports=reports, failed={3}, elapsed_s=12.0, round_s=2.0)


def test_round_record_honest_accuracy_only_over_honest_reporting_peers() -> None:
    acc = _record()["honest"]["test_accuracy"]

    assert acc["mean"] == pytest.approx(0.7)
    assert acc["std"] == pytest.approx(0.1)
    assert (acc["worst"], acc["n"]) == (0.6, 2)


def test_round_record_loss_worst_is_the_maximum() -> None:
    loss = _record()["honest"]["test_loss"]

    assert loss["worst"] == 0.9 and loss["mean"] == pytest.approx(0.7)


def test_round_record_peer_statuses() -> None:
    peers = _record()["peers"]

    assert {k: v["status"] for k, v in peers.items()} == {
        "0": "ok",
        "1": "ok",
        "2": "ok",
        "3": "failed",
        "4": "missing",
    }


def test_round_record_keeps_roles_and_reports_of_peers() -> None:
    peers = _record()["peers"]

    assert peers["2"]["role"] == "byzantine:gaussian"
    assert peers["2"]["metrics"]["test_accuracy"] == 0.1
    assert peers["3"] == {"role": "honest", "status": "failed"}


def test_round_record_header_fields() -> None:
    rec = _record()

    assert (rec["round"], rec["elapsed_s"], rec["round_s"], rec["failed"]) == (5, 12.0, 2.0, [3])


def test_round_record_aggregate_time_over_all_reporting_peers() -> None:
    agg = _record()["aggregate_s"]

    assert agg["mean"] == pytest.approx(0.2) and agg["n"] == 3


def test_round_record_without_eval_metrics_has_only_train_loss() -> None:
    reports = {0: {"metrics": {"train_loss": 1.0}, "traffic": {}, "timing": {}}}

    rec = round_record(
        round_=1, roles={0: "honest", 1: "honest"}, reports=reports, failed=set(), elapsed_s=1.0, round_s=1.0
    )

    assert list(rec["honest"]) == ["train_loss"]


# ----------------------------------------------------------------------------- summarize


def _rec(round_: int, acc: float | None) -> dict[str, Any]:
    honest: dict[str, Any] = {"train_loss": {"mean": 1.0, "std": 0.0, "worst": 1.0, "n": 2}}
    if acc is not None:
        honest["test_accuracy"] = {"mean": acc, "std": 0.0, "worst": acc, "n": 2}
        honest["test_loss"] = {"mean": 1 - acc, "std": 0.0, "worst": 1 - acc, "n": 2}
    return {"round": round_, "failed": [], "honest": honest}


def _cfg(fraction: float = 0.95, rounds: int = 12):
    return from_dict({"name": "t", "rounds": rounds, "eval": {"every": 5, "convergence_fraction": fraction}})


def _records(accs: dict[int, float | None]) -> list[dict[str, Any]]:
    return [_rec(r, accs.get(r)) for r in range(1, max(accs) + 1)]


def test_convergence_is_first_eval_round_reaching_fraction_of_best() -> None:
    # best 0.9 -> target 0.95 * 0.9 = 0.855: round 5 (0.5) no, round 10 (0.86) yes.
    records = _records({5: 0.5, 10: 0.86, 12: 0.9})

    s = summarize(records, _cfg(0.95), wall_s=3.0, mode="reference")

    assert (s["convergence_round"], s["best_round"], s["final_round"]) == (10, 12, 12)


def test_convergence_with_fraction_one_is_the_best_round() -> None:
    s = summarize(_records({5: 0.5, 10: 0.86, 12: 0.9}), _cfg(1.0), wall_s=0.0, mode="x")

    assert s["convergence_round"] == 12


def test_convergence_just_below_target_is_not_reached() -> None:
    # best 1.0, fraction 0.8 -> target 0.8: 0.79 at round 5 is below, 0.8 at 10 reaches it.
    s = summarize(_records({5: 0.79, 10: 0.8, 12: 1.0}), _cfg(0.8), wall_s=0.0, mode="x")

    assert s["convergence_round"] == 10


def test_best_and_final_differ_when_accuracy_drops() -> None:
    s = summarize(_records({5: 0.5, 10: 0.9, 12: 0.7}), _cfg(), wall_s=0.0, mode="x")

    assert (s["best_round"], s["final_round"]) == (10, 12)
    assert s["best_accuracy"]["mean"] == 0.9 and s["final_accuracy"]["mean"] == 0.7
    assert s["final_loss"]["mean"] == pytest.approx(0.3)


def test_summary_counts_rounds_and_collects_failed_peers() -> None:
    records = _records({5: 0.5, 6: None})
    records[2]["failed"] = [4]
    records[4]["failed"] = [1, 4]

    s = summarize(records, _cfg(), wall_s=7.5, mode="multiprocess")

    assert (s["rounds_completed"], s["rounds"], s["failed_peers"]) == (6, 12, [1, 4])
    assert (s["name"], s["mode"], s["wall_s"], s["convergence_fraction"]) == ("t", "multiprocess", 7.5, 0.95)


def test_summary_without_any_evaluation_has_no_accuracy() -> None:
    s = summarize(_records({3: None}), _cfg(), wall_s=1.0, mode="x")

    assert (s["final_accuracy"], s["best_round"], s["convergence_round"]) == (None, None, None)


# ----------------------------------------------------------------------------- ResultsWriter


def _writer(tmp_path: Path) -> ResultsWriter:
    cfg = from_dict(
        {
            "name": "w",
            "rounds": 2,
            "defense": {"params": {"own_weight": 0.5}},
            "byzantine": {"count": 1, "attack": "gaussian", "params": {"sigma": 2.0}},
            "data": {"root": "/abs/data"},
        }
    )
    return ResultsWriter(tmp_path / "run", cfg, mode="reference")


def test_append_round_is_readable_before_finish(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    try:
        writer.append_round(_rec(1, 0.5))
        lines = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()
    finally:
        writer.finish(wall_s=0.0)

    assert [_strict_json(line) for line in lines] == [_rec(1, 0.5)]


def test_each_append_adds_exactly_one_line(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.append_round(_rec(1, None))
    writer.append_round(_rec(2, 0.5))
    writer.finish(wall_s=0.0)

    lines = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()

    assert [_strict_json(line)["round"] for line in lines] == [1, 2]


def test_nan_in_a_record_becomes_null(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    record = {
        "round": 1,
        "failed": [],
        "honest": {},
        "peers": {"0": {"metrics": {"train_loss": math.nan, "x": [math.inf]}}},
    }
    writer.append_round(record)
    writer.finish(wall_s=0.0)

    line = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()[0]

    assert _strict_json(line)["peers"]["0"]["metrics"] == {"train_loss": None, "x": [None]}


def test_config_toml_loads_back_to_the_same_config(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.finish(wall_s=0.0)

    loaded = tomllib.loads((tmp_path / "run" / "config.toml").read_text())

    assert loaded == writer.cfg.to_dict()
    assert from_dict(loaded) == writer.cfg


def test_config_json_holds_mode_and_config(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.finish(wall_s=0.0)

    data = _strict_json((tmp_path / "run" / "config.json").read_text())

    assert data == {"mode": "reference", "config": writer.cfg.to_dict()}


def test_finish_writes_strict_json_summary_with_extra_fields(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.append_round(_rec(1, 0.5))
    writer.append_round(_rec(2, 0.75))

    returned = writer.finish(wall_s=math.nan, extra={"note": "x"})
    on_disk = _strict_json((tmp_path / "run" / "summary.json").read_text())

    assert on_disk["best_round"] == 2 and on_disk["note"] == "x"
    assert on_disk["wall_s"] is None  # NaN wall time is written as null
    assert returned["best_round"] == 2


def test_write_topology_writes_json(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.write_topology({"kind": "ring", "edges": [[0, 1]]})
    writer.finish(wall_s=0.0)

    assert _strict_json((tmp_path / "run" / "topology.json").read_text()) == {"kind": "ring", "edges": [[0, 1]]}


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.finish(wall_s=0.0)

    assert not list((tmp_path / "run").glob("*.tmp"))
