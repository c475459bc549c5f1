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
"""

from peer.defenses.base import ChunkContext, Defense, Kept, RobustDefense
from peer.defenses.registry import DEFENSES
from peer.registry import import_submodules

import_submodules(__name__, __path__)  # importing a module registers its defenses


def build_defense(name: str, params: dict) -> Defense:
    """Instantiate the defense ``name`` with keyword parameters (RegistryError if bad)."""
    return DEFENSES.build(name, params)


__all__ = ["DEFENSES", "ChunkContext", "Defense", "Kept", "RobustDefense", "build_defense"]
