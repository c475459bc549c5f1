"""Results you can use, in-process: the tidy DataFrames (launch/analysis/tables.py), `byzemu export`,
the finished/unfinished rule (protocol.rundir.unfinished_reason), TensorBoard tracking
read back from its event file, the progress line, run folder names, `byzemu list`,
`--version` and `-v` after the subcommand. Runs are in-process reference runs (bit-identical
to the cluster, tests/test_reference_equivalence.py)."""

from __future__ import annotations

import importlib.metadata
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordinator.results import ResultsWriter
from launch.cli import main
from launch.run.local import default_out_dir
from launch.run.progress import Progress
from launch.run.reference import run_reference
from protocol import config as config_mod
from protocol.rundir import is_finished, unfinished_reason
from tests.support.harness import read_rounds
from tests.support.runs import small_config

pd = pytest.importorskip("pandas")

CONFIG = small_config("tables", seed=2, byzantine={"count": 1, "attack": "backdoor"})


def _cfg(tmp: Path, *sets: str) -> config_mod.RunConfig:
    path = tmp / "c.toml"
    path.write_text(CONFIG)
    return config_mod.load(path, list(sets))


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tables")
    run_reference(_cfg(root), root / "cdl")
    run_reference(_cfg(root, "defense.name=norm_clip"), root / "clip")
    return root


def test_peer_rounds_has_one_row_per_run_round_peer(runs_dir: Path) -> None:
    from launch.analysis.tables import peer_rounds

    df = peer_rounds(runs_dir)

    assert len(df) == 2 * 2 * 4  # runs x rounds x peers
    assert set(df["run"]) == {"cdl", "clip"}
    peers = read_rounds(runs_dir / "clip")[1]["peers"]
    honest = min(int(p) for p, v in peers.items() if v["role"] == "honest")  # Byzantine peers do not evaluate
    row = df[(df["run"] == "clip") & (df["round"] == 2) & (df["peer"] == honest)].iloc[0]
    want = peers[str(honest)]
    assert row["role"] == want["role"] and row["status"] == "ok"
    assert row["test_accuracy"] == want["metrics"]["test_accuracy"]
    assert row["attack_success_rate"] == want["metrics"]["attack_success_rate"]
    assert row["traffic.sent_payload_bytes"] == want["traffic"]["sent_payload_bytes"]
    assert row["timing.train_s"] == want["timing"]["train_s"]
    assert (df["role"] == "honest").sum() == 2 * 2 * 3  # one Byzantine peer of 4


def test_round_table_is_the_honest_statistics(runs_dir: Path) -> None:
    from launch.analysis.tables import peer_rounds, rounds

    per_peer = peer_rounds(runs_dir)
    df = rounds(runs_dir)

    assert len(df) == 4
    honest = per_peer[(per_peer["run"] == "cdl") & (per_peer["round"] == 1) & (per_peer["role"] == "honest")]
    row = df[(df["run"] == "cdl") & (df["round"] == 1)].iloc[0]
    assert row["test_accuracy_mean"] == pytest.approx(statistics.fmean(honest["test_accuracy"]))
    assert row["test_accuracy_worst"] == honest["test_accuracy"].min()
    assert row["test_accuracy_n"] == 3


def test_run_table_flattens_the_config(runs_dir: Path) -> None:
    from launch.analysis.tables import runs

    df = runs(runs_dir).set_index("run")

    assert list(df.loc[["cdl", "clip"], "defense.name"]) == ["cdl", "norm_clip"]
    summary = json.loads((runs_dir / "clip" / "summary.json").read_text())
    assert df.loc["clip", "final_accuracy_mean"] == summary["final_accuracy"]["mean"]
    assert df.loc["clip", "final_attack_success_rate_worst"] == summary["final_attack_success_rate"]["worst"]
    assert df.loc["clip", "mode"] == "reference" and bool(df.loc["clip", "finished"])
    assert df.loc["clip", "train.local_steps"] == 1


def test_unfinished_runs_are_left_out_unless_asked(runs_dir: Path, tmp_path: Path) -> None:
    from launch.analysis.tables import runs

    root = tmp_path / "mixed"
    shutil.copytree(runs_dir / "cdl", root / "done")
    shutil.copytree(runs_dir / "cdl", root / "cut")
    (root / "cut" / "summary.json").unlink()  # killed: rounds.jsonl, no summary

    assert list(runs(root)["run"]) == ["done"]
    both = runs(root, unfinished=True).set_index("run")
    assert list(both["finished"]) == [False, True]


def test_export_writes_the_three_tables_as_csv(runs_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(runs_dir), "--out", str(tmp_path / "t")])

    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "t" / "peer_rounds.csv")) == 16
    assert len(pd.read_csv(tmp_path / "t" / "rounds.csv")) == 4
    assert list(pd.read_csv(tmp_path / "t" / "runs.csv")["defense.name"]) == ["cdl", "norm_clip"]


