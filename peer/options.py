"""What one peer process is told on its command line (``byzemu peer``, the launchers).

One frozen dataclass travels unchanged from the command line (``launch/cli.py``) or a
launcher (``launch/run/local.py``, ``launch/cluster/slurm_job.py``, ``launch/tools/conformance.py``) through
``launch/run/procs.py`` into the forked process and :class:`peer.runtime.PeerRuntime`. It is
light to import (the launchers import it before the forkserver imports torch) and
picklable (it is the argument of the process target).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.config import RuntimeConfig


@dataclass(frozen=True, kw_only=True)
class PeerOptions:
    """One peer's own settings (the run's settings come with the assignment)."""

    #: ``tcp://HOST:PORT`` of the coordinator's control socket
    coordinator: str
    #: interface the data socket binds on (a random port)
    bind_host: str = "127.0.0.1"
    #: address other peers reach this host on (default: ``bind_host``)
    advertise_host: str | None = None
    #: folder of this host's datasets (default: the config's ``data.root``)
    data_root: str | None = None
    #: seconds to wait for the assignment after registering
    assign_timeout: float = 600.0
    #: the coordinator's CURVE public key (Z85) when the run uses CURVE
    coordinator_key: str | None = None
    #: folder where this peer writes (and resumes from) checkpoints
    checkpoint_dir: str | None = None
    #: the data socket's message limit, fixed before registering; a run with a larger
    #: ``runtime.max_message_bytes`` refuses this peer
    max_message_bytes: int = RuntimeConfig.max_message_bytes
    #: network namespace (a name under /run/netns) the forked peer enters before opening
    #: a socket; set by a launch with [network] (launch/net), None elsewhere
    netns: str | None = None
    #: the churn slot (node id) a peer that registers after the assignment asks for (None:
    #: the next free one; coordinator/joins.py)
    node: int | None = None

    @property
    def data_host(self) -> str:
        """The host part of the data address this peer advertises."""
        return self.advertise_host or self.bind_host
