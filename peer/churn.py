"""A peer's own part of churn (``[churn]``, coordinator/churn.py): its scheduled crash.

With ``churn.crash = [[node, round], ...]`` the coordinator sends the peer ``round_start``
of its crash round as usual; the peer then ends its process at once, without a
``round_done`` or any other word, as a crash would. The coordinator learns it as it
learns any crash (the launcher's process probe, or the round deadline) and marks the peer
failed. Everything else about churn (who is away, who joins) the coordinator tells the
peer in ``assign`` and ``round_start``.
"""

from __future__ import annotations

from protocol.config import RunConfig

__all__ = ["ScheduledCrash", "crash_round"]


class ScheduledCrash(Exception):
    """This peer's crash round started (churn.crash): the process ends without a word."""


def crash_round(cfg: RunConfig, node: int) -> int:
    """The round ``node`` crashes in (0: never)."""
    return next((round_ for n, round_ in cfg.churn.crash if n == node), 0)
