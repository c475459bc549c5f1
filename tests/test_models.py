"""Tests for peer.models: registry, shapes, parameter counts, determinism, errors."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from peer.models import MODELS, ModelError, build_model, check_input, param_count

CIFAR = {"in_channels": 3, "image_size": 32, "num_classes": 10}


@functools.cache
def _shared(name: str, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> nn.Module:
    """One model per (name, sizes) for the tests that only read a model's structure or run
    it forward (ResNet-18 takes a while to build); tests of building itself build their own."""
    return build_model(name, in_channels=in_channels, image_size=image_size, num_classes=num_classes)


def _conv(cin: int, cout: int, k: int, *, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _fc(fin: int, fout: int) -> int:
    return fin * fout + fout


def test_registry_names() -> None:
    assert set(MODELS) == {"lenet", "cnn_masuda", "cnn_guo", "resnet18", "mlp", "logreg"}


def test_lenet_param_count() -> None:
    assert param_count(build_model("lenet")) == 61_706


def _resnet18_params(cin: int, classes: int) -> int:
    """3x3 stem, 4 stages of 2 basic blocks (two 3x3 convs, two norms each), 1x1
    downsampling conv + norm entering stages 2-4, fc; a norm layer has weight + bias."""
    norm = lambda c: 2 * c  # noqa: E731
    total = _conv(cin, 64, 3, bias=False) + norm(64)
    cin = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            total += _conv(cin, width, 3, bias=False) + norm(width) + _conv(width, width, 3, bias=False) + norm(width)
            if block == 0 and cin != width:
                total += _conv(cin, width, 1, bias=False) + norm(width)
            cin = width
    return total + _fc(512, classes)


@pytest.mark.parametrize(
    ("name", "mnist", "cifar"),
    [
        # conv(c,6,5) conv(6,16,5) fc(400,120) fc(120,84) fc(84,10): LeNet-5's C1..F6
        ("lenet", 61_706, _conv(3, 6, 5) + _conv(6, 16, 5) + _fc(400, 120) + _fc(120, 84) + _fc(84, 10)),
        # McMahan et al. 2017 report 1,663,370 for their MNIST CNN
        ("cnn_masuda", 1_663_370, _conv(3, 32, 5) + _conv(32, 64, 5) + _fc(64 * 8 * 8, 512) + _fc(512, 10)),
        (
            "cnn_guo",
            _conv(1, 64, 5) + _conv(64, 64, 5) + _fc(64 * 7 * 7, 384) + _fc(384, 192) + _fc(192, 10),
            _conv(3, 64, 5) + _conv(64, 64, 5) + _fc(64 * 8 * 8, 384) + _fc(384, 192) + _fc(192, 10),
        ),
        ("resnet18", _resnet18_params(1, 10), _resnet18_params(3, 10)),
        ("mlp", _fc(784, 64) + _fc(64, 10), _fc(3072, 64) + _fc(64, 10)),
        ("logreg", _fc(784, 10), _fc(3072, 10)),
    ],
)
def test_param_counts_on_mnist_and_cifar10(name: str, mnist: int, cifar: int) -> None:
    assert param_count(_shared(name)) == mnist
    assert param_count(_shared(name, **CIFAR)) == cifar


def test_documented_param_counts() -> None:
    # the values in peer/models.py's docstrings and docs/DATA_AND_MODELS.md
    assert [param_count(_shared(n, **CIFAR)) for n in ("lenet", "cnn_masuda", "cnn_guo", "resnet18")] == [
        62_006,
        2_156_490,
        1_756_426,
        11_173_962,
    ]
    assert param_count(_shared("cnn_guo")) == 1_384_586
    assert param_count(_shared("resnet18")) == 11_172_810


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cifar10_output_shape(name: str) -> None:
    model = _shared(name, **CIFAR)
    out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10) and out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)])
def test_no_state_outside_the_parameters(name: str, shape: tuple[int, int]) -> None:
    # the chunk exchange moves parameters only: no buffers (batch-norm statistics) exist
    model = _shared(name, in_channels=shape[0], image_size=shape[1])
    assert list(model.buffers()) == []
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) for m in model.modules())


def test_resnet18_uses_the_cifar_stem_and_group_norm() -> None:
    # imported here, not at the top: torchvision's import (~2 s) would be paid by every
    # pytest worker while collecting; building ResNet-18 imports it in the worker that runs this
    from torchvision.models.resnet import ResNet

    model = _shared("resnet18", **CIFAR)
    assert isinstance(model, ResNet) and isinstance(model.conv1, nn.Conv2d)
    assert (model.conv1.kernel_size, model.conv1.stride, model.conv1.in_channels) == ((3, 3), (1, 1), 3)
    assert isinstance(model.maxpool, nn.Identity)
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 20 and {m.num_groups for m in norms} == {2}
    # the stages see 32, 16, 8 and 4 pixel maps
    x = model.relu(model.bn1(model.conv1(torch.zeros(1, 3, 32, 32))))
    sizes = []
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = stage(x)
        sizes.append(x.shape[-1])
    assert sizes == [32, 16, 8, 4]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cifar10_training_step_is_deterministic(name: str) -> None:
    def one_step() -> list[torch.Tensor]:
        torch.manual_seed(7)
        model = build_model(name, **CIFAR)
        x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return [p.detach().clone() for p in model.parameters()]

    a, b = one_step(), one_step()
    assert all(torch.equal(pa, pb) for pa, pb in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("name", "params"),
    [("mlp", 784 * 64 + 64 + 64 * 10 + 10), ("logreg", 784 * 10 + 10)],
)
def test_flat_param_counts(name: str, params: int) -> None:
    assert param_count(_shared(name)) == params


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape(name: str) -> None:
    model = _shared(name)
    out = model(torch.zeros(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MODELS))
def test_other_sizes(name: str) -> None:
    model = build_model(name, in_channels=3, image_size=32, num_classes=7)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_lenet_structure_for_32x32() -> None:
    # classic LeNet-5: unpadded C1 on a 32x32 input gives 28x28 maps, F5 sees 16x5x5
    model = build_model("lenet", in_channels=3, image_size=32, num_classes=10)
    padded = build_model("lenet")
    assert isinstance(model.features, nn.Sequential) and isinstance(model.classifier, nn.Sequential)
    assert isinstance(padded.features, nn.Sequential)
    assert model.features[0].padding == (0, 0)
    assert padded.features[0].padding == (2, 2)  # 28x28 padded to 32x32
    fc1 = model.classifier[1]
    assert isinstance(fc1, nn.Linear) and fc1.in_features == 16 * 5 * 5
    assert not any(isinstance(m, (nn.Dropout, nn.BatchNorm2d, nn.BatchNorm1d)) for m in model.modules())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_deterministic_given_seed(name: str) -> None:
    torch.manual_seed(123)
    a = build_model(name)
    after_a = torch.rand(1)
    torch.manual_seed(123)
    b = build_model(name)
    after_b = torch.rand(1)
    torch.manual_seed(124)
    c = build_model(name)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(after_a, after_b)  # same RNG consumption
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(a(x), b(x))


def test_param_count_ignores_frozen() -> None:
    model = build_model("logreg")
    assert isinstance(model, nn.Sequential)
    model[1].bias.requires_grad_(False)
    assert param_count(model) == 7840


def test_unknown_model() -> None:
    with pytest.raises(ModelError, match="lenet, cnn_masuda, cnn_guo, resnet18, mlp, logreg"):
        build_model("resnet")
    assert issubclass(ModelError, ValueError)


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"in_channels": -1}, {"image_size": 0}])
def test_bad_sizes(kwargs: dict[str, int]) -> None:
    with pytest.raises(ModelError, match="positive integer"):
        build_model("mlp", **kwargs)


def test_lenet_too_small_image() -> None:
    with pytest.raises(ModelError, match="image_size=8"):
        build_model("lenet", image_size=8)


@pytest.mark.parametrize("name", ["cnn_masuda", "cnn_guo"])
def test_two_pool_cnn_too_small_image(name: str) -> None:
    with pytest.raises(ModelError, match=f"image_size=3 is too small for {name}"):
        build_model(name, image_size=3)


def test_check_input_reports_a_shape_mismatch_in_one_line() -> None:
    model = build_model("logreg")  # 1x28x28 only
    check_input(model, (1, 28, 28), 10)
    with pytest.raises(ModelError, match=r"^its forward pass fails \(mat1 and mat2 shapes cannot be multiplied"):
        check_input(model, (3, 32, 32), 10)
    with pytest.raises(ModelError, match=r"it outputs shape \[1, 10\], need \[1, 7\]"):
        check_input(model, (1, 28, 28), 7)
