"""peer.training.SGD is torch.optim.SGD's update, bit for bit (byzemu avoids constructing
torch optimizers: that imports torch._dynamo, ~2 s per process; BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from peer.models import build_model
from peer.training import SGD, LocalTrainer, evaluate, round_steps


def _models(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(5)
    a = build_model(name, in_channels=1, image_size=28, num_classes=10)
    torch.manual_seed(5)
    b = build_model(name, in_channels=1, image_size=28, num_classes=10)
    return a, b


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 5e-4), (0.0, 0.0), (0.5, 0.0), (0.0, 1e-3)])
def test_sgd_equals_torch_optim_sgd_bit_for_bit(momentum: float, weight_decay: float) -> None:
    ours_model, torch_model = _models("lenet")
    ours = SGD(ours_model.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    theirs = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        x = torch.randn(16, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        for model, opt in ((ours_model, ours), (torch_model, theirs)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        assert torch.equal(p, q)
    initial = _models("lenet")[0]
    assert all(not torch.equal(p, q) for p, q in zip(ours_model.parameters(), initial.parameters(), strict=True))
    if momentum:
        assert all(
            b is not None and torch.equal(b, theirs.state[q]["momentum_buffer"])
            for b, q in zip(ours.buffers, torch_model.parameters(), strict=True)
        )


def test_trainer_state_round_trip_continues_identically() -> None:
    a, b = _models("mlp")
    images, labels = torch.randn(64, 1, 28, 28), torch.arange(64) % 10
    kw: dict[str, Any] = dict(
        images=images, labels=labels, batch_size=8, lr=0.1, momentum=0.9, weight_decay=1e-4, seed=3
    )
    first, second = LocalTrainer(model=a, **kw), LocalTrainer(model=b, **kw)
    first.train(3)
    second.model.load_state_dict(first.model.state_dict())
    second.load_state_dict(first.state_dict())
    assert first.train(4) == second.train(4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="parameters"):
        second.optimizer.load_state_dict({"momentum_buffers": [None]})


def test_no_torch_optimizer_is_constructed_by_a_peer() -> None:
    """A peer's code path builds no torch.optim optimizer (which would import torch._dynamo)."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from peer.models import build_model\n"
        "from peer.training import LocalTrainer\n"
        "m = build_model('lenet', in_channels=1, image_size=28, num_classes=10)\n"
        "t = LocalTrainer(model=m, images=torch.randn(8, 1, 28, 28), labels=torch.arange(8) % 10,\n"
        "                 batch_size=4, lr=0.1, momentum=0.9, weight_decay=0.0, seed=0)\n"
        "t.train(2)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["lenet", "mlp", "logreg"])
def test_evaluate_equals_one_forward_pass_per_batch_bit_for_bit(name: str) -> None:
    """evaluate() runs the forward pass FORWARD_BATCH images at a time; accuracy and loss
    equal those of one forward pass per eval batch (the code before), bit for bit, for
    the models whose logits do not depend on the batch (the wider CNNs' can differ in
    the last bits: BENCHMARKS.md, *Fast evaluation*)."""
    model, _ = _models(name)
    gen = torch.Generator().manual_seed(9)
    batch = 1000  # eval.batch_size's default: forward pieces 7 x 128 + 104, then 130
    images = torch.randn(batch + 130, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (len(images),), generator=gen)
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for lo in range(0, len(labels), batch):
            out = model(images[lo : lo + batch])
            loss_sum += float(F.cross_entropy(out, labels[lo : lo + batch], reduction="sum").item())
            correct += int((out.argmax(1) == labels[lo : lo + batch]).sum().item())

    acc, loss = evaluate(model, images, labels, batch_size=batch)

    assert (acc, loss) == (correct / len(labels), loss_sum / len(labels))


def test_evaluate_leaves_the_model_in_eval_mode_and_training_restores_it() -> None:
    model, _ = _models("logreg")
    gen = torch.Generator().manual_seed(2)
    images, labels = torch.randn(40, 1, 28, 28, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    trainer = LocalTrainer(
        model=model, images=images, labels=labels, batch_size=8, lr=0.1, momentum=0.0, weight_decay=0.0, seed=1
    )

    evaluate(model, images, labels, batch_size=16)
    after_eval = model.training
    trainer.train(1)

    assert (after_eval, model.training) == (False, True)


def test_local_epochs_give_whole_passes_over_the_shard_per_round() -> None:
    # 100 samples, batch 32: one pass is floor(100 / 32) = 3 steps (the short batch dropped);
    # E = 2 -> 6 steps, replacing local_steps; E = 0 keeps local_steps
    assert round_steps(10, 2, 100 // 32) == 6
    assert round_steps(10, 0, 100 // 32) == 10
