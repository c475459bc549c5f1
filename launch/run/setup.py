"""The one place a run's coordinator is set up: plan, results folder, control socket.

Every launcher that runs a coordinator (``byzemu launch`` on one machine, ``byzemu
coordinator`` for peers on other hosts, the Slurm job, the conformance kit) calls
:func:`start_coordinator`; what differs between them (the address it binds, the mode
recorded in ``config.json``, a resumed run, how it learns of dead peers) is an argument
or is set on the coordinator it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.plan import Plan, build_plan
from coordinator.results import ResultsWriter, ResumePoint
from coordinator.server import Coordinator
from launch.net.namespaces import NetworkError
from protocol.config import RunConfig
from protocol.network_config import shaped


def start_coordinator(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    bind: str,
    mode: str,
    progress: Callable[[dict[str, Any]], None] | None = None,
    resume: ResumePoint | None = None,
    plan: Plan | None = None,
    factory: type[Coordinator] = Coordinator,
) -> Coordinator:
    """A coordinator of ``cfg`` bound on ``bind``, writing its results to ``out_dir``
    (``mode`` is recorded there: ``multiprocess``, ``multihost`` or ``slurm``).

    ``plan`` is ``cfg``'s plan when the caller has built it already (every config error
    surfaces there, before anything is written); ``resume`` goes on with a killed run in
    ``out_dir``; ``factory`` is the coordinator class (a subclass that watches the run).
    OSError if ``bind`` is a bad or busy address. The caller runs it and closes it."""
    plan = plan if plan is not None else build_plan(cfg)
    if mode != "multiprocess" and shaped(cfg.network):  # never a silently ideal network
        raise NetworkError(
            f"network: link conditions are applied by byzemu launch on one machine, not in a {mode} run: "
            "remove [network] (docs/NETWORK.md)"
        )
    results = ResultsWriter(out_dir, cfg, mode=mode, resume=resume)
    return factory(plan, bind=bind, results=results, progress=progress, resume=resume)
