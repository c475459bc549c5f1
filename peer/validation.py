"""Hyperparameter checks shared by attacks and defenses.

Each check returns the value in its canonical type (``float`` or ``int``) or raises
``ValueError`` with a one-line message naming the parameter; the registry
(:mod:`peer.registry`) prefixes it with the config field. ``bool`` is never accepted
as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import overload


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number")
    return float(value)


def check_positive(name: str, value: float) -> float:
    """``value`` as a float if it is finite and > 0, else ValueError."""
    v = _number(name, value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}={value} must be a finite number > 0")
    return v


def check_nonnegative(name: str, value: float) -> float:
    """``value`` as a float if it is finite and >= 0, else ValueError."""
    v = _number(name, value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name}={value} must be a finite number >= 0")
    return v


def check_finite(name: str, value: float) -> float:
    """``value`` as a float if it is finite, else ValueError."""
    v = _number(name, value)
    if not math.isfinite(v):
        raise ValueError(f"{name}={value} must be a finite number")
    return v


def check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool, hi_open: bool) -> float:
    """``value`` as a float if it lies in the interval (brackets as given), else ValueError."""
    v = _number(name, value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}={value} must be in {interval}")
    return v


def check_int(name: str, value: object, *, minimum: int = 0) -> int:
    """``value`` as an int if it is an integer (or an integral float) >= ``minimum``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


@overload
def check_count(name: str, value: None, *, minimum: int = 0) -> None: ...
@overload
def check_count(name: str, value: int, *, minimum: int = 0) -> int: ...
@overload
def check_count(name: str, value: object, *, minimum: int = 0) -> int | None: ...
def check_count(name: str, value: object, *, minimum: int = 0) -> int | None:
    """:func:`check_int`, or None when ``value`` is None (an optional count that a rule
    derives when it is not given, e.g. Krum's f from the node's degree)."""
    return None if value is None else check_int(name, value, minimum=minimum)


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a boolean, else ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be true or false")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``, else ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; choose one of {', '.join(choices)}")
    return value
