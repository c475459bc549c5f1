"""``byzemu conformance -- CMD...``: test a peer implementation against byzemu (docs/PROTOCOL.md,
*Conformance kit*).

For each CURVE mode (off, on) it starts a coordinator in this process, runs the user's
peer command, waits until that peer has registered (so it is node 0), then starts N-1
byzemu peers on loopback. The run uses a small built-in config (or ``--config``): a
complete graph, so every byzemu peer is a neighbor of node 0, but for one round without
one of its edges, and with one byzemu peer away for a round
(``launch/tools/conformance_churn.py``). After round :data:`FAIL_AFTER` one byzemu peer
is killed, so the user's peer sees a ``peer_failed`` mid-round and must go on without it;
at the end it must exit on ``stop``.

The user's command learns the coordinator's address from the placeholder ``{coordinator}``
in its arguments or the environment variable ``BYZEMU_COORDINATOR``, and in CURVE runs
the coordinator's public key from ``{coordinator_key}`` / ``BYZEMU_COORDINATOR_KEY``
(empty when CURVE is off).

Every check prints one line ``PASS``/``FAIL`` with its name and what was seen; the exit
status is 1 if any check failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from coordinator.server import Coordinator
from launch.run.setup import start_coordinator
from launch.tools import conformance_churn as churn
from launch.tools.conformance_checks import FAIL_AFTER, FOREIGN, Check, round_checks
from protocol import config as config_mod
from protocol.config import RunConfig

STOP_GRACE_S = 15.0  #: how long the user's peer may take to exit after ``stop``

#: the default run: small, synthetic, every byzemu peer a neighbor of node 0
DEFAULT_CONFIG: dict[str, Any] = {
    "name": "conformance",
    "seed": 1,
    "nodes": 4,
    "rounds": 4,
    "topology": {"kind": "complete"},
    "data": {"dataset": "synthetic", "synthetic_size": 400},
    "model": {"name": "logreg"},
    "train": {"local_steps": 1},
    "chunks": {"count": 4, "per_neighbor": 2},
    "eval": {"every": 2},
    # a round that lasts chunk_timeout means someone waited for a failed neighbor's chunks
    # instead of heeding peer_failed (byzemu peers do not)
    # 1 MiB: the hostile neighbor's oversized message is one byte over it
    "runtime": {"register_timeout": 180.0, "round_timeout": 40.0, "chunk_timeout": 20.0, "max_message_bytes": 1 << 20},
}


class _WatchedCoordinator(Coordinator):
    """A coordinator that remembers why it marked peers failed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: dict[int, tuple[int, str]] = {}  # node -> (round, reason)

    def _mark_failed(self, node: int, round_: int, reason: str) -> None:
        self.failures.setdefault(node, (round_, reason))
        super()._mark_failed(node, round_, reason)

    #: called with a round's number just before its ``round_start`` goes out (the
    #: coordinator starts round t+1 before it records round t, so a kill "after round t"
    #: must happen here, not in the record callback, or the peer may still send round t+1)
    before_round: Callable[[int], None] | None = None

    def _start_round(self, number: int) -> Any:
        if self.before_round is not None:
            self.before_round(number)
        return super()._start_round(number)


