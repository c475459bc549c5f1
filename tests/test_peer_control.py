"""A byzemu peer's side of the control plane, driven by a scripted coordinator (a ROUTER in
this test process) so that it can send what a byzemu coordinator never does
(docs/PROTOCOL.md, *round_start*, *Model, chunks and the initial model*, *stop*):

* an ``assign`` whose ``model.init_digest`` is not the model this host builds: the peer
  logs why and exits with status 1 without answering ``ready``;
* a ``round_start`` for a round beyond S+1 (``future_round``) and one for a round already
  started (``stale_round``): dropped and counted, the run goes on;
* a ``chunk`` from a peer that ``round_start`` listed as failed (``failed_sender``);
* a ``stop`` with a reason other than ``"finished"``: exit status 0.

Two real peer processes (one per case) and a raw-frame peer (tests/support/harness.py,
the failed sender), one scripted coordinator."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from coordinator.plan import build_plan, initial_model
from peer.core import model_digest
from protocol import assignment as assignment_mod
from protocol import config as config_mod
from protocol import messages as m
from protocol import reports
from protocol.codec import decode, encode
from tests.support import BYZEMU
from tests.support.harness import ScriptedPeer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

CFG = config_mod.from_dict(
    {
        "nodes": 3,
        "rounds": 2,
        "topology": {"kind": "complete"},
        "data": {"dataset": "synthetic", "synthetic_size": 200},
        "model": {"name": "logreg"},
        "train": {"local_steps": 1},
        "chunks": {"count": 4, "per_neighbor": 2},
        "eval": {"every": 1},
        "runtime": {"curve": "off", "chunk_timeout": 5.0, "round_timeout": 20.0},
    }
)


class ScriptedCoordinator:
    """A control ROUTER that receives and sends byzemu messages one by one."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def receive(self, timeout: float, alive: list[subprocess.Popen[bytes]]) -> tuple[bytes, m.Message]:
        deadline = time.monotonic() + timeout
        while not self.sock.poll(100):
            assert time.monotonic() < deadline, "no control message in time"
            assert any(p.poll() is None for p in alive), "every peer exited"
        identity, *frames = self.sock.recv_multipart()
        return identity, decode(frames, allowed=m.TO_COORDINATOR)

    def send(self, identity: bytes, msg: m.Message) -> None:
        self.sock.send_multipart([identity, *encode(msg)])

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def _peer(address: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [BYZEMU, "peer", "--coordinator", address, "--bind-host", "127.0.0.1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("control")
    coord = ScriptedCoordinator()
    procs = [_peer(coord.address, tmp / f"peer{i}.log") for i in range(2)]
    sp = ScriptedPeer(coord.address)
    try:
        sp.register(host="scripted")
        registered = [coord.receive(120, procs) for _ in range(3)]
        # ids: the byzemu peers 0 and 1 in arrival order, the scripted peer 2
        registered.sort(key=lambda r: r[1]["host"] == "scripted")
        plan = build_plan(CFG)
        layout, init = initial_model(CFG)
        addresses = {i: msg["data_addr"] for i, (_, msg) in enumerate(registered)}
        digests = {0: "0" * 16, 1: model_digest(init), 2: model_digest(init)}  # node 0: not the model it builds
        for node, (identity, _) in enumerate(registered):
            a = plan.assignment(node)
            model = {"layout": layout, "init_digest": digests[node]}
            coord.send(identity, assignment_mod.to_message(a, {j: addresses[j] for j in a.linked()}, model=model))
        sp.accept_assignment()
        ready_identity, ready = coord.receive(120, procs)
        assert (ready.kind, ready.src) == (m.READY, 1)
        # the peers' pids are their forkserver children's, not these processes': node 0's is
        # the one that exits
        bad = (
            wait_until(
                lambda: next((i + 1 for i, p in enumerate(procs) if p.poll() is not None), None),
                timeout=60,
                what="node 0's exit",
            )
            - 1
        )
        proc = {0: procs[bad], 1: procs[1 - bad]}
        first_exit = proc[0].wait()
        failed = [0, 2]
        coord.send(ready_identity, m.round_start(round_=2, failed=failed, deadline=20.0))  # S = 0: future_round
        coord.send(ready_identity, m.round_start(round_=1, failed=failed, deadline=20.0))
        _, done1 = coord.receive(60, [proc[1]])
        # node 1 knows node 2 failed (round_start 1): its early round-2 chunk is failed_sender
        sp.send_chunks(2, 1, {0: np.zeros(sp.chunk_sizes[0], "<f4")})
        # round 2 waits for no one (both neighbors failed): let the chunk be read first
        wait_until(
            lambda: "failed_sender" in (tmp / f"peer{1 - bad}.log").read_text(),
            timeout=60,
            what="node 1's failed_sender drop in its log",
        )
        coord.send(ready_identity, m.round_start(round_=1, failed=failed, deadline=20.0))  # again: stale_round
        coord.send(ready_identity, m.round_start(round_=2, failed=failed, deadline=20.0))
        _, done2 = coord.receive(60, [proc[1]])
        coord.send(ready_identity, m.stop(reason="coordinator aborted"))
        second_exit = proc[1].wait(60)
    finally:
        sp.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        coord.close()
    return {
        "codes": (first_exit, second_exit),
        "log0": (tmp / f"peer{bad}.log").read_text(),
        "done": [done1, done2],
        "init": model_digest(init),
    }


def test_a_wrong_initial_digest_ends_the_peer_before_ready(outcome: dict[str, Any]) -> None:
    assert outcome["codes"][0] == 1
    assert (
        f"peer 0 cannot start: this host builds an initial model with digest {outcome['init']}, the run's is "
        f"{'0' * 16} (assign.model.init_digest)"
    ) in outcome["log0"]


def test_round_starts_out_of_order_are_dropped_and_counted(outcome: dict[str, Any]) -> None:
    done1, done2 = outcome["done"]

    assert [(d.kind, d.round) for d in (done1, done2)] == [(m.ROUND_DONE, 1), (m.ROUND_DONE, 2)]
    assert done1["traffic"]["drops_total"] == {"future_round": 1}
    assert done2["traffic"]["drops_total"] == {"future_round": 1, "stale_round": 1, "failed_sender": 1}
    assert done2["metrics"]["senders"] == 0


def test_byzemus_own_reports_follow_the_report_rules(outcome: dict[str, Any]) -> None:
    for done in outcome["done"]:
        assert reports.problems(done["metrics"], done["traffic"], done["timing"]) == []


def test_a_stop_that_is_not_finished_still_exits_zero(outcome: dict[str, Any]) -> None:
    assert outcome["codes"][1] == 0
