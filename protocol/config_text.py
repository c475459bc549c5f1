"""Text to config and back: typed building of the config dataclasses from parsed TOML,
``--set`` overrides, merging, and the resolved config rendered as TOML.

The schema itself is :mod:`protocol.config`; these functions take the dataclass to build
and raise :class:`~protocol.errors.ConfigError` with the dotted field in the message.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
import typing
from pathlib import Path
from typing import Any

from protocol.errors import ConfigError, UserError
from protocol.names import closest


def coerce(path: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return build(tp, value, path)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [coerce(f"{path}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")  # pragma: no cover - schema bug


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of the dataclass ``cls``, once per class: resolving the
    string annotations (``from __future__ import annotations``) compiles each of them, and
    a sweep builds its config classes hundreds of times."""
    return typing.get_type_hints(cls)


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            near = closest(key, names)
            hint = f" (did you mean {f'{prefix}.{near}' if prefix else near}?)" if near else ""
            raise ConfigError(f"{where}: unknown field{hint}; valid fields here are {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            where = f"{prefix}.{f.name}" if prefix else f.name
            kwargs[f.name] = coerce(where, hints[f.name], data[f.name])
    return cls(**kwargs)


def read_toml(path: Path, what: str = "", *, error: type[UserError] = ConfigError) -> dict[str, Any]:
    """The table of the TOML file ``path``; ``error`` (one line naming the file) if it cannot
    be read or is not valid TOML. ``what`` names the file's kind in the message."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read{' ' + what if what else ''} ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None


def extends_parent(
    path: Path, data: dict[str, Any], chain: tuple[Path, ...], what: str, *, error: type[UserError] = ConfigError
) -> Path | None:
    """Pop ``extends`` from the file's table ``data`` and return the file it names (relative
    to ``path``), or None without one; ``error`` when it is not a path, makes a loop through
    ``chain`` (the files already being read), or names no file. ``what`` names the kind."""
    if "extends" not in data:
        return None
    ref = data.pop("extends")
    if not isinstance(ref, str) or not ref:
        raise error(f"{path}: extends: expected the path of another {what}")
    parent = (path.resolve().parent / ref).resolve()
    if parent in chain or parent == path.resolve():
        raise error(f"{path}: extends={ref!r} makes a loop; remove one extends")
    if not parent.is_file():
        raise error(f"{path}: extends={ref!r}: no such file ({parent})")
    return parent


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``--set key=value`` as a TOML value, else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``key.sub=value`` override to the raw config dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.lr=0.1")
    key, _, text = assignment.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: empty field name in {key!r}")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {assignment!r}: {part} is not a table")
    node[parts[-1]] = parse_value(text.strip())


def merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Merge ``new`` into ``into`` table by table (a ``params`` table is updated key by key)."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "params":
            merge(into[key], value)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key].update(value)
        else:
            into[key] = value


def _toml_char(ch: str) -> str:
    """One character of a TOML basic string: escape quote, backslash and control chars."""
    if ch in '"\\':
        return "\\" + ch
    if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
        return f"\\u{ord(ch):04x}"
    return ch


def to_toml(data: dict[str, Any]) -> str:
    """Render a nested dict of scalars/lists/tables as TOML (for the resolved config)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + "".join(_toml_char(ch) for ch in v) + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"cannot render {v!r} as TOML")

    for key, value in data.items():
        if isinstance(value, dict) and key not in ("params",):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {scalar(value)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {scalar(value)}")
    return "\n".join(lines) + "\n"
