"""``byzemu conformance -- CMD...``: test a peer implementation against byzemu (docs/PROTOCOL.md,
*Conformance kit*).

For each CURVE mode (off, on) it starts a coordinator in this process, runs the user's
peer command, waits until that peer has registered (so it is node 0), then starts N-1
byzemu peers on loopback. The run uses a small built-in config (or ``--config``): a
complete graph, so every byzemu peer is a neighbor of node 0. After round
:data:`FAIL_AFTER` one byzemu peer is killed, so the user's peer sees a ``peer_failed``
mid-round and must go on without it; at the end it must exit on ``stop``.

The user's command learns the coordinator's address from the placeholder ``{coordinator}``
in its arguments or the environment variable ``BYZEMU_COORDINATOR``, and in CURVE runs
the coordinator's public key from ``{coordinator_key}`` / ``BYZEMU_COORDINATOR_KEY``
(empty when CURVE is off).

Every check prints one line ``PASS``/``FAIL`` with its name and what was seen; the exit
status is 1 if any check failed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from coordinator.results import ResultsWriter
from coordinator.server import Coordinator
from launch.run.setup import start_coordinator
from protocol import config as config_mod
from protocol.config import RunConfig

FOREIGN = 0  #: the user's peer registers first
FAIL_AFTER = 2  #: a byzemu neighbor of the user's peer is killed after this round, before the next starts
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
    "runtime": {"register_timeout": 180.0, "round_timeout": 40.0, "chunk_timeout": 20.0},
}

_HEX16 = re.compile(r"[0-9a-f]{16}")
_TRAFFIC_INTS = ("sent_msgs", "sent_bytes", "recv_msgs", "recv_bytes", "dropped")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


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


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def round_done_problems(entry: dict[str, Any], *, eval_round: bool) -> list[str]:
    """What is wrong with one recorded ``round_done`` (PROTOCOL.md, *round_done*); [] if nothing."""
    problems = []
    metrics, traffic, timing = entry.get("metrics", {}), entry.get("traffic", {}), entry.get("timing", {})
    for key in ("chunks_received", "senders"):
        if not _is_count(metrics.get(key)):
            problems.append(f"metrics.{key} must be an int >= 0, is {metrics.get(key)!r}")
    if not (isinstance(metrics.get("digest"), str) and _HEX16.fullmatch(metrics["digest"])):
        problems.append(f"metrics.digest must be 16 lowercase hex digits, is {metrics.get('digest')!r}")
    for key in ("train_loss", "test_accuracy", "test_loss", "attack_success_rate"):
        if key in metrics and not _is_num(metrics[key]):
            problems.append(f"metrics.{key} must be a number, is {metrics[key]!r}")
    for key in _TRAFFIC_INTS:
        if not _is_count(traffic.get(key)):
            problems.append(f"traffic.{key} must be an int >= 0, is {traffic.get(key)!r}")
    drops = traffic.get("drops_total")
    if not (isinstance(drops, dict) and all(_is_count(v) for v in drops.values())):
        problems.append(f"traffic.drops_total must map reasons to ints, is {drops!r}")
    if not all(_is_num(v) for v in timing.values()):
        problems.append("timing values must be numbers")
    del eval_round  # evaluation fields are optional (a peer that omits them is left out of the statistics)
    return problems


def _command(template: list[str], address: str, key: str) -> list[str]:
    return [a.replace("{coordinator}", address).replace("{coordinator_key}", key) for a in template]


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def run_mode(command: list[str], cfg: RunConfig, out_dir: Path) -> list[Check]:
    """One run of the user's peer with byzemu peers; the checks, in order."""
    from launch.run.procs import start_peers, stop_peers
    from peer.options import PeerOptions

    out_dir.mkdir(parents=True, exist_ok=True)
    procs: list[Any] = []
    by_node: dict[int, Any] = {}

    def before_round(number: int) -> None:
        if number == FAIL_AFTER + 1 and cfg.nodes - 1 in by_node:
            victim = by_node[cfg.nodes - 1]
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
    foreign = subprocess.Popen(
        _command(command, coord.address, key),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["summary"] = coord.run()
        except Exception as exc:  # reported as a failed check, not raised
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    def dead() -> set[int]:
        gone = {n for n, p in by_node.items() if p.exitcode is not None}
        return gone | ({FOREIGN} if FOREIGN in coord.peers and foreign.poll() is not None else set())

    coord.dead_probe = dead
    thread = threading.Thread(target=drive, name="conformance-coordinator", daemon=True)
    thread.start()
    checks: list[Check] = []
    try:
        registered = (
            _wait(lambda: FOREIGN in coord.peers or foreign.poll() is not None, cfg.runtime.register_timeout / 2)
            and FOREIGN in coord.peers
        )
        if registered:
            info = coord.peers[FOREIGN]
            checks.append(
                Check(
                    "registered", True, f"node {FOREIGN}, pid {info.pid} on {info.host}, data socket {info.data_addr}"
                )
            )
        else:
            checks.append(
                Check(
                    "registered",
                    False,
                    "no valid register from your peer "
                    f"(exit status {foreign.poll()}; coordinator drops {dict(coord.drops)})",
                )
            )
        procs = start_peers(
            cfg.nodes - 1,
            PeerOptions(
                coordinator=coord.address,
                coordinator_key=coord.public_key,
                max_message_bytes=cfg.runtime.max_message_bytes,
            ),
        )
        by_pid = {p.pid: p for p in procs}
        _wait(lambda: len(coord.peers) == cfg.nodes, cfg.runtime.register_timeout)
        by_node.update({n: by_pid[i.pid] for n, i in coord.peers.items() if i.pid in by_pid})
        budget = cfg.runtime.register_timeout * 2 + cfg.rounds * cfg.runtime.round_timeout + 30
        thread.join(budget)
        stopped = _wait(lambda: foreign.poll() is not None, STOP_GRACE_S)
        if "summary" not in outcome:
            checks.append(Check("run", False, f"the run did not finish: {outcome.get('error', 'still running')}"))
        elif registered:
            checks += _round_checks(coord, results, cfg)
            code = foreign.poll()
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
        if foreign.poll() is None:
            os.killpg(foreign.pid, signal.SIGKILL)
            foreign.wait()
        log.close()
        stop_peers(procs, grace=3.0)
        thread.join(5)
        coord.close()
    return checks


def _round_checks(coord: _WatchedCoordinator, results: ResultsWriter, cfg: RunConfig) -> list[Check]:
    checks = []
    fail = coord.failures.get(FOREIGN)
    if fail is not None and fail[0] == 0:
        checks.append(Check("ready", False, f"marked failed: {fail[1]}"))
    else:
        checks.append(Check("ready", True, "answered ready in time"))
    killed = cfg.nodes - 1
    neighbors = {n: set(range(cfg.nodes)) - {n} for n in range(cfg.nodes)}  # complete graph
    k = cfg.chunks.per_neighbor
    short_rounds: set[int] = set()  # rounds in which a byzemu peer missed your peer's chunks
    records = results.run.records()  # whole records, per-peer parts included
    for record in records:
        t, peers = record["round"], record["peers"]
        me = peers[str(FOREIGN)]
        if me["status"] != "ok":
            why = coord.failures.get(FOREIGN, (t, me["status"]))[1]
            checks.append(Check(f"round {t}", False, f"no round_done from your peer ({why})"))
            continue
        problems = round_done_problems(me, eval_round=cfg.eval_round(t))
        checks.append(Check(f"round {t}: round_done fields", not problems, "; ".join(problems) or "valid"))
        live = {j for j in neighbors[FOREIGN] if peers[str(j)]["status"] == "ok"}
        got = me["metrics"]
        want = {"senders": len(live), "chunks_received": k * len(live)}
        seen = {key: got.get(key) for key in want}
        checks.append(
            Check(
                f"round {t}: chunks to your peer",
                seen == want,
                f"reported {seen}, byzemu neighbors {sorted(live)} sent {want}",
            )
        )
        short = {
            j: peers[str(j)]["metrics"]["senders"]
            for j in sorted(live)
            if peers[str(j)]["metrics"]["senders"] != len({i for i in neighbors[j] if peers[str(i)]["status"] == "ok"})
        }
        if short:
            short_rounds.add(t)
        checks.append(
            Check(
                f"round {t}: chunks from your peer",
                not short,
                f"byzemu peers {sorted(short)} missed a chunk message (senders {short})"
                if short
                else f"byzemu neighbors {sorted(live)} each accepted its chunk message",
            )
        )
    if not records:
        return checks
    last = records[-1]
    mine = last["peers"][str(FOREIGN)].get("traffic", {}).get("drops_total", {})
    theirs = {
        j: e["traffic"]["drops_total"]
        for j, e in last["peers"].items()
        if int(j) != FOREIGN and e["status"] == "ok" and e["traffic"]["drops_total"]
    }
    # a killed sender's connection closing is one connection_dropped at each of its neighbors
    expected = {"connection_dropped": 1} if len(records) > FAIL_AFTER else {}
    bad_theirs = {j: d for j, d in theirs.items() if d not in ({}, expected)}
    bad_mine = {r: c for r, c in mine.items() if r != "connection_dropped" or c > 1}
    coordinator = {r: c for r, c in last.get("coordinator_drops", {}).items() if {r: c} != expected}
    checks.append(
        Check(
            "drops",
            not bad_theirs and not bad_mine and not coordinator,
            f"at byzemu peers {bad_theirs or 'none'}, at your peer {bad_mine or 'none'}, at the coordinator "
            f"{coordinator or 'none'} (beyond the killed peer's closed connections)",
        )
    )
    if len(records) > FAIL_AFTER:
        after = records[FAIL_AFTER:]
        reported = all(r["peers"][str(FOREIGN)]["status"] == "ok" for r in after)
        # a byzemu peer waits until the chunk deadline for chunks it misses from your peer:
        # only a slow round without that is your peer waiting for the failed one
        slow = [
            r["round"] for r in after if r["round_s"] >= cfg.runtime.chunk_timeout and r["round"] not in short_rounds
        ]
        checks.append(
            Check(
                "peer_failed",
                reported and not slow,
                f"node {killed} killed after round {FAIL_AFTER}: your peer "
                + (
                    "missed a later round"
                    if not reported
                    else f"waited for the failed peer's chunks until the chunk deadline in rounds {slow}"
                    if slow
                    else "went on without it in every later round"
                ),
            )
        )
    return checks


def run_conformance(
    command: list[str], cfg: RunConfig, *, curve_modes: list[str], out_dir: Path, echo: Callable[[str], None]
) -> int:
    """Every mode's checks, printed as they finish; 0 if all passed, else 1."""
    failed: list[str] = []
    echo(
        f"byzemu conformance: {' '.join(command)}  ({cfg.nodes} nodes, {cfg.rounds} rounds; your peer is node "
        f"{FOREIGN}; logs in {out_dir})"
    )
    for mode in curve_modes:
        data = cfg.to_dict()
        data["runtime"]["curve"] = mode
        mode_cfg = config_mod.from_dict(data)
        echo(f"[curve {mode}]")
        for check in run_mode(command, mode_cfg, out_dir / f"curve-{mode}"):
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
    run cannot host the checks (a complete graph of at least 3 nodes, more rounds than
    :data:`FAIL_AFTER`)."""
    if path is not None:
        cfg = config_mod.load(path, overrides)
    else:
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in DEFAULT_CONFIG.items()}
        for item in overrides:
            config_mod.apply_override(data, item)
        cfg = config_mod.from_dict(data)
    if cfg.topology.kind != "complete" or cfg.nodes < 3 or cfg.rounds <= FAIL_AFTER:
        raise config_mod.ConfigError(
            f'conformance needs topology.kind = "complete", nodes >= 3 and rounds > {FAIL_AFTER} '
            f"(got {cfg.topology.kind}, {cfg.nodes}, {cfg.rounds})"
        )
    if cfg.byzantine.present:
        raise config_mod.ConfigError("conformance runs without Byzantine peers: remove the [byzantine] section")
    return cfg
