"""Link conditions without root: ``byzemu launch`` in a user namespace of its own.

The run test switches from the root test process to an unprivileged user (``nobody``)
with ``setpriv`` and launches a small shaped run as that user; it needs root (to switch),
``setpriv``, iproute2, a kernel that allows unprivileged user namespaces, netem or
iptables for the delay, and a Python interpreter of this version that any user may
execute (the test's own venv may live under a private home: then the test runs the
same site-packages through a venv of its own over that interpreter). Without any of
them it is skipped with that reason. The refusal where user namespaces are off runs in
process, with the sysctl read from a folder of the test's. docs/NETWORK.md, *Tests*.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.net import rootless, session
from launch.net.namespaces import PREFIX, NetworkError
from protocol import config as config_mod
from tests.support.harness import read_rounds
from tests.support.runs import network_config
from tests.support.waiting import running, wait_until

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
#: the unprivileged user the launch runs as (``nobody``)
NOBODY = 65534
DELAY_MS = 50.0

CONFIG = network_config("rootless", seed=5, rounds=3, network={"rate_mbit": 10.0, "delay_ms": DELAY_MS})


def _world_executable(path: Path) -> bool:
    """Whether any user may execute ``path`` (every folder above it searchable by others)."""
    real = path.resolve()
    if not real.is_file() or not real.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)


def _interpreter() -> Path | None:
    """A Python of this X.Y that an unprivileged user may execute."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(sys.executable), *(Path(d) / version for d in ("/usr/bin", "/usr/local/bin"))]
    return next((c.resolve() for c in candidates if _world_executable(c)), None)


def _requirements() -> str:
    if not sys.platform.startswith("linux"):
        return "user and network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "switching to an unprivileged user needs root"
    missing = [t for t in ("setpriv", "ip", "tc", "ss", "iptables-restore") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing"
    refusal = rootless.userns_refusal()
    if refusal:
        return f"this kernel refuses unprivileged user namespaces: {refusal}"
    if _interpreter() is None:
        return f"no python{sys.version_info.major}.{sys.version_info.minor} that any user may execute"
    return ""


_MISSING = _requirements()


@pytest.fixture
def unprivileged_dir() -> Iterator[Path]:
    """A folder of ``nobody``'s (HOME, TMPDIR, the config and the run) in /tmp."""
    base = Path(tempfile.mkdtemp(prefix="byzemu-rootless-", dir="/tmp"))  # not under root's private tmp
    os.chown(base, NOBODY, NOBODY)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _venv_for_others(where: Path, base: Path) -> Path:
    """A venv over ``base`` whose site-packages are this test's (the same packages and
    editable install); its python, what the launch runs as ``sys.executable``."""
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python").symlink_to(base)
    (where / "pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n")
    packages = where / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    packages.mkdir(parents=True)
    (packages / "byzemu_test.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in site.getsitepackages())
    )
    for path in [where, *where.rglob("*")]:
        if not path.is_symlink():  # chmod would follow it to the interpreter
            path.chmod(0o755 if path.is_dir() else 0o644)
    return where / "bin" / "python"


def _host_leftovers(pid: int) -> list[str]:
    """Namespaces and links of the launcher ``pid``'s run in the host's namespace."""
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]")
    prefix = f"{PREFIX}{pid}"
    return [s.split()[0] for s in spaces.splitlines() if s.startswith(f"{prefix}-")] + [
        e["ifname"] for e in links if e["ifname"] == f"{prefix}h"
    ]


def _user_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


def _user_ns_other_than(pid: int, ours: str | None) -> str | None:
    """``pid``'s user namespace once it is not ``ours`` (None before, or once it is gone)."""
    ns = _user_ns(pid)
    return ns if ns is not None and ns != ours else None


