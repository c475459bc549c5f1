"""``byzemu launch --resume RUN_DIR``: the checks made before anything starts (kept free
of torch imports, so that a bad folder is reported at once)."""

from __future__ import annotations

from pathlib import Path

from coordinator.results import ResumeError, ResumePoint, resume_point
from protocol import config as config_mod
from protocol.config import RunConfig
from protocol.rundir import CONFIG_TOML, ROUNDS, RunDir


def load_resume(
    run_dir: str | Path, overrides: tuple[str, ...] = (), config: str | None = None
) -> tuple[RunConfig, ResumePoint]:
    """The config of the results folder ``run_dir`` and the checkpoint to go on from, for
    ``byzemu launch --resume``: ``overrides`` may change ``runtime.*`` fields only
    (deadlines, not results), and a ``config`` file, if given, must give the same
    results-relevant fields; ResumeError otherwise, or if no round has a complete
    checkpoint (:func:`coordinator.results.resume_point`)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ResumeError(f"--resume {run}: no such results folder")
    files = RunDir(run)
    if not files.config_toml.is_file() or not files.rounds.is_file():
        raise ResumeError(f"--resume {run}: not a byzemu results folder (no {CONFIG_TOML} or {ROUNDS})")
    bad = [o for o in overrides if not o.strip().startswith("runtime.")]
    if bad:
        raise ResumeError(f"--set {bad[0]}: with --resume only runtime.* fields may change")
    cfg = config_mod.load(files.config_toml, overrides)
    if config is not None:
        given = config_mod.load(config)
        if config_mod.config_fingerprint(given) != config_mod.config_fingerprint(cfg):
            raise ResumeError(
                f"--resume {run}: config mismatch: {config} differs from the run's {CONFIG_TOML} "
                f"in fields that change results (all but runtime.*)"
            )
    return cfg, resume_point(run, cfg)
