"""Shared fixtures: small configs written to temporary folders, the byzemu executable."""

from __future__ import annotations

import functools
import inspect
import re

import pytest
import torch

from tests.support import BYZEMU


@pytest.fixture
def byzemu_exe() -> str:
    return BYZEMU


@pytest.fixture(scope="session")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """dataset name -> a generated folder in the real format, for the datasets this
    machine lacks (CIFAR-10) or may lack (Fashion-MNIST); see tests/support/datagen.py."""
    from tests.support.datagen import write_cifar10, write_idx_dataset

    root = tmp_path_factory.mktemp("generated-data")
    write_cifar10(root / "cifar10")
    write_idx_dataset(root / "fashion")
    return {"cifar10": str(root / "cifar10"), "fashion_mnist": str(root / "fashion")}


#: what a test (or a fixture or module-level helper it calls) contains when it starts real
#: byzemu processes: the CLI, the multi-host harness, a local cluster or a sweep
_STARTS_PROCESSES = re.compile(
    r"\bBYZEMU\b|\bbyzemu_exe\b|\bCluster\(|\blaunch_local\(|\brun_sweep\(|\bstart_peers\(|\bapi\.launch\("
)
_NAME = re.compile(r"\b([A-Za-z_]\w*)\b")


@functools.cache
def _source(obj: object) -> str:
    """Source of a function (cached: a parametrized test and the fixtures many tests
    share are read once, not once per item; reading them took 4 of the 9 s of collection)."""
    try:
        return inspect.getsource(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""


def _starts_processes(item: pytest.Item) -> bool:
    func = getattr(item, "function", None)
    if func is None:
        return False
    fixtures = getattr(item, "_fixtureinfo", None)
    defs = fixtures.name2fixturedefs.values() if fixtures is not None else []
    return _calls_process_starter(
        func, tuple(d.func for ds in defs for d in ds if d.baseid), getattr(item, "module", None)
    )


@functools.cache
def _calls_process_starter(func: object, fixture_funcs: tuple[object, ...], module: object) -> bool:
    """Whether ``func``, the fixtures it uses or the module-level helpers they name
    (transitively) contain a process starter (:data:`_STARTS_PROCESSES`)."""
    sources = [_source(func), *(_source(f) for f in fixture_funcs)]
    helpers = (
        {
            name: obj
            for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__
        }
        if module is not None
        else {}
    )
    seen: set[str] = set()
    for text in sources:  # and the module-level helpers they name, transitively
        for name in set(_NAME.findall(text)) & set(helpers) - seen:
            seen.add(name)
            sources.append(_source(helpers[name]))
    return any(_STARTS_PROCESSES.search(text) for text in sources)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, hand out the files in collection order (see below), not the
    files with the most tests first (xdist's default for ``--dist loadfile``); one torch
    thread."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    # one torch thread, as in every byzemu process (the in-process reference sets the same):
    # the parallel workers and the clusters they start share the cores
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``cluster`` every test that starts real byzemu processes (peers, a coordinator,
    the CLI), so that ``pytest -m "not cluster"`` runs the fast in-process subset.

    Then put the files with such tests first, each file's tests together and in their
    order: under ``pytest -n auto --dist loadfile`` (README.md, *Tests*) the workers take
    the long, mostly waiting real-process files first and fill the gaps with the
    in-process ones, instead of ending on a cluster file that started last."""
    for item in items:
        if _starts_processes(item):
            item.add_marker(pytest.mark.cluster)
    first_index: dict[str, int] = {}
    with_processes: set[str] = set()
    for i, item in enumerate(items):
        path = item.nodeid.partition("::")[0]
        first_index.setdefault(path, i)
        if item.get_closest_marker("cluster") is not None:
            with_processes.add(path)

    def key(item: pytest.Item) -> tuple[bool, int]:
        path = item.nodeid.partition("::")[0]
        return path not in with_processes, first_index[path]

    items.sort(key=key)  # stable: a file's tests keep their order
