"""Rootless link conditions: the launcher becomes root of a user namespace of its own.

A shaped run (``[network]``) builds namespaces, veth links, tc qdiscs and iptables rules,
which need ``CAP_SYS_ADMIN`` and ``CAP_NET_ADMIN``. A user who is not root gets both,
over namespaces they own, from an unprivileged user namespace: ``byzemu launch`` (before
it imports torch or starts a thread) calls :func:`enter_if_needed`, which moves its own
process, keeping its pid, into new namespaces with ``unshare(2)`` through libc (Python
3.11 has no ``os.unshare``)::

    unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS)
    /proc/self/setgroups <- "deny";  uid_map <- "0 UID 1";  gid_map <- "0 GID 1"
    mount --make-rprivate /;  mount -t tmpfs tmpfs /run

The process is then uid 0 with every capability inside its user namespace (the calling
user outside: the files it writes belong to that user), in a network namespace with only
``lo`` and a ``/run`` of its own, where ``ip netns add`` keeps the run's namespaces. From
there the run is built exactly as for root (:mod:`launch.net.session`); every process it
starts inherits the namespaces. Nothing of the run exists in the host's network
namespace or its ``/run/netns``: when its last process is gone, the kernel frees its
namespaces, interfaces, qdiscs and iptables rules with it.

What a rootless run cannot do: reach any other host (the launcher's network is the run's
own), go over the user's process limit (``RLIMIT_NPROC`` counts the calling user), or
apply what the kernel refuses inside a user namespace (then refused, one ``error:``
line, by :func:`launch.net.shaper.check_kernel` with :func:`rootless_hint`).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from launch.net.namespaces import NetworkError
from protocol.config import RunConfig
from protocol.network_config import shaped

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000

#: where the kernel's sysctls are read
PROC_SYS = Path("/proc/sys")
#: sysctls that turn unprivileged user namespaces off: (name, the value that forbids)
_SWITCHES = (
    ("user.max_user_namespaces", "0"),
    ("kernel.unprivileged_userns_clone", "0"),  # Debian's
    ("kernel.apparmor_restrict_unprivileged_userns", "1"),  # Ubuntu's: no capabilities in the namespace
)
#: the value that allows them
_ALLOW = {"user.max_user_namespaces": "15000", "kernel.unprivileged_userns_clone": "1"}

_entered = False


def userns_refusal() -> str:
    """Why this kernel refuses an unprivileged user namespace, with the sysctl that allows
    it (``""`` where nothing forbids one)."""
    for name, forbids in _SWITCHES:
        try:
            value = (PROC_SYS / name.replace(".", "/")).read_text().strip()
        except OSError:
            continue  # not this kernel's switch
        if value == forbids:
            return f"{name} = {value} (allow them: sysctl -w {name}={_ALLOW.get(name, '0')})"
    return ""


def enter_if_needed(cfg: RunConfig) -> None:
    """Enter a user namespace when ``cfg`` shapes links and this process is not root;
    refuse (NetworkError, one line) where the kernel does not allow one."""
    if not shaped(cfg.network) or os.geteuid() == 0 or not os.path.exists("/proc/self/uid_map"):
        return  # nothing to shape, root already, or not Linux (session.preflight refuses that)
    refusal = userns_refusal()
    if refusal:
        raise NetworkError(
            "network: link conditions need root or an unprivileged user namespace, which this kernel refuses: "
            f"{refusal}, or run byzemu launch as root"
        )
    enter()


def enter() -> None:
    """Move this process into new user, network and mount namespaces where it is root
    (module docstring); NetworkError naming the step the kernel refused."""
    global _entered
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise NetworkError(
            f"network: a process enters a user namespace only while it has one thread (this one has {threads}): "
            "call launch.net.rootless.enter() before importing torch, or run as root"
        )
    uid, gid = os.geteuid(), os.getegid()
    libc = ctypes.CDLL(None, use_errno=True)
    _call(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    except OSError as exc:
        raise NetworkError(
            f"network: mapping uid {uid} to root of a user namespace failed: {exc.strerror}; run byzemu launch as root"
        ) from None
    _call(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")
    _call(libc.mount(b"tmpfs", b"/run", b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=755"), "mount -t tmpfs /run")
    _entered = True


def rootless_hint() -> str:
    """What a refusal adds in a rootless run: the kernel may allow root what it refuses here."""
    if not _entered:
        return ""
    return (
        " (this run is rootless, in a user namespace, where the kernel may refuse what it allows with "
        "CAP_NET_ADMIN in the initial user namespace: run byzemu launch as root)"
    )


def _call(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise NetworkError(
            f"network: rootless link conditions: {what} failed: {os.strerror(err)} (a container's seccomp or "
            "security policy may forbid user namespaces): run byzemu launch as root"
        )
