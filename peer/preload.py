"""Imported once by the forkserver so that forked peers start with torch already loaded.

Peers forked from a parent that has imported torch start in milliseconds and share the
parent's read-only pages (torch's libraries) copy-on-write instead of loading them anew.

When the environment variable ``BYZEMU_PRELOAD_DATA`` holds the run's data as JSON
(``{"dataset", "root", "synthetic_size", "seed"}``; ``byzemu launch`` sets it from the
config before it starts the forkserver), the dataset is loaded here too, once: forked
peers then share its tensors instead of each reading and parsing the files. A failure is
ignored here: each peer then loads the data itself and reports the error.
"""

import json
import os
from pathlib import Path

import numpy  # noqa: F401
import torch  # noqa: F401
import torchvision  # noqa: F401
import zmq  # noqa: F401

import peer.runtime  # noqa: F401  (pulls in the core, models, datasets, defenses, attacks)
from peer import datasets

PRELOAD_ENV = "BYZEMU_PRELOAD_DATA"


def _preload_data() -> None:
    spec = os.environ.get(PRELOAD_ENV)
    if not spec:
        return
    try:
        d = json.loads(spec)
        datasets.preload(
            d["dataset"], Path(d["root"]) if d.get("root") else None,
            synthetic_size=int(d.get("synthetic_size", 0)), seed=int(d.get("seed", 0)),
        )
    except Exception:  # noqa: BLE001  (the peers load the data themselves and say what is wrong)
        pass


_preload_data()
