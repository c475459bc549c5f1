"""Byzantine attacks. Add one by writing a class that subclasses :class:`Attack` in a new
module of this package, decorating it with ``@ATTACKS.register("short-name")``, and a test
that checks its payload against values computed by hand: every module here is imported
(and so registers its attacks) when the package is. Each attack's docstring cites the work
it comes from (authors, title, venue, year, section); docs/REFERENCES.md has the full
entries."""

from peer.attacks.base import Attack, AttackContext
from peer.attacks.registry import ATTACKS
from peer.registry import import_submodules

import_submodules(__name__, __path__)  # importing a module registers its attacks


def build_attack(name: str, params: dict) -> Attack:
    """Instantiate the attack ``name`` with keyword parameters (RegistryError if bad)."""
    return ATTACKS.build(name, params)


__all__ = ["ATTACKS", "Attack", "AttackContext", "build_attack"]
