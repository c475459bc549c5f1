"""What the parts of :mod:`launch.analysis.published` share: paths, column names, the
error type and the CSV reader."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from protocol.errors import UserError

#: the folder that holds pyproject.toml: table specs and results paths are relative to it
PROJECT_ROOT = Path(__file__).resolve().parents[3]

RUN_FIELDS = (
    "cell",
    "rep",
    "seed",
    "rounds",
    "rounds_completed",
    "acc_mean",
    "acc_std",
    "acc_worst",
    "asr_mean",
    "asr_worst",
    "loss_mean",
    "best_acc_mean",
    "best_round",
    "convergence_round",
    "failed_peers",
    "wall_s",
    "digest",
    "platform",
    "byz_cpu_round_s",
    "honest_cpu_round_s",
    "round_s_median",
    "round_s_min",
    "candidates_mean",
    "late_per_round",
    "acc_all_mean",
    "acc_all_worst",
)
#: config fields every runs.csv row carries (besides the sweep's axes), so that results of
#: several sweeps collected together can be told apart (e.g. one sweep per Byzantine ratio)
CONFIG_FIELDS = (
    "nodes",
    "data.dataset",
    "data.split",
    "model.name",
    "byzantine.count",
    "byzantine.fraction",
    "byzantine.attack",
    "byzantine.params",
    "defense.name",
    "defense.params",
    "chunks.count",
    "chunks.per_neighbor",
)
CURVE_FIELDS = ("cell", "rep", "round", "acc_mean", "acc_worst", "asr_mean", "asr_worst", "loss_mean")


class PublishError(UserError):
    """A results folder, spec file or docs page that cannot be collected or rendered."""


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise PublishError(f"{path}: cannot read ({exc.strerror}); run `byzemu publish collect` first") from None


def number(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if math.isfinite(value) else None
