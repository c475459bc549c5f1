"""Registry of attacks: ``byzantine.attack`` in a config picks one of these."""

from __future__ import annotations

from peer.attacks.base import Attack
from peer.registry import Registry

ATTACKS: Registry[Attack] = Registry("attack", "byzantine.attack", "byzantine.params")