def _in_user_ns(ns: str) -> list[int]:
    """Pids of the processes in the user namespace ``ns`` (zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _user_ns(entry.name) == ns:
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(bool(_MISSING), reason=_MISSING)
def test_an_unprivileged_launch_shapes_its_links_in_a_user_namespace_and_leaves_nothing(
    unprivileged_dir: Path,
) -> None:
    # Arrange: 10 Mbit/s and 50 ms on every link; the launch runs as nobody
    interpreter = _interpreter()
    assert interpreter is not None
    python = _venv_for_others(unprivileged_dir / "venv", interpreter)
    cfg, out, log = unprivileged_dir / "net.toml", unprivileged_dir / "run", unprivileged_dir / "launch.log"
    cfg.write_text(CONFIG)
    cfg.chmod(0o644)
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": str(unprivileged_dir),
        "TMPDIR": str(unprivileged_dir),
    }
    setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    ours = _user_ns("self")

    # Act
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*setpriv, str(python), "-m", "launch.cli", "launch", str(cfg), "--out", str(out)],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # the launcher moves itself (same pid) into a user namespace before it imports torch
    theirs = wait_until(
        lambda: _user_ns_other_than(proc.pid, ours),
        timeout=120,
        what="the launcher in a user namespace of its own",
        alive=running(proc),
        details=lambda: log.read_text()[-3000:],
        interval=0.01,
    )
    wait_until(
        lambda: read_rounds(out),
        timeout=180,
        what="round 1 in rounds.jsonl",
        alive=running(proc),
        details=lambda: log.read_text()[-3000:],
    )
    leftovers_while_running = _host_leftovers(proc.pid)
    code = proc.wait(240)

    # Assert: it ran shaped, as nobody, and its network never showed in the host's namespace
    assert code == 0, log.read_text()[-3000:]
    assert leftovers_while_running == []
    rounds = read_rounds(out)
    assert [r["round"] for r in rounds] == [1, 2, 3]
    for r in rounds:
        assert r["round_s"] >= DELAY_MS / 1000, r["round_s"]  # a round holds a message crossing a link
        links = r["network"]["links"]
        assert sorted(links) == ["0>1", "0>2", "1>0", "1>2", "2>0", "2>1"]
        assert all(link["rtt_ms"] >= 2 * DELAY_MS for link in links.values()), links  # the delay, both ways
    assert {p.stat().st_uid for p in out.iterdir()} == {NOBODY}  # the run's files are the caller's
    # nothing of the run is left: no process in its user namespace (the kernel freed its
    # network namespaces, links, qdiscs and rules with it), nothing in the host's
    wait_until(
        lambda: _in_user_ns(theirs) == [] or None,
        timeout=60,
        what="every process of the run gone",
        details=lambda: f"left: {_in_user_ns(theirs)}",
        interval=0.1,
    )
    assert _host_leftovers(proc.pid) == []


def test_a_kernel_without_user_namespaces_refuses_an_unprivileged_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a launcher that is not root, on a kernel whose sysctl turns user namespaces off
    (tmp_path / "sys" / "user").mkdir(parents=True)
    (tmp_path / "sys" / "user" / "max_user_namespaces").write_text("0\n")
    monkeypatch.setattr(rootless, "PROC_SYS", tmp_path / "sys")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)

    # Act
    result = CliRunner().invoke(main, ["launch", str(cfg), "--out", str(tmp_path / "run")])

    # Assert: one line, naming the sysctl and how to allow it, before anything started
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert result.stderr.strip().splitlines() == [
        "error: network: link conditions need root or an unprivileged user namespace, which this kernel refuses: "
        "user.max_user_namespaces = 0 (allow them: sysctl -w user.max_user_namespaces=15000), "
        "or run byzemu launch as root"
    ]
    assert not (tmp_path / "run").exists()


def test_the_refusal_names_each_switch_that_turns_user_namespaces_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rootless, "PROC_SYS", tmp_path)
    assert rootless.userns_refusal() == ""  # no switch at all: nothing forbids
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "unprivileged_userns_clone").write_text("1\n")
    assert rootless.userns_refusal() == ""
    (tmp_path / "kernel" / "apparmor_restrict_unprivileged_userns").write_text("1\n")
    assert rootless.userns_refusal() == (
        "kernel.apparmor_restrict_unprivileged_userns = 1 "
        "(allow them: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"
    )
    (tmp_path / "kernel" / "unprivileged_userns_clone").write_text("0\n")
    assert rootless.userns_refusal() == (
        "kernel.unprivileged_userns_clone = 0 (allow them: sysctl -w kernel.unprivileged_userns_clone=1)"
    )


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("ip") is None,
    reason="the kernel check runs in a namespace of its own: Linux, root and iproute2's ip",
)
def test_a_rootless_run_names_the_missing_privilege_when_the_kernel_refuses_a_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a launcher inside its user namespace whose kernel refuses the netfilter rules
    def refuse(ns: str, *, needs: list[str], apply_with: str = "auto") -> str:
        raise NetworkError("network: network.delay_ms needs netem or netfilter: iptables-restore failed")

    monkeypatch.setattr(session, "check_kernel", refuse)
    monkeypatch.setattr(rootless, "_entered", True)
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)

    # Act
    with pytest.raises(NetworkError) as err:
        session.check_support(config_mod.load(cfg))

    # Assert: the kernel's refusal, then why root might pass: one line
    assert str(err.value) == (
        "network: network.delay_ms needs netem or netfilter: iptables-restore failed (this run is rootless, in a "
        "user namespace, where the kernel may refuse what it allows with CAP_NET_ADMIN in the initial user "
        "namespace: run byzemu launch as root)"
    )
