"""Peer checkpoints: one file per (round, node) holding everything a node needs to go on
bit-identically (``NodeCore.state_dict``): model parameters, optimizer (momentum) state,
the batch sampler's RNG state and position, the defense's and the attack's state, the
round, and a fingerprint of the config that produced it.

Layout under a checkpoint folder (``RUN_DIR/checkpoints`` for ``byzemu launch``, the
folder given to ``byzemu peer --checkpoint-dir`` on other hosts)::

    round-000010/node-3.pt

Files are written atomically (temporary file, fsync, rename, fsync of the folder), so a
file that exists is complete. They are local files written and read by the peer itself;
nothing here ever goes over the wire, and the coordinator never sees them.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

from protocol.config import config_fingerprint

__all__ = ["FORMAT", "config_fingerprint", "load", "path_of", "prune", "remove_after", "round_dir", "save"]

#: version of the checkpoint file layout
FORMAT = 2  #: 2: the optimizer state is peer.training.SGD's momentum buffers


def round_dir(folder: str | Path, round_: int) -> Path:
    return Path(folder) / f"round-{round_:06d}"


def path_of(folder: str | Path, round_: int, node: int) -> Path:
    return round_dir(folder, round_) / f"node-{node}.pt"


def save(folder: str | Path, round_: int, node: int, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to its file under ``folder``; return the path."""
    path = path_of(folder, round_, node)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def load(folder: str | Path, round_: int, node: int) -> dict[str, Any]:
    """The state saved for (round, node); OSError if the file is missing, ValueError if it
    is not a checkpoint of that round and node."""
    path = path_of(folder, round_, node)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own file
    except OSError:
        raise
    except (RuntimeError, EOFError, ValueError, AttributeError, ImportError, pickle.UnpicklingError) as exc:
        # a truncated or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a byzemu checkpoint of format {FORMAT}")
    if state.get("round") != round_ or state.get("node") != node:
        raise ValueError(f"{path}: holds round {state.get('round')} of node {state.get('node')}")
    return state


def _round_folders(folder: str | Path) -> list[tuple[int, Path]]:
    """``(round, path)`` of every ``round-R`` folder under ``folder`` (none if it is absent)."""
    base = Path(folder)
    found = []
    for sub in base.glob("round-*") if base.is_dir() else []:
        try:
            found.append((int(sub.name.split("-", 1)[1]), sub))
        except ValueError:
            continue
    return found


def prune(folder: str | Path, node: int, *, before: int) -> None:
    """Delete this node's checkpoints of rounds before ``before`` (and round folders left
    empty); the coordinator says which round is the last complete checkpoint."""
    if before <= 0:
        return
    for r, sub in _round_folders(folder):
        if r >= before:
            continue
        (sub / f"node-{node}.pt").unlink(missing_ok=True)
        try:
            sub.rmdir()  # only once every node removed its file
        except OSError:
            pass


def remove_after(folder: str | Path, round_: int) -> None:
    """Delete every checkpoint of rounds after ``round_`` (a resumed run recomputes them)."""
    for r, sub in _round_folders(folder):
        if r > round_:
            shutil.rmtree(sub, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
