"""Shared fixtures (the generated data folders) and the order of the test files.

A test that starts real byzemu processes (the CLI, a coordinator, peers, a sweep, a local
cluster) carries the ``cluster`` marker: ``pytestmark = pytest.mark.cluster`` in a module
where every test does, ``@pytest.mark.cluster`` on the test otherwise."""

from __future__ import annotations

import os
import sys

import pytest

# pytest rewrites the asserts of every test module it imports and keeps the result in
# __pycache__ unless PYTHONDONTWRITEBYTECODE is set; where it is set, every worker of every
# run rewrote all of them again (~5 s of CPU each). The suite writes that cache whatever the
# variable says; the processes the tests start still follow it.
sys.dont_write_bytecode = False


@pytest.fixture(scope="session")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """dataset name -> a generated folder in the real format, for the datasets this
    machine lacks (CIFAR-10) or may lack (Fashion-MNIST); see tests/support/datagen.py."""
    from tests.support.datagen import write_cifar10, write_idx_dataset

    root = tmp_path_factory.mktemp("generated-data")
    write_cifar10(root / "cifar10")
    write_idx_dataset(root / "fashion")
    return {"cifar10": str(root / "cifar10"), "fashion_mnist": str(root / "fashion")}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, hand out the files in collection order (see below), not the
    files with the most tests first (xdist's default for ``--dist loadfile``); one torch
    thread where tests run (not in xdist's controller, which runs none: importing torch
    there, ~2 s of CPU, would delay the workers' start)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if _xdist_controller(config):
        return
    import torch

    # one torch thread, as in every byzemu process (the in-process reference sets the same):
    # the parallel workers and the clusters they start share the cores
    torch.set_num_threads(1)


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests to pytest-xdist workers instead of running them."""
    workers = getattr(config.option, "numprocesses", None)
    return not hasattr(config, "workerinput") and workers not in (None, 0, "0") and not config.option.collectonly


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the usable cores. The real-process tests spend part
    of their time waiting (a deadline, a process's start or exit), so a worker per core
    leaves cores idle: on 2 cores, 2 workers kept the machine 76 % busy and 3 workers 90 %
    (BENCHMARKS.md, *Test suite time*)."""
    return len(os.sched_getaffinity(0)) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the files with ``cluster`` tests first, each file's tests together and in their
    order: under ``pytest -n auto --dist loadfile`` (tests/README.md) the workers take
    the long, mostly waiting real-process files first and fill the gaps with the
    in-process ones, instead of ending on a cluster file that started last."""
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