def _command(template: list[str], address: str, key: str) -> list[str]:
    return [a.replace("{coordinator}", address).replace("{coordinator_key}", key) for a in template]


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def run_mode(command: list[str], cfg: RunConfig, out_dir: Path, *, register_last: bool = False) -> list[Check]:
    """One run of the user's peer with byzemu peers (one of them hostile,
    launch/tools/conformance_hostile.py); the checks, in order. ``register_last``: the
    byzemu peers register first and the user's peer is the last node, so byzemu peers may
    connect to its data socket before its own ``assign`` is in (with CURVE its ZAP handler
    must hold their handshakes)."""
    from launch.run.procs import start_peers, stop_peers
    from launch.tools.conformance_hostile import runtime_for  # imports torch: in the run only
    from peer.options import PeerOptions

    out_dir.mkdir(parents=True, exist_ok=True)
    foreign = cfg.nodes - 1 if register_last else FOREIGN
    killed = max(set(range(cfg.nodes)) - {foreign})
    events = churn.events(cfg, foreign=foreign, killed=killed)
    cfg = churn.with_events(cfg, out_dir, events, foreign=foreign)
    procs: list[Any] = []
    by_node: dict[int, Any] = {}

    def before_round(number: int) -> None:
        if number == FAIL_AFTER + 1 and killed in by_node:
            victim = by_node[killed]
            victim.kill()  # a byzemu neighbor of the user's peer dies before round FAIL_AFTER + 1 starts
            victim.join(30)

    coord = cast(
        _WatchedCoordinator,
        start_coordinator(
            cfg,
            out_dir,
            bind="tcp://127.0.0.1:*",
            mode="multiprocess",
            factory=_WatchedCoordinator,
        ),
    )
    results = coord.results
    coord.before_round = before_round
    key = coord.public_key or ""
    env = {**os.environ, "BYZEMU_COORDINATOR": coord.address, "BYZEMU_COORDINATOR_KEY": key}
    log = open(out_dir / "peer.log", "wb")
    user: subprocess.Popen[bytes] | None = None
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["summary"] = coord.run()
        except Exception as exc:  # reported as a failed check, not raised
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    def dead() -> set[int]:
        gone = {n for n, p in by_node.items() if p.exitcode is not None}
        return gone | ({foreign} if foreign in coord.peers and user is not None and user.poll() is not None else set())

    def start_user() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            _command(command, coord.address, key),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def start_byzemu() -> list[Any]:
        options = PeerOptions(
            coordinator=coord.address, coordinator_key=coord.public_key, max_message_bytes=cfg.runtime.max_message_bytes
        )
        return start_peers(cfg.nodes - 2, options) + start_peers(1, options, runtime=runtime_for(foreign))

    coord.dead_probe = dead
    thread = threading.Thread(target=drive, name="conformance-coordinator", daemon=True)
    thread.start()
    checks: list[Check] = []
    try:
        if register_last:
            procs = start_byzemu()
            _wait(lambda: len(coord.peers) == cfg.nodes - 1, cfg.runtime.register_timeout)
        user = start_user()
        running = user
        registered = (
            _wait(lambda: foreign in coord.peers or running.poll() is not None, cfg.runtime.register_timeout / 2)
            and foreign in coord.peers
        )
        if registered:
            info = coord.peers[foreign]
            checks.append(
                Check(
                    "registered", True, f"node {foreign}, pid {info.pid} on {info.host}, data socket {info.data_addr}"
                )
            )
        else:
            checks.append(
                Check(
                    "registered",
                    False,
                    f"no valid register from your peer as node {foreign} "
                    f"(exit status {user.poll()}; coordinator drops {dict(coord.drops)})",
                )
            )
        if not register_last:
            procs = start_byzemu()
        by_pid = {p.pid: p for p in procs}
        _wait(lambda: len(coord.peers) == cfg.nodes, cfg.runtime.register_timeout)
        by_node.update({n: by_pid[i.pid] for n, i in coord.peers.items() if i.pid in by_pid})
        budget = cfg.runtime.register_timeout * 2 + cfg.rounds * cfg.runtime.round_timeout + 30
        thread.join(budget)
        stopped = _wait(lambda: running.poll() is not None, STOP_GRACE_S)
        if "summary" not in outcome:
            checks.append(Check("run", False, f"the run did not finish: {outcome.get('error', 'still running')}"))
        elif registered:
            checks += round_checks(
                results, cfg, foreign=foreign, failures=coord.failures, curve=coord.curve, events=events
            )
            code = user.poll()
            checks.append(
                Check(
                    "stop",
                    stopped and code == 0,
                    f"exited with status {code} after stop"
                    if stopped
                    else f"still running {STOP_GRACE_S:g} s after stop",
                )
            )
    finally:
        if user is not None and user.poll() is None:
            os.killpg(user.pid, signal.SIGKILL)
            user.wait()
        log.close()
        stop_peers(procs, grace=3.0)
        thread.join(5)
        coord.close()
    return checks


def run_conformance(
    command: list[str],
    cfg: RunConfig,
    *,
    curve_modes: list[str],
    out_dir: Path,
    echo: Callable[[str], None],
    register_last: bool = False,
) -> int:
    """Every mode's checks, printed as they finish; 0 if all passed, else 1."""
    failed: list[str] = []
    echo(
        f"byzemu conformance: {' '.join(command)}  ({cfg.nodes} nodes, {cfg.rounds} rounds; your peer is node "
        f"{cfg.nodes - 1 if register_last else FOREIGN}; logs in {out_dir})"
    )
    for mode in curve_modes:
        data = cfg.to_dict()
        data["runtime"]["curve"] = mode
        mode_cfg = config_mod.from_dict(data)
        echo(f"[curve {mode}]")
        for check in run_mode(command, mode_cfg, out_dir / f"curve-{mode}", register_last=register_last):
            echo(check.line())
            if not check.ok:
                failed.append(f"curve {mode}: {check.name}")
    if failed:
        echo(f"FAILED {len(failed)} check(s): " + "; ".join(failed))
        return 1
    echo("all checks passed")
    return 0


def conformance_config(path: str | None, overrides: tuple[str, ...]) -> RunConfig:
    """``--config`` (or :data:`DEFAULT_CONFIG`) with ``--set`` overrides; ConfigError if the
    run cannot host the checks (a complete static graph of at least 4 nodes, at least 4
    rounds, no churn of its own: the kit adds its graph change and churn event)."""
    if path is not None:
        cfg = config_mod.load(path, overrides)
    else:
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in DEFAULT_CONFIG.items()}
        for item in overrides:
            config_mod.apply_override(data, item)
        cfg = config_mod.from_dict(data)
    if cfg.topology.kind != "complete" or cfg.nodes < churn.MIN_NODES or cfg.rounds < churn.MIN_ROUNDS:
        raise config_mod.ConfigError(
            f'conformance needs topology.kind = "complete", nodes >= {churn.MIN_NODES} and rounds >= '
            f"{churn.MIN_ROUNDS} (got {cfg.topology.kind}, {cfg.nodes}, {cfg.rounds})"
        )
    if cfg.topology.dynamic != "static" or cfg.churn != config_mod.ChurnConfig():
        raise config_mod.ConfigError(
            "conformance adds its own graph change and churn event: remove topology.dynamic and the [churn] section"
        )
    if cfg.byzantine.present:
        raise config_mod.ConfigError("conformance runs without Byzantine peers: remove the [byzantine] section")
    return cfg
