"""Imported once by the forkserver so that forked peers start with torch already loaded.

Peers forked from a parent that has imported torch start in milliseconds and share the
parent's read-only pages (torch's libraries) copy-on-write instead of loading them anew.

When the environment variable ``BYZEMU_PRELOAD_DATA`` holds the run's data as JSON
(``{"dataset", "root", "synthetic_size", "seed", "test_samples", "model"}``; ``byzemu
launch`` sets it from the config before it starts the forkserver), the dataset is loaded
here too, once, and the evaluation set is converted to float32 once: forked peers then
share those tensors instead of each reading and parsing the files and holding its own
float32 copy of the evaluation set (BENCHMARKS.md has the memory figures). The run's model
then takes one training step and one evaluation here (:func:`_warm_up`). A failure is
ignored here: each peer then loads the data itself and reports the error.

Whatever a peer would otherwise import or build on first use belongs here: a peer's
private memory is mostly the forkserver's pages it writes to, and an import after the
fork costs every peer its own copy (``numpy.random``, which numpy imports lazily, cost
each peer ~2 MiB; BENCHMARKS.md section 8, *A peer's private memory, cut*).

With that variable, torchvision is imported only when the run needs it (CIFAR-10 is read
through it, ResNet-18 is its model): its package import is slow, most of it
``torch._dynamo`` pulled in by ``torchvision.ops`` (BENCHMARKS.md, *Start-up and memory*),
and MNIST and Fashion-MNIST are read without it. Without it (``byzemu peer``, whose runs
are known only at the assignment, or ``launch_local`` called from Python) torchvision is
imported here, once for all peers.
"""

import gc
import json
import os
from pathlib import Path

import numpy  # noqa: F401
import numpy.random  # noqa: F401  (numpy imports it lazily: else each peer would, privately)
import torch  # noqa: F401
import zmq  # noqa: F401

import peer.runtime  # noqa: F401  (pulls in the core, models, datasets, defenses, attacks)
from peer import data

PRELOAD_ENV = "BYZEMU_PRELOAD_DATA"

#: models that import torchvision (once here rather than in every peer); datasets say it
#: in their spec (``needs_torchvision``)
_TORCHVISION_MODELS = frozenset({"resnet18"})


def _preload_data() -> None:
    spec = os.environ.get(PRELOAD_ENV)
    if not spec:  # the runs to come are unknown (``byzemu peer``, launch_local from Python)
        import torchvision  # noqa: F401  (once here, not in every peer of a CIFAR-10 run)

        return
    try:
        d = json.loads(spec)
        if d.get("model") in _TORCHVISION_MODELS or data.spec(d["dataset"]).needs_torchvision:
            import torchvision  # noqa: F401
        root = Path(d["root"]) if d.get("root") else None
        size, seed = int(d.get("synthetic_size", 0)), int(d.get("seed", 0))
        data.preload(d["dataset"], root, synthetic_size=size, seed=seed)
        test = data.load(d["dataset"], root, train=False, synthetic_size=size, seed=seed)
        data.share_test_subset(test, int(d.get("test_samples", 0)))
        _warm_up(d["model"], d["dataset"])
    except Exception:  # noqa: BLE001  (the peers load the data themselves and say what is wrong)
        pass


def _warm_up(model_name: str, dataset: str) -> None:
    """One SGD step and one evaluation of the run's model on two blank images, here and
    not in each peer: what torch builds on the first call of an operator, an autograd
    function or the optimizer is then built once and shared, not built again (privately)
    by every forked peer. Each peer seeds torch itself before it builds its model
    (``peer/core.py``), so the random numbers drawn here change nothing it computes."""
    from peer.models import build_model
    from peer.training import LocalTrainer, evaluate

    channels, size, _ = data.image_shape(dataset)
    model = build_model(model_name, in_channels=channels, image_size=size)
    images, labels = torch.zeros(2, channels, size, size), torch.zeros(2, dtype=torch.long)
    trainer = LocalTrainer(
        model=model, images=images, labels=labels, batch_size=2, lr=0.0, momentum=0.9, weight_decay=0.0, seed=0
    )
    trainer.train(1)
    evaluate(model, images, labels, batch_size=2)


_preload_data()
# forked peers inherit these objects: the cyclic collector then never walks them (nor
# writes to their shared pages); each peer freezes its own set-up again (peer/runtime.py)
gc.freeze()
