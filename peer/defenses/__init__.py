"""Aggregation rules run inside each peer, chunk index by chunk index.

Add a defense by writing one class in a new module of this package, decorating it with
``@DEFENSES.register("short-name")``, and one test: every module here is imported (and so
registers its rules) when the package is. A robust rule subclasses the template
:class:`RobustDefense` and implements only ``combine(x, ctx, kept)``: the template drops
payloads holding NaN/Inf (with their senders), keeps the own chunk when none is left, and
passes the float64 stack ``x`` (own chunk first, then the kept payloads), the context and
the kept inputs as given (:class:`Kept`: own, received, senders); it casts the returned
flat vector back to the own chunk's float32 shape. Subclass :class:`Defense` and write
``aggregate`` directly only for a rule that must see every payload as sent (``cdl``).

Each rule's docstring gives its formula, the work it comes from (authors, title, venue,
year, and the section or equation), its chunk-level adaptation and its fallback; the full
entries of every cited work are in docs/REFERENCES.md.
"""

from peer.defenses.base import ChunkContext, Defense, Kept, ModelProbe, PreStep, RobustDefense
from peer.defenses.evidence import RoundView, Verdict
from peer.defenses.registry import DEFENSES, PRE_STEPS
from peer.registry import import_submodules

import_submodules(__name__, __path__)  # importing a module registers its defenses and pre steps

from peer.defenses.compose import attach_pre, check_rule_name  # noqa: E402  (after the rules registered)


def build_defense(name: str, params: dict, pre: list[str] | None = None, pre_params: dict | None = None) -> Defense:
    """Instantiate the defense ``name`` with keyword parameters, preceded by the
    pre-aggregation steps ``pre`` (``pre_params``: their parameters by step name);
    RegistryError if bad (see :mod:`peer.defenses.compose`)."""
    check_rule_name(name)
    return attach_pre(name, DEFENSES.build(name, params), pre or [], pre_params)


__all__ = [
    "DEFENSES",
    "PRE_STEPS",
    "ChunkContext",
    "Defense",
    "Kept",
    "ModelProbe",
    "PreStep",
    "RobustDefense",
    "RoundView",
    "Verdict",
    "build_defense",
]
