"""Which device a peer trains and evaluates on (``train.device``, ``train.device_map``).

Pure rules, no torch: the config check, the launcher's refusal (``launch/run/gpus.py``)
and the peer itself (``peer/device.py``) apply the same ones, so the launcher's count of
peers per GPU is the placement the peers then take.

``train.device``:

* ``"cpu"`` (default): every peer on the CPU; nothing of CUDA is touched.
* ``"cuda"``: round-robin over the CUDA devices visible to the peer's process, by node id:
  node i on ``cuda:(i mod k)`` for k visible devices (``CUDA_VISIBLE_DEVICES``; on Slurm,
  the job's allocated GPUs). Peers of one host with contiguous ids spread evenly.
* ``"cuda:N"``: every peer on visible device N.
* ``"auto"``: ``"cuda"`` when the peer sees a CUDA device, else ``"cpu"``.

``train.device_map`` (``{"node id" = "device"}``) overrides ``train.device`` for the
nodes it names, with the same values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from protocol.errors import UserError

#: a value of train.device or of a train.device_map entry
DEVICE_RE = re.compile(r"^(cpu|auto|cuda|cuda:\d+)$")
DEVICE_CHOICES = "cpu, cuda, cuda:N, auto"


class DeviceError(UserError):
    """A device a peer cannot use (one line: what, and what to set instead)."""


def device_problem(value: object) -> str | None:
    """Why ``value`` is not a device setting, or None."""
    if not isinstance(value, str) or not DEVICE_RE.match(value):
        return f"{value!r} is not a device; choose one of {DEVICE_CHOICES}"
    return None


def node_setting(device: str, device_map: Mapping[str, str], node: int) -> str:
    """The setting that applies to ``node``: its ``device_map`` entry, else ``device``."""
    return device_map.get(str(node), device)


def uses_cuda(device: str, device_map: Mapping[str, str]) -> bool:
    """Whether any peer may be placed on a CUDA device (``auto`` included)."""
    return any(v != "cpu" for v in (device, *device_map.values()))


def place(setting: str, node: int, visible: int) -> str:
    """The device of ``node`` under ``setting`` with ``visible`` CUDA devices: ``"cpu"``
    or ``"cuda:K"``; :class:`DeviceError` if it asks for a device that is not there."""
    if setting == "cpu":
        return "cpu"
    if setting == "auto":
        return f"cuda:{node % visible}" if visible else "cpu"
    if visible == 0:
        raise DeviceError(
            f"train.device {setting!r} for node {node}: no CUDA device is visible "
            "(torch.cuda.device_count() is 0); set train.device = 'cpu' or 'auto'"
        )
    if setting == "cuda":
        return f"cuda:{node % visible}"
    index = int(setting.split(":", 1)[1])
    if index >= visible:
        raise DeviceError(
            f"train.device {setting!r} for node {node}: only {visible} CUDA device(s) visible "
            f"(cuda:0..cuda:{visible - 1}); pick one of them or 'cuda' (round-robin)"
        )
    return setting


def placement(device: str, device_map: Mapping[str, str], nodes: list[int] | range, visible: int) -> dict[int, str]:
    """``{node: device}`` for ``nodes`` (:func:`place` of each node's setting)."""
    return {n: place(node_setting(device, device_map, n), n, visible) for n in nodes}


def peers_per_device(places: Mapping[int, str]) -> dict[str, int]:
    """How many peers each CUDA device holds under ``places`` (the CPU left out)."""
    out: dict[str, int] = {}
    for dev in places.values():
        if dev != "cpu":
            out[dev] = out.get(dev, 0) + 1
    return dict(sorted(out.items()))
