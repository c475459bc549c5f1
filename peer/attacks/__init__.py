"""Byzantine attacks. Add one by writing a class that subclasses :class:`Attack`,
decorating it with ``@ATTACKS.register("short-name")`` in a module imported below, and a
test that checks its payload against values computed by hand."""

from peer.attacks import (  # noqa: F401  (registers)
    alie,
    alie_backdoor,
    backdoor,
    bit_flip,
    dba,
    gaussian,
    honest,
    ipm,
    krum_attack,
    label_flip,
    mhamdi,
    scaling,
    sign_flip,
)
from peer.attacks import inf, mimic  # noqa: F401  (registers; issue 15)
from peer.attacks import max as _max  # noqa: F401  (registers "max")
from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS


def build_attack(name: str, params: dict) -> Attack:
    """Instantiate the attack ``name`` with keyword parameters (RegistryError if bad)."""
    return ATTACKS.build(name, params)


__all__ = ["ATTACKS", "Attack", "AttackContext", "build_attack"]
