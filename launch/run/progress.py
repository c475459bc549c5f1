"""The live progress line of a run: round, honest accuracy (marked ``at round N`` when it is
carried over from an earlier evaluation round), ASR when a backdoor-type attack runs,
elapsed time and an estimate of the time left."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def mean_worst(stat: dict[str, Any] | None) -> str | None:
    """``0.9712 (worst 0.9632)`` from a {mean, worst} statistic, None without one."""
    if not stat or stat.get("mean") is None:
        return None
    return f"{stat['mean']:.4f} (worst {stat['worst']:.4f})"


class Progress:
    """Prints one status line per round: rewritten in place on a terminal, else appended."""

    def __init__(self, rounds: int, *, stream: TextIO | None = None, label: str = "") -> None:
        self.rounds = rounds
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.label = label
        self.accuracy: str = "   -  "
        self.asr: str | None = None
        self.evaluated_at: int | None = None  # round of the accuracy shown (carried between evaluations)
        self.first: int | None = None  # first round seen (a resumed run starts later)
        self.first_elapsed = 0.0

    def __call__(self, record: dict[str, Any]) -> None:
        honest = record["honest"]
        round_, elapsed = record["round"], record["elapsed_s"]
        evaluated = mean_worst(honest.get("test_accuracy"))
        if evaluated is not None:
            self.accuracy, self.evaluated_at = evaluated, round_
        self.asr = mean_worst(honest.get("attack_success_rate")) or self.asr
        if self.first is None:
            self.first = round_
            self.first_elapsed = elapsed - record.get("round_s", 0.0)
        ran = round_ - self.first + 1
        left = (elapsed - self.first_elapsed) / ran * (self.rounds - round_)
        failed = f" | failed {record['failed']}" if record["failed"] else ""
        asr = f" | ASR {self.asr}" if self.asr else ""
        carried = f" at round {self.evaluated_at}" if self.evaluated_at not in (None, round_) else ""
        line = (
            f"{self.label}round {round_:>4}/{self.rounds} | honest acc {self.accuracy}{carried}{asr}"
            f" | elapsed {elapsed:7.1f}s | ETA {_clock(left)}{failed}"
        )
        if self.tty:
            end = "\n" if round_ == self.rounds else ""
            self.stream.write("\r\x1b[2K" + line + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0, int(round(seconds))), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
