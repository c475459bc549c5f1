"""What the coordinator checks in a ``register`` before it gives an id (docs/PROTOCOL.md,
*register*): a peer of another protocol revision, a peer whose data socket is limited below the run's
``runtime.max_message_bytes``, or a CURVE run's peer without a data-plane key, is answered
with ``stop`` naming the fix and counted as ``registration_refused``. In-process: a real
coordinator socket and raw frames from tests/support/harness.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from coordinator.plan import build_plan
from coordinator.results import ResultsWriter
from coordinator.server import Coordinator, CoordinatorError
from protocol import config as config_mod
from tests.support.harness import REVISION, encode, header

LIMIT = 1 << 20


def refusal(tmp: Path, *, curve: str, **register: Any) -> tuple[str, dict[str, int]]:
    """Send one ``register`` (revision 2 unless ``register`` says otherwise, None = absent)
    to a fresh coordinator; its ``stop`` reason and drop counters."""
    register = {"revision": REVISION, **register}
    if register["revision"] is None:
        del register["revision"]
    cfg = config_mod.from_dict(
        {
            "nodes": 2,
            "topology": {"kind": "complete"},
            "data": {"dataset": "synthetic", "synthetic_size": 100},
            "model": {"name": "logreg"},
            # the wait ends this long after the register is read (it is queued first, below)
            "runtime": {"register_timeout": 0.5, "max_message_bytes": LIMIT, "curve": curve},
        }
    )
    coord = Coordinator(build_plan(cfg), bind="tcp://127.0.0.1:*", results=ResultsWriter(tmp, cfg, mode="multiprocess"))
    waiting = threading.Thread(target=lambda: pytest.raises(CoordinatorError, coord.wait_registrations))
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        if coord.public_key is not None:
            public, secret = zmq.curve_keypair()
            dealer.curve_publickey, dealer.curve_secretkey = public, secret
            dealer.curve_serverkey = coord.public_key.encode()
        dealer.connect(coord.address)
        dealer.send_multipart(
            encode(header("register", -1, data_addr="tcp://127.0.0.1:1", host="h", pid=1, **register))
        )
        # the register is in the coordinator's queue before its wait starts, so the short
        # register_timeout above cannot end the wait first, however loaded the machine
        assert coord.sock.poll(60_000)
        waiting.start()
        assert dealer.poll(60_000)
        reply = msgpack.unpackb(dealer.recv_multipart()[0])
    finally:
        ctx.destroy(linger=0)
        if waiting.is_alive():
            waiting.join()
        coord.close()
    assert reply["kind"] == "stop" and coord.peers == {}
    return reply["reason"], dict(coord.drops)


def test_a_data_socket_below_the_run_limit_is_refused_naming_the_flag(tmp_path: Path) -> None:
    reason, drops = refusal(tmp_path, curve="off", max_message_bytes=LIMIT - 1)

    assert reason == (
        f"registration refused: the run's runtime.max_message_bytes={LIMIT} exceeds the peer's data-socket "
        f"limit {LIMIT - 1}: start it with --max-message-bytes {LIMIT}"
    )
    assert drops == {"registration_refused": 1}


def test_a_curve_run_refuses_a_register_without_a_data_key(tmp_path: Path) -> None:
    reason, drops = refusal(tmp_path, curve="on", max_message_bytes=LIMIT)

    assert (
        reason
        == "registration refused: this run uses CURVE: register must carry curve_key, the peer's data-plane public key"
    )
    assert drops == {"registration_refused": 1}


@pytest.mark.parametrize(("revision", "stated"), [(None, 1), (1, 1), (3, 3)])
def test_another_protocol_revision_is_refused_naming_both(tmp_path: Path, revision: int | None, stated: int) -> None:
    reason, drops = refusal(tmp_path, curve="off", revision=revision, max_message_bytes=LIMIT)

    assert reason == (
        f"registration refused: this peer speaks protocol revision {stated}, the coordinator revision 2: "
        "update the peer (docs/PROTOCOL.md, Revisions, lists the changes)"
    )
    assert drops == {"registration_refused": 1}
