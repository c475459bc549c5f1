"""``byzemu peer --coordinator tcp://HOST:PORT [--count N]``: peers on this host that join
a coordinator elsewhere (multi-host runs)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from launch.commands.common import fail


def host_ip() -> str:
    """This host's address as its name resolves (loopback if it does not)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def read_key_file(path: str, given: str | None) -> str:
    """The key in the file at ``path`` (surrounding whitespace dropped); exits with one
    error line when it cannot be read, is not a key, or ``--coordinator-key`` was given too."""
    from protocol.assignment import is_z85_key

    if given is not None:
        fail("--coordinator-key and --coordinator-key-file: give one of them")
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        fail(f"--coordinator-key-file {path}: cannot read it ({exc.strerror})")
    if not is_z85_key(key):
        fail(f"--coordinator-key-file {path}: expected the 40-character Z85 public key the coordinator wrote")
    return key


@click.command()
@click.option("--coordinator", "address", required=True, help="tcp://HOST:PORT of the coordinator.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=1), help="Peers to start on this host.")
@click.option("--bind-host", default="0.0.0.0", show_default=True, help="Interface the data sockets bind on.")
@click.option(
    "--advertise-host", default=None, help="Address other peers use to reach this host (default: this host's IP)."
)
@click.option(
    "--data-root",
    default=None,
    type=click.Path(file_okay=False),
    help="Dataset folder on this host (overrides data.root).",
)
@click.option(
    "--coordinator-key",
    "coordinator_key",
    default=None,
    metavar="KEY",
    help="The coordinator's CURVE public key (40 Z85 characters, printed by `byzemu coordinator` "
    "when runtime.curve is on); leave out when CURVE is off.",
)
@click.option(
    "--coordinator-key-file",
    "coordinator_key_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="A file holding the coordinator's CURVE public key (the key file in its results folder, copied here); "
    "instead of --coordinator-key.",
)
@click.option(
    "--checkpoint-dir",
    "checkpoint_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder on this host where the peers write their checkpoints (runtime.checkpoint_every); "
    "without it they write none.",
)
@click.option(
    "--max-message-bytes",
    "max_message_bytes",
    default=None,
    type=click.IntRange(min=1024),
    help="Largest data message the peers' data sockets accept, fixed before they register; a run with "
    "a larger runtime.max_message_bytes refuses them. [default: 67108864, runtime.max_message_bytes's default]",
)
@click.option(
    "--node",
    default=None,
    type=click.IntRange(min=0),
    help="The churn slot (a new or returning peer's node id, [churn] join/leave) this peer asks for when it "
    "registers after the run started; without it a late peer takes the next free slot. With --count 1 only.",
)
def peer(
    address: str,
    count: int,
    bind_host: str,
    advertise_host: str | None,
    data_root: str | None,
    coordinator_key: str | None,
    coordinator_key_file: str | None,
    checkpoint_dir: str | None,
    max_message_bytes: int | None,
    node: int | None,
) -> None:
    """Start COUNT peers on this host that join the coordinator at ADDRESS."""
    if not address.startswith("tcp://"):
        fail(f"--coordinator {address}: expected tcp://HOST:PORT")
    if node is not None and count != 1:
        fail(f"--node {node} names one slot: use it with --count 1")
    if coordinator_key_file is not None:
        coordinator_key = read_key_file(coordinator_key_file, coordinator_key)
    from protocol.assignment import is_z85_key

    if coordinator_key is not None and not is_z85_key(coordinator_key):
        fail(f"--coordinator-key {coordinator_key}: expected the 40-character Z85 public key the coordinator printed")
    if data_root is not None and not Path(data_root).is_dir():
        fail(f"--data-root {data_root}: no such folder")
    advertise = advertise_host or (bind_host if bind_host != "0.0.0.0" else host_ip())
    from launch.run.procs import start_peers, stop_peers
    from peer.options import PeerOptions

    options = PeerOptions(
        coordinator=address,
        bind_host=bind_host,
        advertise_host=advertise,
        data_root=str(Path(data_root).resolve()) if data_root else None,
        coordinator_key=coordinator_key,
        checkpoint_dir=str(Path(checkpoint_dir).resolve()) if checkpoint_dir else None,
        max_message_bytes=max_message_bytes if max_message_bytes is not None else PeerOptions.max_message_bytes,
        node=node,
    )
    procs = start_peers(count, options)
    click.echo(f"{count} peer(s) started; data sockets advertised on {advertise}", err=True)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop_peers(procs, grace=0)
    codes = [p.exitcode for p in procs]
    sys.exit(0 if all(c == 0 for c in codes) else 1)
