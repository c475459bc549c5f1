"""protocol.provenance.git_state on a real git repository: what makes a checkout dirty; and
the CPU generation read from a cpuinfo text."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from protocol.provenance import cpu_id, git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "configs" / "sweeps").mkdir(parents=True)
    (tmp_path / "configs" / "sweeps" / "shipped.toml").write_text("repeats = 1\n")
    (tmp_path / ".gitignore").write_text("runs/\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return tmp_path


def test_a_clean_checkout_is_not_dirty_and_names_its_commit(repo: Path) -> None:
    commit, dirty = git_state(repo)
    assert commit == _git(repo, "rev-parse", "HEAD").strip()
    assert dirty is False


def test_an_edited_tracked_file_makes_it_dirty(repo: Path) -> None:
    (repo / "configs" / "sweeps" / "shipped.toml").write_text("repeats = 3\n")
    assert git_state(repo)[1] is True


def test_an_uncommitted_sweep_file_makes_it_dirty(repo: Path) -> None:
    # a table whose provenance names this commit could not be reproduced from it
    (repo / "configs" / "sweeps" / "new.toml").write_text("repeats = 1\n")
    assert git_state(repo)[1] is True


def test_untracked_files_outside_code_and_configs_and_ignored_ones_leave_it_clean(repo: Path) -> None:
    (repo / "notes.md").write_text("a note\n")
    (repo / "runs").mkdir()
    (repo / "runs" / "rounds.jsonl").write_text("{}\n")
    assert git_state(repo)[1] is False


def test_a_folder_that_is_not_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (None, None)


def test_cpu_id_names_the_first_processors_vendor_family_model_and_stepping() -> None:
    # Arrange: two processors' blocks as /proc/cpuinfo lists them (the second one differs)
    block = (
        "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: {f}\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC\nstepping\t: 1\n"
    )
    text = block.format(n=0, f=25) + "\n" + block.format(n=1, f=26)

    # Act / Assert
    assert cpu_id(text) == "AuthenticAMD family 25 model 17 stepping 1"
    assert cpu_id("processor\t: 0\nmodel name\t: some ARM core\n") is None
