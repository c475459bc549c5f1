"""Slurm (docs/CLUSTER.md, *With Slurm*): scripts and checks in-process, then one
run and one 4-run sweep on a real Slurm cluster brought up by the test.

The cluster (session fixture ``slurm``): ``munged``, ``slurmctld`` and two ``slurmd``
(nodes ``n1`` and ``n2``, ``slurmd -N``, each on its own port) on this machine, every
file, socket and port of theirs under a temporary folder or picked free, from Debian's
``slurm-wlm`` and ``munge`` (``.ci/run`` installs them when it runs as root). The test
skips, saying why, where they are missing or cannot start (not root, no packages).

A run submitted with ``--nodes 2`` spans both nodes (its log shows a task on each); its
per-round metrics and model digests must equal those of ``byzemu launch`` of the same
config and seed, and so must the two runs of the same sweep submitted as a job array.
The runs to equal are made in this process by ``launch.run.reference.run_reference``, which
``tests/test_reference_equivalence.py`` holds bit-identical to ``byzemu launch`` (a local
cluster here would only repeat that check, at the cost of a cluster start per run).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from launch.cli import main
from launch.run.reference import run_reference
from launch.sweeps.sweepfile import load_sweep
from protocol import config as config_mod
from tests.support.harness import read_rounds
from tests.support.runs import small_config
from tests.support.slurm import Slurm, SlurmUnavailable, start, stop
from tests.support.waiting import wait_until

NODES, ROUNDS = 4, 3
CONFIG = small_config(
    "slurm-test",
    seed=21,
    nodes=NODES,
    rounds=ROUNDS,
    train={"local_steps": 2, "batch_size": 16},
    byzantine={"count": 1, "attack": "gaussian", "params": {"sigma": 0.5}},
    runtime={"register_timeout": 120.0, "round_timeout": 60.0, "chunk_timeout": 30.0},
)

SWEEP = """
base = "base.toml"
repeats = 1

