"""A small name -> class registry with keyword-only construction and clear errors.

Defenses and attacks register under a short string that configs use. Construction
validates hyperparameters in the class constructor (``ValueError``); the registry turns
an unknown name or an unknown/missing keyword into one :class:`RegistryError` line.

A class's parameters are the keyword-only parameters of its ``__init__`` and, when that
``__init__`` passes ``**kwargs`` on, those of its bases' (:func:`keyword_parameters`):
a subclass declares only what it adds or whose default it changes, e.g.
``def __init__(self, *, parts=None, **kwargs)`` over the trigger attacks' shared base.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from protocol.errors import UserError
from protocol.names import unknown_name, unknown_parameter

T = TypeVar("T")


class RegistryError(UserError):
    """Unknown name or bad parameters for a registered class."""


class Registry(Generic[T]):
    def __init__(self, what: str, field: str, params_path: str | None = None) -> None:
        self.what = what  # e.g. "defense"
        self.field = field  # config field that names it, e.g. "defense.name"
        #: where a config gives its parameters, e.g. "defense.params"; "{name}" stands
        #: for the registered name ("defense.pre_params.{name}"); by default the params
        #: beside the name field ("x.name" -> "x.params")
        self.params_path = params_path or f"{field.rpartition('.')[0] or field}.params"
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise RuntimeError(f"{self.what} {name!r} registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise RegistryError(unknown_name(self.field, self.what, name, self.names())) from None

    def build(self, name: str, params: Mapping[str, Any]) -> T:
        cls = self.get(name)
        accepted = set(keyword_parameters(cls))
        unknown = sorted(set(params) - accepted)
        if unknown:
            path = self.params_path.format(name=name)
            raise RegistryError(unknown_parameter(path, self.what, name, unknown[0], accepted))
        try:
            return cls(**params)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{self.field}={name!r}: {exc}") from None


def keyword_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters ``cls(...)`` accepts: those of the first ``__init__``
    along the MRO and, while an ``__init__`` takes ``**kwargs`` (passing them on), those
    of the next one. A subclass's declaration of a name wins (its default)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        for p in params:
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                found.setdefault(p.name, p)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return found


def import_submodules(package: str, path: list[str]) -> None:
    """Import every module of ``package`` (its ``__path__``), in name order, so that each
    registers what it defines: a new attack, defense or dataset is one new file, with no
    list of imports to extend."""
    for module in sorted(m.name for m in pkgutil.iter_modules(path)):
        importlib.import_module(f"{package}.{module}")
