"""Optional experiment tracking: each round's honest statistics as TensorBoard scalars
(``--tensorboard DIR``; the ``tensorboard`` package is the optional ``tracking`` extra:
``pip install -e ".[tracking]"``).

Scalars, with the round as the step: ``honest/<metric>_mean``, ``honest/<metric>_worst``
and ``honest/<metric>_std`` for test accuracy, test loss, train loss and (when a
backdoor-type attack runs) attack success rate, ``run/round_s``, ``run/elapsed_s`` and
``run/failed_peers``. One event file per run, under ``DIR/<run folder name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.config import ConfigError

RoundCallback = Callable[[dict[str, Any]], None]


class TensorBoardLogger:
    """A round callback (like :class:`launch.run.progress.Progress`) that writes scalars."""

    def __init__(self, *, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError('--tensorboard needs the tensorboard package: pip install -e ".[tracking]"') from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def __call__(self, record: dict[str, Any]) -> None:
        step = record["round"]
        for metric, stat in (record.get("honest") or {}).items():
            for key in ("mean", "worst", "std"):
                if stat and stat.get(key) is not None:
                    self.writer.add_scalar(f"honest/{metric}_{key}", stat[key], step)
        self.writer.add_scalar("run/round_s", record.get("round_s") or 0.0, step)
        self.writer.add_scalar("run/elapsed_s", record.get("elapsed_s") or 0.0, step)
        self.writer.add_scalar("run/failed_peers", len(record.get("failed") or []), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def fan_out(*callbacks: RoundCallback | None) -> RoundCallback | None:
    """One round callback that calls each given one in turn (None if none is given)."""
    live = [c for c in callbacks if c is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def call(record: dict[str, Any]) -> None:
        for c in live:
            c(record)

    return call
