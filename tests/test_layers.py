"""Layers import downward only: protocol < peer < coordinator < launch; and three more
rules of the house that a reader of the tree relies on.

Every import statement of every module of the four packages is read with ``ast``,
including imports inside functions and under ``TYPE_CHECKING`` (a lazy import runs up the
layers just the same). The benchmarks and tests sit above all four layers and may import
any of them, but no package may import them. On the same reading: no two modules import
each other, directly or through others (no import cycle); no module but
``protocol/rundir.py`` spells a run-folder file name (``rounds.jsonl``, ``summary.json``,
...); and no private name (one leading underscore) is imported from another module.
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


# ---------------------------------------------------------------------------- import cycles


def import_graph(sources: dict[Path, str]) -> dict[str, set[str]]:
    """Module -> the modules of ``sources`` (path -> text) it imports, any import at any
    depth (TYPE_CHECKING blocks and function bodies too). ``from pkg import name`` counts
    as importing ``pkg.name`` when that is a module, else ``pkg``; a package's
    ``__init__`` is its name."""
    modules = {module_name(p) for p in sources}
    graph: dict[str, set[str]] = {}
    for path, source in sources.items():
        name = module_name(path)
        tree = ast.parse(source, filename=str(path))
        targets: set[str] = set()
        for (_, target), node in zip(imported_modules(source, path), _import_nodes(tree)):
            names = [target]
            if isinstance(node, ast.ImportFrom):
                names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            targets.update(n for n in names if n in modules and n != name)
        graph[name] = targets
    return graph


def _import_nodes(tree: ast.AST) -> list[ast.AST]:
    """The import nodes of ``tree`` in the order :func:`imported_modules` lists them
    (one entry per alias of an ``import a, b``)."""
    out: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(node for _ in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append(node)
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of ``graph`` with more than one module (each an
    import cycle), sorted; Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)


def test_no_import_cycles() -> None:
    # Arrange
    graph = import_graph({p: p.read_text() for p in package_modules()})

    # Act
    cycles = find_cycles(graph)

    # Assert
    assert cycles == []


def test_cycle_finder_sees_a_cycle_through_three_modules_and_ignores_a_chain() -> None:
    # Arrange: a -> b -> c -> a is a cycle; d -> a and c -> e are not part of it
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "e"}, "d": {"a"}, "e": set()}

    # Act
    cycles = find_cycles(graph)

    # Assert
    assert cycles == [["a", "b", "c"]]


def test_import_graph_sees_type_checking_and_function_level_imports() -> None:
    # Arrange: the shape plots.py and report.py once had: a TYPE_CHECKING import one way,
    # a lazy import inside a function the other
    pkg = ROOT / "launch" / "probe"
    sources = {
        pkg / "plots.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from launch.probe.report import Cell\n",
        pkg / "report.py": "def write():\n    from launch.probe import plots\n    return plots\n",
    }

    # Act
    graph = import_graph(sources)

    # Assert
    assert graph == {"launch.probe.plots": {"launch.probe.report"}, "launch.probe.report": {"launch.probe.plots"}}
    assert find_cycles(graph) == [["launch.probe.plots", "launch.probe.report"]]


# ---------------------------------------------------------------------------- run folder names


def spelled_file_names(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every string literal in ``source`` (docstrings aside) that spells
    a run-folder file name of :mod:`protocol.rundir` (exactly, or inside a longer text)."""
    from protocol.rundir import CHECKPOINTS, FILE_NAMES

    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            # "checkpoints" is also an English word: only the bare folder name counts
            if text == CHECKPOINTS or any(n in text for n in FILE_NAMES if n != CHECKPOINTS):
                found.append((node.lineno, text))
    return found


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_rundir_spells_run_folder_file_names(path: Path) -> None:
    if path == ROOT / "protocol" / "rundir.py":
        return
    assert spelled_file_names(path.read_text()) == []


def test_file_name_finder_sees_literals_and_skips_docstrings() -> None:
    # Arrange
    source = (
        '"""Writes summary.json."""\nPATH = "summary.json"\n'
        'MSG = f"see {d}/rounds.jsonl now"\nWORD = "two checkpoints"\n'
    )

    # Act
    found = spelled_file_names(source)

    # Assert
    assert found == [(2, "summary.json"), (3, "/rounds.jsonl now")]


# ---------------------------------------------------------------------------- private names


def private_imports(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every private name (one leading underscore) that ``source``
    takes from another module of the packages: ``from mod import _name`` or ``mod._name``
    on an imported module."""
    tree = ast.parse(source, filename=str(path))
    modules: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LAYERS:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in LAYERS)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.value.id[:1].islower()
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(found)


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported_from_another_module(path: Path) -> None:
    assert private_imports(path.read_text(), path) == []


def test_private_import_finder_sees_both_spellings() -> None:
    # Arrange
    source = "from launch.sweeps import runner\nfrom protocol.config import _host_of\nrunner._drain(q)\n"

    # Act
    found = private_imports(source, ROOT / "launch" / "probe.py")

    # Assert
    assert found == [(2, "protocol.config._host_of"), (3, "runner._drain")]
