"""Composition: ``defense.pre`` steps + one rule (``defense.name``).

Grammar (docs/DEFENSES.md, *Composition*)::

    [defense]
    pre = ["nnm"]                       # zero or more pre-aggregation steps, run in order
    pre_params = { nnm = { f = 1 } }    # optional keyword arguments, per step name
    name = "krum"                       # exactly one rule
    params = { f = 1 }

A chain is rejected, with one line naming the field and the fix, when a ``pre`` entry
is a rule or unknown, ``pre_params`` names a step not in ``pre``, the rule is a pre step,
or the rule cannot take the steps' output: a rule that reads the inputs as given (its
own chunk, its own update, losses) takes no pre step; a rule that treats row 0 as the
own chunk (``accepts_pre = "rows"``) takes only steps that keep rows (``nnm``, ``arc``),
not ``bucketing``; a rule that treats every row alike (``accepts_pre = "any"``) takes all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from peer.defenses.base import Defense, RobustDefense
from peer.defenses.registry import DEFENSES, PRE_STEPS
from peer.registry import RegistryError


def check_rule_name(name: str) -> None:
    """Reject a pre step named as the rule, with the fix."""
    if name in PRE_STEPS.names():
        raise RegistryError(
            f"defense.name={name!r} is a pre-aggregation step, not a rule; "
            f'write defense.pre = ["{name}"] and name a rule, e.g. defense.name = "median"'
        )


def attach_pre(name: str, defense: Defense, pre: Sequence[str], pre_params: Mapping[str, Any] | None) -> Defense:
    """Build the steps of ``pre`` and attach them to ``defense`` (RegistryError if the
    chain makes no sense)."""
    pre_params = dict(pre_params or {})
    for key in sorted(pre_params):
        if key not in pre:
            raise RegistryError(
                f"defense.pre_params.{key}: {key!r} is not in defense.pre = {list(pre)}; "
                "add it to defense.pre or remove its parameters"
            )
        if not isinstance(pre_params[key], Mapping):
            raise RegistryError(f"defense.pre_params.{key}: expected a table of parameters")
    if not pre:
        return defense
    steps = []
    for i, step in enumerate(pre):
        if step in DEFENSES.names():
            raise RegistryError(
                f"defense.pre[{i}]={step!r} is a rule, not a pre-aggregation step; "
                f"pre steps: {', '.join(PRE_STEPS.names())} (the rule goes in defense.name)"
            )
        steps.append(PRE_STEPS.build(step, pre_params.get(step, {})))
    takes = accepts_pre(name)
    pooled = [s.name for s in steps if not s.keeps_rows]
    if takes == "none" or (takes == "rows" and pooled):
        what = (
            "reads its inputs as given (own chunk, own update or losses)"
            if takes == "none"
            else f"treats row 0 as the own chunk, which {pooled[0]!r} pools away"
        )
        fits = [n for n in DEFENSES.names() if accepts_pre(n) == "any"]
        raise RegistryError(
            f"defense.name={name!r} cannot follow defense.pre = {list(pre)}: the rule {what}; "
            f"rules that take any pre step: {', '.join(fits)}"
        )
    assert isinstance(defense, RobustDefense)
    if pooled and not defense.own_candidate:
        raise RegistryError(
            f"defense.name={name!r} with own_candidate = false cannot follow defense.pre = {list(pre)}: "
            f"{pooled[0]!r} pools the rows, so none is the own chunk to leave out; "
            "drop the pooling step or set own_candidate = true"
        )
    defense.pre = tuple(steps)
    return defense


def accepts_pre(name: str) -> str:
    """``"none"``, ``"rows"`` or ``"any"``: which pre-step output rule ``name`` takes (its
    class's ``accepts_pre``; a defense that is not a :class:`RobustDefense` takes none)."""
    cls = DEFENSES.get(name)
    if not issubclass(cls, RobustDefense):
        return "none"
    return cls.accepts_pre
