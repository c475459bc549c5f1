"""Registries of defenses: ``defense.name`` in a config picks a rule, ``defense.pre`` the
pre-aggregation steps run before it."""

from __future__ import annotations

from peer.defenses.base import Defense, PreStep
from peer.registry import Registry

DEFENSES: Registry[Defense] = Registry("defense", "defense.name", "defense.params")
PRE_STEPS: Registry[PreStep] = Registry("pre-aggregation step", "defense.pre", "defense.pre_params.{name}")
