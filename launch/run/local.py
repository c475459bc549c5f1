"""One-machine cluster: the coordinator in this process, N peers as forked OS processes.

Peers are started through a ``forkserver`` whose server process has preloaded torch
(``peer.preload``), so each peer is a real separate process (own pid, own sockets, own
memory) that starts in milliseconds. Each peer runs with one torch/OpenMP thread.

Churn slots (``coordinator/joins.py``: a new peer joining in round R >= 2, a returning
peer): their processes are not started with the others. When round R - 1 starts (the
coordinator's ``on_round_start``), the launcher starts one process for each slot due in
round R, with ``--node`` set to the slot, so it registers late, as a peer started by hand
would; the coordinator holds round R up to ``runtime.join_timeout`` for it.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.plan import Plan, build_plan
from coordinator.results import ResumeError, ResumePoint
from launch.net.session import Loopback, ShapedNetwork, run_network
from launch.run.procs import interrupt_once, start_peers, stop_peers
from launch.run.progress import Progress
from launch.run.setup import start_coordinator
from launch.run.tracking import fan_out
from peer import checkpoint, data
from peer.options import PeerOptions
from protocol.config import RunConfig
from protocol.errors import UserError
from protocol.rundir import RunDir

#: how often the liveness probe looks at the peer processes (seconds)
_PROBE_EVERY_S = 0.1


#: fields a run folder's name never shows (where or how it ran, not what it computed)
_UNNAMED = ("runtime.", "data.root", "name")


def default_out_dir(cfg: RunConfig, overrides: tuple[str, ...] | list[str] = ()) -> Path:
    """``runs/NAME[-WHAT-DIFFERS]-TIMESTAMP``: the values that ``--set`` changed (an attack
    or defense by its name, another field as ``field=value`` with its last dotted part),
    e.g. ``runs/quickstart-count=3-backdoor-norm_clip-20261130-101500``."""
    parts = []
    for item in overrides:
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip().strip("\"'")
        if not value or key.startswith(_UNNAMED):
            continue
        short = value if key in ("byzantine.attack", "defense.name") else f"{key.rsplit('.', 1)[-1]}={value}"
        parts.append(re.sub(r"[^A-Za-z0-9._=+-]+", "_", short).strip("_"))
    label = "-".join([cfg.name, *parts])[:80].rstrip("-_")
    return Path("runs") / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"


def launch_local(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    show_progress: bool = True,
    preload: bool = True,
    resume: ResumePoint | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` as a real multi-process cluster on this machine; return the summary.

    Peers checkpoint to ``out_dir/checkpoints`` (``runtime.checkpoint_every``). With
    ``resume`` (from :func:`launch.run.resume.load_resume`) the run in ``out_dir`` goes on
    after that checkpoint; the rounds after it are recomputed. ``on_round`` is called with
    each round's record (e.g. :class:`launch.run.tracking.TensorBoardLogger`).
    """
    plan = build_plan(cfg)  # every config error surfaces here, before any process starts
    out_dir = Path(out_dir)
    ckpt_dir = RunDir(out_dir).checkpoints
    point = resume
    if point is not None:
        missing = [
            str(checkpoint.path_of(ckpt_dir, point.round, i))
            for i in range(cfg.nodes)
            if not checkpoint.path_of(ckpt_dir, point.round, i).is_file()
        ]
        if missing:
            raise ResumeError(f"--resume {out_dir}: round {point.round}'s checkpoint files are missing: {missing[0]}")
    if data.spec(cfg.data.dataset).needs_root:
        data.prepare(cfg.data.dataset, Path(cfg.data.root))  # decompress once, not per peer
    if point is not None:
        checkpoint.remove_after(ckpt_dir, point.round)  # recomputed: must not be mistaken for new
    progress = fan_out(Progress(cfg.rounds) if show_progress else None, on_round)
    with run_network(cfg, list(plan.graph.edges)) as network:  # refuses here if links cannot be shaped
        return _run(cfg, out_dir, plan, point, progress, network, preload=preload)


def _run(
    cfg: RunConfig,
    out_dir: Path,
    plan: Plan,
    point: ResumePoint | None,
    progress: Callable[[dict[str, Any]], None] | None,
    network: Loopback | ShapedNetwork,
    *,
    preload: bool,
) -> dict[str, Any]:
    ckpt_dir = RunDir(out_dir).checkpoints
    coord = start_coordinator(
        cfg, out_dir, bind=network.control_bind, mode="multiprocess", progress=progress, resume=point, plan=plan
    )
    network.attach(coord)
    procs: list[Any] = []
    by_pid: dict[int, Any] = {}

    last: list[Any] = [0.0, set()]  # time of the last check, its answer

    def dead() -> set[int]:
        # the coordinator asks after every message it receives; checking N processes
        # each time would cost O(N^2) waitpid calls per round, so look at most every
        # _PROBE_EVERY_S seconds (a dead peer is noticed that much later)
        now = time.monotonic()
        if now - last[0] >= _PROBE_EVERY_S:
            last[0] = now
            last[1] = {
                node
                for node, info in coord.peers.items()
                if info.pid in by_pid and by_pid[info.pid].exitcode is not None
            }
        return last[1]

    coord.dead_probe = dead
    with interrupt_once():
        try:
            options = PeerOptions(
                coordinator=coord.address,
                bind_host=cfg.runtime.bind_host,
                coordinator_key=coord.public_key,
                checkpoint_dir=str(ckpt_dir.resolve()),
                max_message_bytes=cfg.runtime.max_message_bytes,  # their data sockets' limit, fixed before registering
            )
            first = coord.joins.first_ids()
            if coord.joins.slots and isinstance(network, ShapedNetwork):
                raise UserError(
                    "network: link conditions shape links between the processes started at once; churn.join "
                    "(round >= 2) and churn.leave start processes later: run them without [network] conditions"
                )
            each = network.peer_options(options, cfg.nodes)
            procs.extend(start_peers(len(first), each[: len(first)], preload=preload))
            by_pid.update((p.pid, p) for p in procs if p.pid is not None)  # started: all have one

            launched: set[int] = set()

            def start_late(round_: int) -> None:
                """Round ``round_`` starts: one process for each slot due in the next round."""
                for node, due in sorted(coord.joins.slots.items()):
                    if due == round_ + 1 and node not in coord.peers and node not in launched:
                        launched.add(node)
                        late = start_peers(1, [dataclasses.replace(options, node=node)], preload=preload)
                        procs.extend(late)
                        by_pid.update((p.pid, p) for p in late if p.pid is not None)

            coord.on_round_start = start_late
            return coord.run()
        finally:
            stop_peers(procs, grace=3.0)
            coord.close()
