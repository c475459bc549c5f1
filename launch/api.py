"""byzemu from Python: load a config (with overrides), validate it, run it (a real local
cluster, or in one process), and get the results as pandas DataFrames.

    from launch import api

    cfg = api.load_config("configs/quickstart.toml", {"rounds": 5, "byzantine.count": 3,
                                                      "byzantine.attack": "backdoor"})
    api.validate(cfg)                        # raises ConfigError (one line) if it cannot run
    run_dir = api.launch(cfg, "runs/mine")   # N peer processes + coordinator, as `byzemu launch`
    ref_dir = api.launch(cfg, "runs/mine-ref", in_process=True)   # as `byzemu reference`
    tables = api.results("runs")             # {"peer_rounds", "rounds", "runs"} DataFrames

Every error a user's input can cause is a subclass of :class:`protocol.config.ConfigError`
(or one of the errors in :func:`launch.cli.user_errors`) with a one-line message. A
runnable example: ``docs/examples/api_example.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.sweeps.naming import toml_value
from protocol import config as config_mod
from protocol.config import RunConfig

if TYPE_CHECKING:
    import pandas as pd

    from coordinator.plan import Plan
    from coordinator.results import ResumePoint


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None, *sets: str) -> RunConfig:
    """The config in ``path`` with ``overrides`` (dotted field -> Python value, e.g.
    ``{"train.lr": 0.1}``) and ``sets`` (``"key=value"`` strings as ``--set`` takes them)
    applied, in that order."""
    items = [f"{k}={toml_value(v)}" for k, v in (overrides or {}).items()] + list(sets)
    return config_mod.load(path, items)


def validate(cfg: RunConfig) -> Plan:
    """Check everything ``byzemu validate`` checks (topology, roles, data, model, defense,
    attack); return the plan (``plan.byzantine``, ``plan.assignment(i)``, ...)."""
    from coordinator.plan import build_plan

    return build_plan(cfg)


def launch(
    cfg: RunConfig,
    out: str | Path | None = None,
    *,
    in_process: bool = False,
    progress: bool = False,
    tensorboard: str | Path | None = None,
    resume: ResumePoint | None = None,
    check_capacity: bool = True,
    replay: str | Path | None = None,
) -> Path:
    """Run ``cfg``; return its results folder (default ``runs/NAME-TIMESTAMP``, with ``-2``,
    ``-3``, ... when another launch took that name in the same second).

    By default a real local cluster (one OS process per peer, as ``byzemu launch``); with
    ``in_process=True`` the in-process reference run (as ``byzemu reference``), which gives
    the same results bit for bit. ``progress`` prints the progress line; ``tensorboard``
    also logs each round there (:mod:`launch.run.tracking`). ``resume`` (from
    :func:`launch.run.resume.load_resume`, as ``byzemu launch --resume``) goes on with the
    killed run in ``out`` after its last complete checkpoint. Ctrl-C raises
    KeyboardInterrupt after writing ``interrupted.json``. A local cluster that does not
    fit this machine (memory, threads, open files, ports: :mod:`launch.run.capacity`) is
    refused with :class:`~launch.run.capacity.CapacityError` before anything is started,
    unless ``check_capacity=False`` (``byzemu launch --ignore-capacity``). ``byzemu
    launch`` and ``byzemu reference`` run through this function. ``replay`` (with
    ``in_process``): the results folder of a run whose delivery log the reference follows,
    reproducing that run bit for bit (``byzemu reference --replay``; ``cfg`` from
    :func:`launch.run.reference.replay_config`)."""
    from launch.net.session import check_support
    from launch.run.procs import prepare_forkserver

    if not in_process:
        check_support(cfg)  # a [network] this machine cannot apply is refused at once
        if check_capacity:
            from launch.run import gpus
            from launch.run.capacity import check

            check(cfg)
            gpus.check(cfg)  # GPU peers (train.device): visible devices and their memory
        prepare_forkserver(cfg)  # before torch is imported below: the two imports then run at once
    from launch.run.claim import claim_out_dir, release_out_dir
    from launch.run.local import default_out_dir, launch_local
    from launch.run.progress import Progress
    from launch.run.tracking import TensorBoardLogger, fan_out

    out_dir = Path(out) if out is not None else claim_out_dir(default_out_dir(cfg))
    tracker = TensorBoardLogger(log_dir=Path(tensorboard) / out_dir.name) if tensorboard else None
    try:
        if in_process:
            from launch.run.reference import run_reference
            from protocol.rundir import RunDir, read_deliveries

            log = read_deliveries(RunDir(replay).deliveries) if replay is not None else None
            run_reference(
                cfg, out_dir, progress=fan_out(Progress(cfg.rounds) if progress else None, tracker), replay=log
            )
        else:
            launch_local(cfg, out_dir, show_progress=progress, resume=resume, on_round=tracker)
    except Exception:
        if out is None:
            release_out_dir(out_dir)  # a run that failed before it began leaves no empty folder
        raise
    finally:
        if tracker is not None:
            tracker.close()
    return out_dir


def sweep(path: str | Path, out: str | Path, *sets: str, jobs: int | None = None) -> Path:
    """Run the sweep file ``path`` into ``out`` as ``byzemu sweep`` does (finished runs are
    skipped, unfinished ones go on); return ``out``."""
    from launch.sweeps.runner import default_jobs, run_sweep
    from launch.sweeps.sweepfile import load_sweep

    sw = load_sweep(path, sets)
    run_sweep(sw, out, jobs=jobs or default_jobs(sw))
    return Path(out)


def results(root: str | Path, *, unfinished: bool = False) -> dict[str, pd.DataFrame]:
    """The tidy tables of every run under ``root`` (:mod:`launch.analysis.tables`): ``peer_rounds``
    (run, round, peer), ``rounds`` (run, round) and ``runs`` (one per run). Needs pandas
    (``pip install -e ".[analysis]"``)."""
    from launch.analysis.tables import tables

    return tables(root, unfinished=unfinished)
