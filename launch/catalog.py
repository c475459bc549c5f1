"""``byzemu list attacks|defenses|datasets|models``: what a config can name, read from the
registries themselves (so an attack or defense added with ``@ATTACKS.register`` /
``@DEFENSES.register`` shows up without touching this file)."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

KINDS = ("attacks", "defenses", "datasets", "models")


@dataclass
class Entry:
    """One name a config can use: the field it goes in, one line about it, its
    parameters (config ``params``) with their defaults."""

    name: str
    field: str
    summary: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # the attribute `field` shadows the name


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _params(cls: type) -> dict[str, Any]:
    """The parameters a config may give ``cls`` -> default (``inspect.Parameter.empty``
    when required): the keyword-only ones the registry accepts, inherited ones included
    (a backdoor's trigger size and position live in its base class)."""
    from peer.registry import keyword_parameters

    return {name: p.default for name, p in keyword_parameters(cls).items()}


def _registry_entries(registry: Any) -> list[Entry]:
    classes = {name: registry.get(name) for name in registry.names()}
    return [Entry(name, registry.field, _first_line(cls), _params(cls)) for name, cls in classes.items()]


def entries(kind: str) -> list[Entry]:
    """The entries of ``kind`` (one of :data:`KINDS`), sorted by name."""
    if kind == "attacks":
        from peer.attacks import ATTACKS

        return _registry_entries(ATTACKS)
    if kind == "defenses":
        from peer.defenses import DEFENSES

        return _registry_entries(DEFENSES)
    if kind == "datasets":
        from peer import data

        return [
            Entry(
                name,
                "data.dataset",
                f"{data.num_classes(name)} classes, images {'x'.join(map(str, data.image_shape(name)))}",
            )
            for name in sorted(data.names())
        ]
    if kind == "models":
        from peer.models import MODELS

        return [Entry(name, "model.name", _first_line(MODELS[name])) for name in sorted(MODELS)]
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def render(kind: str) -> str:
    """The text ``byzemu list KIND`` prints."""
    lines = []
    for e in entries(kind):
        lines.append(f'{e.name}  ({e.field} = "{e.name}")')
        if e.summary:
            lines.append(f"    {e.summary}")
        if e.params:
            shown = ", ".join(
                f"{k} (required)" if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in e.params.items()
            )
            lines.append(f"    params: {shown}")
    return "\n".join(lines)
