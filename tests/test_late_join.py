"""Late registration (coordinator/joins.py) with real processes: a new peer's process that
is not there when its join round starts leaves its slot *pending* (away, recorded as
``"pending"``) until it registers; it then takes part from the next round; a late
``register`` for a node that is not a free slot is refused. That a slot filled in time
runs bit-identically to the reference is tests/test_reference_equivalence.py's ``join``
case (``byzemu launch`` starts the new peer's process when the round before its join
starts)."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest
import zmq
from click.testing import CliRunner

from launch.cli import main
from tests.support.harness import REVISION, Cluster, encode, header, read_rounds
from tests.support.runs import small_config
from tests.support.waiting import wait_until
from tests.support.warm import warm_peer

WAIT_S = 240.0


def _refusal(address: str, node: int) -> str:
    """The ``stop`` reason a late ``register`` asking for ``node`` gets."""
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(address)
        register = header("register", -1, data_addr="tcp://127.0.0.1:1", host="h", pid=1, revision=REVISION, node=node)
        dealer.send_multipart(encode(register))
        assert dealer.poll(30_000)
        return str(msgpack.unpackb(dealer.recv_multipart()[0])["reason"])
    finally:
        ctx.destroy(linger=0)


def test_a_slot_asked_for_by_several_peers_is_one_error_line() -> None:
    result = CliRunner().invoke(main, ["peer", "--coordinator", "tcp://127.0.0.1:1", "--count", "2", "--node", "3"])

    assert result.exit_code == 2 and result.stderr == "error: --node 3 names one slot: use it with --count 1\n"


@pytest.mark.cluster
def test_a_slot_without_a_process_is_pending_until_one_registers_then_it_joins(tmp_path: Path) -> None:
    config = tmp_path / "late.toml"
    config.write_text(
        small_config(
            "late",
            seed=4,
            rounds=30,
            topology={"kind": "complete"},
            churn={"join": [[3, 2]]},
            # each round that starts while the slot is free waits this long for it
            runtime={"join_timeout": 0.3, "round_timeout": 60.0, "chunk_timeout": 20.0},
        )
    )
    run_dir = tmp_path / "run"
    with Cluster(config, run_dir, peers=3) as cluster:
        cluster.start_coordinator()
        cluster.wait_listening()
        with warm_peer(tmp_path, cluster.address) as (late, trigger):
            cluster.start_peers()
            wait_until(
                lambda: len(read_rounds(run_dir)) >= 2,
                timeout=WAIT_S,
                what="round 2",
                alive=cluster.alive,
                details=cluster.logs,
            )
            held = _refusal(cluster.address, 0)  # node 0 is no slot: a restarted peer's register
            trigger.touch()  # the new peer's process, late
            late_out, late_err = late.communicate(timeout=WAIT_S)
            codes = cluster.wait(WAIT_S)
            logs = cluster.logs()

    assert late.returncode == 0 and codes[0] == 0, (late_err, logs)
    assert held.startswith("registration refused: the run is in progress") and "no churn slot is free" in held
    rounds = read_rounds(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    (joined,) = summary["late_registrations"]
    assert joined["node"] == 3 and joined["round"] >= 2
    status = [r["peers"]["3"]["status"] for r in rounds]
    first = joined["round"] + 1  # it takes part from the first round that starts after it registered
    assert status == ["away"] + ["pending"] * (first - 2) + ["ok"] * (30 - first + 1)
    assert [r.get("pending", []) for r in rounds[1 : first - 1]] == [[3]] * (first - 2)
    assert all(3 not in sum(r["graph"]["edges"], []) for r in rounds[: first - 1])
    assert all(3 in sum(r["graph"]["edges"], []) for r in rounds[first - 1 :])
    # its first round started from the model of its lowest-id sender (join_model = neighbor)
    assert rounds[first - 1]["peers"]["3"]["metrics"]["senders"] == 3
    assert summary["failed_peers"] == []
