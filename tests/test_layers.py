"""Layers import downward only: protocol < peer < coordinator < launch.

Every import statement of every module of the four packages is read with ``ast``,
including imports inside functions (a lazy import runs up the layers just the same).
The benchmarks and tests sit above all four layers and may import any of them, but no
package may import them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("protocol", "peer", "coordinator", "launch")
ABOVE_ALL = ("bench", "tests")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, the text of the module
    at ``path``, at any depth (function bodies too), relative imports resolved."""
    tree = ast.parse(source, filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations(path: Path) -> list[str]:
    own = module_name(path).split(".")[0]
    rank = LAYERS.index(own)
    bad = []
    for line, name in imported_modules(path.read_text(), path):
        top = name.split(".")[0]
        if top in LAYERS and LAYERS.index(top) > rank:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({own} < {top})")
        if top in ABOVE_ALL:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} (no package imports {top})")
    return bad


def package_modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def test_every_layer_has_modules() -> None:
    # Arrange / Act
    layers = {module_name(p).split(".")[0] for p in package_modules()}

    # Assert: the walk below really reads all four packages
    assert layers == set(LAYERS)


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_down_the_layers(path: Path) -> None:
    assert violations(path) == []


def test_checker_sees_a_function_level_import_up_the_layers() -> None:
    # Arrange: a peer module with a lazy import of the coordinator, as peer/reference.py had
    source = "def run():\n    from coordinator.plan import build_plan\n    return build_plan\n"

    # Act
    found = imported_modules(source, ROOT / "peer" / "probe.py")

    # Assert
    assert found == [(2, "coordinator.plan")]


def test_checker_resolves_relative_imports() -> None:
    # Arrange: inside coordinator/sub/mod.py, ``..plan`` is coordinator.plan, ``.`` is coordinator.sub
    source = "from ..plan import x\nfrom . import y\n"

    # Act
    found = imported_modules(source, ROOT / "coordinator" / "sub" / "mod.py")

    # Assert
    assert found == [(1, "coordinator.plan"), (2, "coordinator.sub")]
