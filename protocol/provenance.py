"""Where a result came from: the code, the software stack and the machine that produced it.

Every results folder holds ``provenance.json`` (written when the run starts, completed when
it ends) and every rendered table carries one provenance line made from it, so a number
can always be traced to a commit, a CPU and a torch build.

Fields of :func:`collect`:

* ``byzemu``: ``version`` (the installed package's), ``commit`` (``git rev-parse HEAD`` of
  the source tree the code was imported from; ``None`` outside a git checkout) and
  ``dirty`` (whether tracked files differed from that commit, or files that commit lacks
  lie untracked in the code or config folders, :data:`UNTRACKED_MATTERS`: a sweep file
  that was never committed makes the run dirty; ``None`` when unknown);
* ``python``, ``numpy``, ``torch``: versions; ``torch_build``: the BLAS and LAPACK
  libraries torch was built with, its oneDNN (MKL-DNN) version, whether OpenMP is on, and
  the CPU capability its kernels dispatch to (AVX2, AVX512, ...);
* ``machine``: CPU model name, ``cpu_id`` (vendor, family, model and stepping from
  /proc/cpuinfo: the CPU's generation, which the model name may not say; ``None`` off
  Linux), logical cores, architecture, OS, host name.

:func:`platform_key` reduces a provenance record to what decides bit-identity of floating
point results: the CPU model name, the kernels' CPU capability, the BLAS library and the torch
version. Two runs of the same config and seed with the same key give the same numbers bit
for bit; across keys they may differ in the last digits (docs/EXPERIMENTS.md,
*Determinism*, has the measured size).

Nothing here imports torch: its version comes from the installed package's metadata, and
its build flags are read only when the calling process has already imported it (every
launcher has, to plan the run), so collecting provenance costs no import.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

#: the folder holding the protocol, peer, coordinator and launch packages
SOURCE_ROOT = Path(__file__).resolve().parent.parent

#: the folders where an untracked file can change what a run does (code and shipped configs);
#: untracked files elsewhere (a ``runs/`` folder, notes) leave a checkout clean
UNTRACKED_MATTERS = ("peer", "protocol", "coordinator", "launch", "configs")


def now_iso() -> str:
    """The current time, UTC, to the second (ISO 8601)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path = SOURCE_ROOT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout at ``root``; (None, None) if it is not one.

    Dirty: a tracked file differs from the commit, or an untracked (not ignored) file lies
    under one of :data:`UNTRACKED_MATTERS`."""
    if not (root / ".git").exists():
        return None, None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        untracked = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--others", "--exclude-standard", "--", *UNTRACKED_MATTERS],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(changed.strip() or untracked.strip())


def first_cpu(cpuinfo: str | None = None) -> dict[str, str]:
    """The fields of the first processor's block of ``cpuinfo`` (read from /proc/cpuinfo
    when not given; empty where there is no such file)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block only
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; ``platform.processor()`` elsewhere)."""
    return first_cpu().get("model name") or platform.processor() or platform.machine()


def cpu_id(cpuinfo: str | None = None) -> str | None:
    """Vendor, family, model and stepping of the first CPU in ``cpuinfo`` (read from
    /proc/cpuinfo when not given), e.g. ``AuthenticAMD family 25 model 17 stepping 1``;
    None where there is no such file or it lacks the fields."""
    fields = first_cpu(cpuinfo)
    if "vendor_id" not in fields or "cpu family" not in fields:
        return None
    parts = [fields["vendor_id"], f"family {fields['cpu family']}"]
    parts += [f"{name} {fields[name]}" for name in ("model", "stepping") if name in fields]
    return " ".join(parts)


def torch_build() -> dict[str, Any] | None:
    """BLAS/LAPACK, oneDNN, OpenMP and CPU capability of the torch this process imported;
    None when torch is not imported here (see the module docstring)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    shown = torch.__config__.show()
    settings: dict[str, str] = {}
    onednn = None
    for line in shown.splitlines():
        line = line.strip().removeprefix("- ")
        if line.startswith("Build settings:"):
            for item in line.removeprefix("Build settings:").split(", "):
                key, _, value = item.strip().partition("=")
                settings[key] = value
        elif "MKL-DNN" in line or "oneDNN" in line:
            onednn = line.split("(Git Hash")[0].strip()
    return {
        "blas": settings.get("BLAS_INFO"),
        "lapack": settings.get("LAPACK_INFO"),
        "onednn": onednn,
        "openmp": settings.get("USE_OPENMP"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": settings.get("CUDA_VERSION") or None,
    }


def collect() -> dict[str, Any]:
    """The provenance of a result produced now, in this process (fields: module docstring)."""
    commit, dirty = git_state()
    return {
        "byzemu": {"version": _version("byzemu"), "commit": commit, "dirty": dirty},
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "torch_build": torch_build(),
        "machine": {
            "cpu": cpu_model(),
            "cpu_id": cpu_id(),
            "cores": os.cpu_count(),
            "arch": platform.machine(),
            "os": f"{platform.system()} {platform.release()}",
            "host": socket.gethostname(),
        },
    }


def platform_key(prov: dict[str, Any]) -> str:
    """What decides bit-identity: CPU model, kernel capability, BLAS, torch version."""
    build = prov.get("torch_build") or {}
    machine = prov.get("machine") or {}
    return ", ".join(
        str(x)
        for x in (machine.get("cpu"), build.get("cpu_capability"), build.get("blas"), f"torch {prov.get('torch')}")
    )


def short_line(prov: dict[str, Any]) -> str:
    """One line for under a table: commit (dirty marked), CPU, torch and its BLAS, date."""
    code = prov.get("byzemu") or {}
    commit = (code.get("commit") or "unknown")[:7] + ("+dirty" if code.get("dirty") else "")
    build = prov.get("torch_build") or {}
    machine = prov.get("machine") or {}
    blas = f", {build['blas']}/{build['cpu_capability']}" if build.get("blas") else ""
    cores = f" ({machine['cores']} cores)" if machine.get("cores") else ""
    date = (prov.get("finished") or prov.get("started") or "")[:10]
    return f"commit {commit}; {machine.get('cpu', 'unknown CPU')}{cores}; torch {prov.get('torch')}{blas}; {date}"
