"""``byzemu coordinator`` prints complete, shell-quoted ``byzemu peer ...`` lines a user
pastes on a peer host (a CURVE key holds shell metacharacters), one with the key and one
with ``--coordinator-key-file``; pasted into bash, they join the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.commands.coordinator import peer_command_hint
from tests.support.harness import Cluster, read_results, write_config
from tests.support.runs import small_config

#: a valid Z85 key (40 characters) full of characters bash treats specially
NASTY_KEY = "a&b$c<d>e(f)g*h?i]j[k{l}m!n#o%p^q/r@s=tu"


def _words_as_bash_reads(line: str) -> list[str]:
    """The arguments bash passes for ``line`` (``set --`` then one argument a line)."""
    done = subprocess.run(
        ["bash", "-c", f"set -- {line}; printf '%s\\n' \"$@\""], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_pasted_key_line_gives_bash_the_key_unchanged() -> None:
    # Arrange
    assert len(NASTY_KEY) == 40
    hint = peer_command_hint("tcp://10.0.0.1:5555", NASTY_KEY, Path("/runs/x y/coordinator.key"))

    # Act: the two indented command lines, as bash reads them
    lines = [line.strip() for line in hint.splitlines() if line.startswith("  ")]
    with_key, with_file = (_words_as_bash_reads(line) for line in lines)

    # Assert
    assert with_key == ["byzemu", "peer", "--coordinator", "tcp://10.0.0.1:5555", "--coordinator-key", NASTY_KEY]
    assert with_file == [
        "byzemu",
        "peer",
        "--coordinator",
        "tcp://10.0.0.1:5555",
        "--coordinator-key-file",
        "/runs/x y/coordinator.key",
    ]


def test_wildcard_bind_is_printed_as_an_address_a_peer_can_dial() -> None:
    hint = peer_command_hint("tcp://0.0.0.0:5555", None, None)

    assert "0.0.0.0" not in hint and hint.rstrip().endswith(":5555")


def test_key_file_that_holds_no_key_is_one_error_line(tmp_path: Path) -> None:
    key_file = tmp_path / "coordinator.key"
    key_file.write_text("not a key\n")

    result = CliRunner().invoke(
        main, ["peer", "--coordinator", "tcp://127.0.0.1:5555", "--coordinator-key-file", str(key_file)]
    )

    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --coordinator-key-file {key_file}: expected the 40-character Z85 public key the coordinator wrote\n"
    )


def test_key_and_key_file_together_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "peer",
            "--coordinator",
            "tcp://127.0.0.1:5555",
            "--coordinator-key",
            NASTY_KEY,
            "--coordinator-key-file",
            str(tmp_path / "k"),
        ],
    )

    assert result.exit_code == 2
    assert result.stderr == "error: --coordinator-key and --coordinator-key-file: give one of them\n"


@pytest.mark.cluster
def test_printed_key_file_line_pasted_into_bash_joins_a_curve_run(tmp_path: Path) -> None:
    # Arrange: a coordinator with CURVE on; its printed key-file line
    text = small_config("paste", seed=3, nodes=3, rounds=1, runtime={"curve": "on", "register_timeout": 120.0})
    with Cluster(write_config(tmp_path, text), tmp_path / "run", peers=3) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        pasted = [
            line.strip()
            for line in cluster.log("coordinator.log").splitlines()
            if line.startswith("  byzemu peer") and "--coordinator-key-file" in line
        ]
        assert len(pasted) == 1, cluster.logs()

        # Act: paste it into bash on "another host" (with this venv's byzemu first on PATH)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        log = open(tmp_path / "peers.log", "ab")
        cluster.peers = subprocess.Popen(
            ["bash", "-c", f"exec {pasted[0]} --count 3 --bind-host 127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        log.close()
        codes = cluster.wait(180)

    # Assert: the three peers joined over CURVE and the run finished
    assert codes == (0, 0), cluster.logs()
    summary = read_results(tmp_path / "run").summary
    assert summary is not None and summary["curve"] is True
