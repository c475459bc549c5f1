"""Shared fixtures: small configs written to temporary folders, the byzemu executable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BYZEMU = str(Path(sys.executable).parent / "byzemu")


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def byzemu_exe() -> str:
    return BYZEMU


@pytest.fixture(scope="session")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """dataset name -> a generated folder in the real format, for the datasets this
    machine lacks (CIFAR-10) or may lack (Fashion-MNIST); see tests/datagen.py."""
    from tests.datagen import write_cifar10, write_idx_dataset

    root = tmp_path_factory.mktemp("generated-data")
    write_cifar10(root / "cifar10")
    write_idx_dataset(root / "fashion")
    return {"cifar10": str(root / "cifar10"), "fashion_mnist": str(root / "fashion")}