[axes]
"defense.name" = ["cdl", "norm_clip"]
"""

#: the Slurm run repeats this run of the sweep (same config and seed)
SAME_AS = "defense.name=cdl/rep0"
JOB_TIMEOUT = 300.0


def _cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("slurm-files")
    (d / "base.toml").write_text(CONFIG)
    (d / "grid.toml").write_text(SWEEP)
    return d


# ----------------------------------------------------------------------------- in-process


def test_peers_are_split_evenly_first_hosts_one_more() -> None:
    from launch.cluster.slurm import shares

    assert shares(7, 3) == [3, 2, 2]
    assert shares(4, 2) == [2, 2]


def test_dry_run_prints_the_script_it_writes_with_the_config_and_submits_nothing(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"

    res = _cli(
        "launch",
        str(files / "base.toml"),
        "--on",
        "slurm",
        "--nodes",
        "2",
        "--partition",
        "short",
        "--time",
        "0:10:00",
        "--sbatch-arg=--mem=2G",
        "--dry-run",
        "--out",
        str(out),
    )

    assert res.exit_code == 0, res.output
    script = res.stdout
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --partition=short",
        "#SBATCH --time=0:10:00",
        "#SBATCH --mem=2G",
        f"#SBATCH --output={out}/slurm-%j.out",
        f"export BYZEMU_RUN_DIR={out}",
    ]:
        assert line in script.splitlines(), line
    assert script.rstrip().endswith('slurm-job "$BYZEMU_RUN_DIR"')
    # the folder holds what the script needs, for a user to inspect and sbatch by hand
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "job.sbatch"]
    assert (out / "job.sbatch").read_text() == script
    assert config_mod.load(out / "config.toml").nodes == config_mod.load(files / "base.toml").nodes
    assert res.stderr.splitlines()[-1] == (
        f"dry run: wrote {out}/config.toml and {out}/job.sbatch; nothing submitted "
        f"(submit by hand: sbatch {out}/job.sbatch)"
    )


def test_sweep_dry_run_is_one_array_task_per_run_at_most_jobs_at_once(files: Path, tmp_path: Path) -> None:
    res = _cli(
        "sweep", str(files / "grid.toml"), "--on", "slurm", "--jobs", "2", "--dry-run", "--out", str(tmp_path / "sw")
    )

    assert res.exit_code == 0, res.output
    assert "#SBATCH --array=0-1%2" in res.output.splitlines()
    listed = res.output.split("runs=(\n", 1)[1].split(")", 1)[0].split()
    assert listed == ["defense.name=cdl/rep0", "defense.name=norm_clip/rep0"]
    out = tmp_path / "sw"
    scripts = list((out / "slurm").glob("sweep-*.sbatch"))
    assert len(scripts) == 1 and scripts[0].read_text() == res.stdout
    assert all((out / rel / "config.toml").is_file() for rel in listed)
    assert f"submit by hand: sbatch {scripts[0]}" in res.stderr


def test_missing_data_root_is_refused_at_submit_time(files: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"

    res = CliRunner().invoke(
        main,
        [
            "launch",
            str(files / "base.toml"),
            "--on",
            "slurm",
            "--dry-run",
            "--set",
            "data.dataset=mnist",
            "--set",
            f"data.root={missing}",
        ],
    )

    assert res.exit_code == 2
    assert res.output.startswith(f"error: data.root {missing}: no such folder on this host"), res.output


def test_host_that_cannot_read_the_data_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from launch.cluster.slurm_job import run_host

    missing = tmp_path / "no-such-data"
    (tmp_path / "config.toml").write_text(
        CONFIG.replace('dataset = "synthetic"', 'dataset = "mnist"').replace('root = ""', f'root = "{missing}"')
    )
    for key, value in {
        "BYZEMU_RUN_DIR": str(tmp_path),
        "BYZEMU_COORDINATOR": "tcp://127.0.0.1:1",
        "BYZEMU_PEERS_PER_HOST": "2 2",
        "SLURM_NODEID": "1",
        "SLURMD_NODENAME": "n2",
    }.items():
        monkeypatch.setenv(key, value)
    lines: list[str] = []

    code = run_host(echo=lines.append)

    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(
        f"error: host n2: cannot read the mnist data at data.root {missing}"
    ), lines


def test_status_shows_rounds_done_and_the_last_evaluated_accuracy(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(CONFIG)
    evaluated = {
        "round": 1,
        "elapsed_s": 0.5,
        "failed": [],
        "honest": {"test_accuracy": {"mean": 0.5, "worst": 0.25}},
        "peers": {},
    }
    later = {"round": 2, "elapsed_s": 1.25, "failed": [3], "honest": {}, "peers": {}}
    (tmp_path / "rounds.jsonl").write_text(json.dumps(evaluated) + "\n" + json.dumps(later) + "\n")

    res = _cli("status", str(tmp_path))

    first = res.stdout.splitlines()[0]
    assert first.startswith(
        f"slurm-test: running     | round    2/{ROUNDS} | honest acc 0.5000 (worst 0.2500) at round 1 | "
        "elapsed 1.2 s | failed peers [3] | last round"
    ), first


# ----------------------------------------------------------------------------- the cluster


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    try:
        cluster = start(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        stop(cluster)


def _job_state(cluster: Slurm, job: str) -> str:
    line = cluster.run("scontrol", "-o", "show", "job", job).split()
    return next((x.split("=", 1)[1] for x in line if x.startswith("JobState=")), "UNKNOWN")


def _wait_jobs(cluster: Slurm, job: str, run_dirs: list[Path], on_first: Callable[[], object] | None = None) -> None:
    """Until Slurm has no queued or running task of ``job`` left (squeue); ``on_first`` is
    called once, as soon as the first run has its summary.json."""
    called = [on_first is None]

    def done() -> bool:
        if not called[0] and any((d / "summary.json").is_file() for d in run_dirs):
            called[0] = True
            assert on_first is not None
            on_first()
        return cluster.run("squeue", "-h", "-r", "-j", job, "-o", "%i").strip() == ""

    def fail(why: str) -> None:
        logs = "\n".join(
            f"----- {p}\n{p.read_text(errors='replace')[-3000:]}" for d in run_dirs for p in d.glob("slurm-*.out")
        )
        pytest.fail(f"{why}\n{logs}\n{cluster.logs()}")

    try:
        wait_until(done, timeout=JOB_TIMEOUT, what=f"the end of Slurm job {job}", interval=0.2)
    except TimeoutError as exc:
        fail(str(exc))


def _assert_same_results(run: Path, local: Path) -> None:
    a, b = read_rounds(run), read_rounds(local)
    assert [r["round"] for r in a] == [r["round"] for r in b] == list(range(1, ROUNDS + 1)), run
    for ra, rb in zip(a, b):
        for node in map(str, range(NODES)):
            pa, pb = ra["peers"][node], rb["peers"][node]
            assert pa["status"] == pb["status"] == "ok", (run, ra["round"], node, pa)
            assert pa["role"] == pb["role"]
            assert pa["metrics"] == pb["metrics"], (run, ra["round"], node)  # loss, accuracy, model digest
    assert "digest" in a[-1]["peers"]["0"]["metrics"]


@dataclass
class Submitted:
    run: Path
    run_job: str
    sweep: Path
    sweep_job: str
    local: Path  #: the same sweep's runs made in this process (run_reference): the results to equal
    early_report: list[Result] = field(default_factory=list)

    @property
    def sweep_runs(self) -> list[Path]:
        return [self.sweep / f"defense.name={d}/rep0" for d in ("cdl", "norm_clip")]


@pytest.fixture(scope="module")
def submitted(slurm: Slurm, files: Path, tmp_path_factory: pytest.TempPathFactory) -> Submitted:
    """One run over both nodes and the 2-run sweep as a job array (one node per run, at
    most 2 at once), submitted together; the reference runs are made while they are queued."""
    d = tmp_path_factory.mktemp("submitted")
    run, sweep = d / "run", d / "sweep"
    res = _cli("launch", str(files / "base.toml"), "--on", "slurm", "--nodes", "2", "--out", str(run), env=slurm.env)
    assert res.exit_code == 0, res.output
    run_job = res.stdout.split("submitted Slurm job ", 1)[1].split(":", 1)[0]
    res = _cli("sweep", str(files / "grid.toml"), "--on", "slurm", "--jobs", "2", "--out", str(sweep), env=slurm.env)
    assert res.exit_code == 0, res.output
    sweep_job = res.stdout.split("submitted Slurm job array ", 1)[1].split(":", 1)[0]
    local = d / "local"
    for cell in load_sweep(files / "grid.toml").runs:
        run_reference(cell.cfg, local / cell.rel_dir)
    return Submitted(run, run_job, sweep, sweep_job, local)


@pytest.mark.cluster
def test_run_across_two_slurm_nodes_equals_local_launch(slurm: Slurm, submitted: Submitted) -> None:
    out, job = submitted.run, submitted.run_job

    _wait_jobs(slurm, job, [out])

    log = (out / f"slurm-{job}.out").read_text()
    assert _job_state(slurm, job) == "COMPLETED", log
    assert "host n1: 2 peer(s) started" in log and "host n2: 2 peer(s) started" in log, log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["curve"] is True and summary["mode"] == "slurm" and not summary["failed_peers"], summary
    _assert_same_results(out, submitted.local / SAME_AS)
    status = _cli("status", str(out), env=slurm.env)
    assert status.stdout.startswith(f"slurm-test: finished    | round    {ROUNDS}/{ROUNDS} | honest acc"), status.output


@pytest.mark.cluster
def test_sweep_as_job_array_equals_local_sweep(slurm: Slurm, submitted: Submitted) -> None:
    out, runs = submitted.sweep, submitted.sweep_runs

    _wait_jobs(
        slurm, submitted.sweep_job, runs, on_first=lambda: submitted.early_report.append(_cli("report", str(out)))
    )

    early = submitted.early_report
    assert early and early[0].exit_code == 0, early  # the report works while the folder fills
    for run in runs:
        assert (run / "summary.json").is_file(), (run, [p.read_text()[-2000:] for p in run.glob("slurm-*.out")])
        _assert_same_results(run, submitted.local / run.relative_to(out))
    status = _cli("status", str(out), env=slurm.env)
    assert status.stdout.splitlines()[-1] == "2 runs: 2 finished", status.output


@pytest.mark.cluster
def test_resubmitted_sweep_skips_finished_runs(slurm: Slurm, submitted: Submitted, files: Path) -> None:
    out, runs = submitted.sweep, submitted.sweep_runs
    _wait_jobs(slurm, submitted.sweep_job, runs)
    args = ["sweep", str(files / "grid.toml"), "--on", "slurm", "--out", str(out)]

    again = _cli(*args, env=slurm.env)
    (runs[1] / "summary.json").unlink()
    resumed = _cli(*args, "--dry-run", env=slurm.env)

    assert again.stdout.startswith("nothing to submit: all 2 runs are done"), again.output
    assert "#SBATCH --array=0-0" in resumed.stdout.splitlines()
    assert resumed.stdout.split("runs=(\n", 1)[1].split(")", 1)[0].split() == ["defense.name=norm_clip/rep0"]