def test_only_a_run_of_every_round_is_finished(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    writer = ResultsWriter(tmp_path / "cut", cfg, mode="multiprocess")
    writer.append_round({"round": 1, "honest": {}, "failed": [], "peers": {}})
    state = writer.interrupt(wall_s=1.0, reason="interrupted (SIGINT)")
    old = tmp_path / "old"  # an older byzemu wrote a null-filled summary on Ctrl-C
    shutil.copytree(tmp_path / "cut", old)
    (old / "interrupted.json").unlink()
    (old / "summary.json").write_text(json.dumps({"rounds_completed": 1, "rounds": 2}))

    assert not (tmp_path / "cut" / "summary.json").exists()
    assert unfinished_reason(tmp_path / "cut") == "interrupted at round 1 of 2 (interrupted (SIGINT))"
    assert state["resume"] is None  # checkpoints off
    assert "checkpoints are off" in state["message"]
    assert (
        unfinished_reason(old)
        == "its summary.json records 1 of 2 rounds (left by an interrupted run of an older byzemu)"
    )
    assert not is_finished(tmp_path / "nothing-here")


def test_tensorboard_scalars_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from launch.run.tracking import TensorBoardLogger

    logger = TensorBoardLogger(log_dir=tmp_path / "tb")
    run_reference(_cfg(tmp_path), tmp_path / "run", progress=logger)
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()

    want = read_rounds(tmp_path / "run")
    acc = events.Scalars("honest/test_accuracy_mean")
    asr = events.Scalars("honest/attack_success_rate_worst")
    assert [e.step for e in acc] == [1, 2]
    assert [e.value for e in acc] == pytest.approx([r["honest"]["test_accuracy"]["mean"] for r in want])
    assert [e.value for e in asr] == pytest.approx([r["honest"]["attack_success_rate"]["worst"] for r in want])


class _Stream(io.StringIO):
    """A stream that is not a terminal and keeps what was written (``text``)."""

    @property
    def text(self) -> str:
        return self.getvalue()

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass


def test_progress_line_shows_asr_and_eta() -> None:
    stream = _Stream()
    progress = Progress(10, stream=stream)
    stat = {"mean": 0.5, "worst": 0.25}

    progress({"round": 1, "elapsed_s": 2.0, "round_s": 2.0, "failed": [], "honest": {}})
    progress(
        {
            "round": 2,
            "elapsed_s": 4.0,
            "round_s": 2.0,
            "failed": [],
            "honest": {"test_accuracy": stat, "attack_success_rate": {"mean": 0.125, "worst": 0.75}},
        }
    )

    first, second = stream.text.splitlines()
    assert "ASR" not in first and first.endswith("ETA 18s")  # 2 s a round, 9 rounds left
    assert "honest acc 0.5000 (worst 0.2500) | ASR 0.1250 (worst 0.7500)" in second
    assert second.endswith("ETA 16s")


def test_run_folder_is_named_after_what_set_changed(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)

    name = default_out_dir(
        cfg, ["byzantine.attack=backdoor", "defense.name=norm_clip", "train.lr=0.1", "runtime.round_timeout=9"]
    ).name

    assert name.startswith("tables-backdoor-norm_clip-lr=0.1-")
    assert default_out_dir(cfg).name.startswith("tables-2")  # tables-<timestamp>


def test_list_attacks_shows_every_registered_name_with_defaults() -> None:
    from peer.attacks import ATTACKS

    result = CliRunner().invoke(main, ["list", "attacks"])

    assert result.exit_code == 0
    for name in ATTACKS.names():
        assert f'{name}  (byzantine.attack = "{name}")' in result.output
    assert "params: sigma=1.0, mean=0.0, draw='independent', seed=0, start_round=1, interval=1" in result.output
    # parameters a class inherits are listed too: the trigger lives in the backdoor's base
    backdoor = result.output.split('backdoor  (byzantine.attack = "backdoor")')[1].split("\n")[2]
    assert "trigger_size=4" in backdoor and "target=0" in backdoor and backdoor.startswith("    params: boost=1.0")


@pytest.mark.parametrize("kind", ["attacks", "defenses", "datasets", "models"])
def test_every_list_kind_prints_its_names(kind: str) -> None:
    from launch.catalog import entries

    result = CliRunner().invoke(main, ["list", kind])

    assert result.exit_code == 0, result.output
    names = [e.name for e in entries(kind)]
    assert len(names) >= 3 and all(f"{n}  (" in result.output for n in names)
    if kind == "datasets":
        assert 'mnist  (data.dataset = "mnist")\n    10 classes, images 1x28x28' in result.output


def test_version_and_verbose_after_the_subcommand(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(CONFIG)

    version = CliRunner().invoke(main, ["--version"])
    validate = CliRunner().invoke(main, ["validate", str(tmp_path / "c.toml"), "-v"])

    assert version.output == f"byzemu, version {importlib.metadata.version('byzemu')}\n"
    assert validate.exit_code == 0 and validate.output.startswith("ok: 4 peers")


def test_report_rows_ignore_runtime_split_modes_and_list_unfinished(runs_dir: Path, tmp_path: Path) -> None:
    from launch.analysis.report import write_report

    root = tmp_path / "runs"
    shutil.copytree(runs_dir / "cdl", root / "a")
    shutil.copytree(runs_dir / "cdl", root / "b")  # same config but a runtime.* field: a repeat
    meta = json.loads((root / "b" / "config.json").read_text())
    meta["config"]["runtime"]["round_timeout"] = 999.0
    (root / "b" / "config.json").write_text(json.dumps(meta))
    shutil.copytree(runs_dir / "cdl", root / "c")  # same config run as a cluster: its own row
    meta["mode"] = "multiprocess"
    (root / "c" / "config.json").write_text(json.dumps(meta))
    shutil.copytree(runs_dir / "cdl", root / "d")
    (root / "d" / "summary.json").unlink()

    res = write_report(root)

    assert res["axes"] == ["mode"]
    assert [(r["mode"], r["runs"]) for r in res["rows"]] == [("reference", 2), ("multiprocess", 1)]
    assert res["unfinished"] == [("d", "stopped after round 2 without a summary (killed, or still running)")]
    assert "- `d`: stopped after round 2 without a summary" in (root / "report.md").read_text()
