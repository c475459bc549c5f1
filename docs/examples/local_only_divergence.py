"""LeNet trained alone on one IID 1/16 shard of MNIST with the quickstart's training
settings: does plain local SGD stay stable without neighbours to average with?

Settings of ``configs/quickstart.toml`` (and the poster's chunked_dl_mnist setup):
batch 32, lr 0.05, momentum 0.9, no weight decay, 10 local steps per "round", 300
rounds; the model, the trainer and the data are byzemu's own (``peer.models``,
``peer.training.LocalTrainer``, ``peer.data``). A 3,750-image shard (60,000 / 16) drawn
with numpy seed ``--shard-seed``; test accuracy on the first 2,000 test images every 10
rounds. docs/EXPERIMENTS.md (*Why honest peers collapse under norm clipping with
tau = 0.3*) has the output and what it explains.

    .venv/bin/python docs/examples/local_only_divergence.py [--seeds 0,1,2,3] [--shard-seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from peer import data  # noqa: E402
from peer.models import build_model  # noqa: E402
from peer.training import LocalTrainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3", help="model/batch seeds, one run each")
    ap.add_argument("--shard-seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = ROOT / "data" / "mnist"
    train = data.load("mnist", root, train=True)
    test = data.load("mnist", root, train=False)
    test_x, test_y = test.tensors(np.arange(2000))
    shard = np.random.default_rng(args.shard_seed).permutation(len(train.labels))[:3750]
    x, y = train.tensors(shard)
    for seed in (int(s) for s in args.seeds.split(",")):
        torch.manual_seed(seed)
        model = build_model("lenet")
        trainer = LocalTrainer(model=model, images=x, labels=y, batch_size=32, lr=0.05, momentum=0.9,
                               weight_decay=0.0, seed=seed)
        history = []
        for r in range(1, args.rounds + 1):
            loss = trainer.train(10)
            if r % 10 == 0:
                model.eval()
                with torch.inference_mode():
                    accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
                model.train()
                history.append((r, round(loss, 3), round(accuracy, 3)))
        collapsed = next((r for r, loss, acc in history if acc < 0.2), None)
        print(f"seed {seed}: (round, train loss, test accuracy) every 30 rounds {history[::3]}; "
              f"first evaluation below 0.2: round {collapsed}", flush=True)


if __name__ == "__main__":
    main()
