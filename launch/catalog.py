"""``byzemu list attacks|defenses|datasets|models``: what a config can name, read from the
registries themselves (so an attack or defense added with ``@ATTACKS.register`` /
``@DEFENSES.register`` shows up without touching this file)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("attacks", "defenses", "datasets", "models")


@dataclass
class Entry:
    """One name a config can use: the field it goes in, one line about it, its
    parameters (config ``params``) with their defaults."""

    name: str
    field: str
    summary: str
    params: dict[str, Any] = field(default_factory=dict)


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def _params(func: Callable[..., Any]) -> dict[str, Any]:
    """Keyword-only parameters of ``func`` -> default (``inspect.Parameter.empty`` when
    required)."""
    return {
        p.name: p.default
        for p in inspect.signature(func).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _registry_entries(registry: Any) -> list[Entry]:
    out = []
    for name in registry.names():
        cls = registry.get(name)
        out.append(Entry(name, registry.field, _first_line(cls), _params(cls.__init__)))
    return out


def entries(kind: str) -> list[Entry]:
    """The entries of ``kind`` (one of :data:`KINDS`), sorted by name."""
    if kind == "attacks":
        from peer.attacks import ATTACKS

        return _registry_entries(ATTACKS)
    if kind == "defenses":
        from peer.defenses import DEFENSES

        return _registry_entries(DEFENSES)
    if kind == "datasets":
        from peer import datasets

        return [
            Entry(name, "data.dataset",
                  f"{datasets.num_classes(name)} classes, images {'x'.join(map(str, datasets.image_shape(name)))}")
            for name in sorted(datasets.DATASETS)
        ]
    if kind == "models":
        from peer.models import MODELS

        return [Entry(name, "model.name", _first_line(MODELS[name])) for name in sorted(MODELS)]
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def render(kind: str) -> str:
    """The text ``byzemu list KIND`` prints."""
    lines = []
    for e in entries(kind):
        lines.append(f"{e.name}  ({e.field} = \"{e.name}\")")
        if e.summary:
            lines.append(f"    {e.summary}")
        if e.params:
            shown = ", ".join(
                f"{k} (required)" if v is inspect.Parameter.empty else f"{k}={v!r}" for k, v in e.params.items()
            )
            lines.append(f"    params: {shown}")
    return "\n".join(lines)
