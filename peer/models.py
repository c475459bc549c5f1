"""Image classifiers the peers train, by short name.

Public API: :data:`MODELS` (registry name -> constructor), :func:`build_model`,
:func:`param_count` and :class:`ModelError`.

Every model takes ``in_channels`` x s x s images (1x28x28 for MNIST, 3x32x32 for
CIFAR-10) and uses only deterministic CPU ops (conv, linear, ReLU, max-pool, average
pool, group norm; no dropout and no batch norm, so the flattened parameter vector is the
model's whole state: nothing outside it, such as running statistics, is left out of the
chunk exchange). Random numbers are drawn only by the layers' initialisation, so a
caller that sets ``torch.manual_seed`` gets identical weights.

Parameter counts (10 classes):

========== ============ ============
model      1x28x28      3x32x32
========== ============ ============
lenet      61,706       62,006
cnn_masuda 1,663,370    2,156,490
cnn_guo    1,384,586    1,756,426
resnet18   11,172,810   11,173,962
mlp        50,890       197,322
logreg     7,850        30,730
========== ============ ============
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from protocol.errors import UserError

__all__ = [
    "MODELS",
    "CNNGuo",
    "CNNMasuda",
    "LeNet5",
    "ModelError",
    "build_model",
    "check_input",
    "param_count",
]


class ModelError(UserError):
    """A model cannot be built; the message says what is wrong and how to fix it."""


class LeNet5(nn.Module):
    """LeNet-5 style CNN (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning
    applied to document recognition", Proc. IEEE 86(11), 1998), with ReLU and max-pool.

    Architecture (for ``image_size`` s):
    conv(in, 6, 5, padding=p) -> ReLU -> maxpool 2 -> conv(6, 16, 5) -> ReLU -> maxpool 2
    -> flatten -> fc(16*f*f, 120) -> ReLU -> fc(120, 84) -> ReLU -> fc(84, num_classes),
    where the first convolution pads the image towards LeNet-5's 32x32 input,
    ``p = min(2, max(0, (32 - s) // 2))``, and ``f = ((s + 2p - 4) // 2 - 4) // 2``.
    1x28x28 (MNIST): p = 2, f = 5, 61,706 parameters for 10 classes. 3x32x32 (CIFAR-10):
    p = 0, the paper's C1 (28x28 maps) .. F6 layout exactly, f = 5, 62,006 parameters.
    """

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        pad = min(2, max(0, (32 - image_size) // 2))
        f = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if f < 1:
            raise ModelError(
                f"image_size={image_size} is too small for lenet; use image_size >= 12 or a flat model (mlp, logreg)"
            )
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * f * f, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, num_classes)`` for images of shape ``(B, C, s, s)``."""
        return self.classifier(self.features(x))


def _two_pool_size(name: str, image_size: int) -> int:
    """Side of the feature maps after two 'same' 5x5 convolutions, each followed by a 2x2
    max-pool (ModelError when the image is too small for them)."""
    f = image_size // 2 // 2
    if f < 1:
        raise ModelError(
            f"image_size={image_size} is too small for {name}; use image_size >= 4 or a flat model (mlp, logreg)"
        )
    return f


class _TwoConvCNN(nn.Module):
    """conv(in, c1, 5, same) -> ReLU -> maxpool 2 -> conv(c1, c2, 5, same) -> ReLU -> maxpool 2
    -> flatten -> fc(c2*f*f, h1) -> ReLU -> ... -> fc(h_last, num_classes), ``f = s // 4``:
    the shape shared by :class:`CNNMasuda` and :class:`CNNGuo`."""

    def __init__(
        self,
        name: str,
        channels: tuple[int, int],
        hidden: tuple[int, ...],
        *,
        in_channels: int,
        image_size: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        f = _two_pool_size(name, image_size)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        layers: list[nn.Module] = [nn.Flatten()]
        width = c2 * f * f
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(B, num_classes)`` for images of shape ``(B, C, s, s)``."""
        return self.classifier(self.features(x))


class CNNMasuda(_TwoConvCNN):
    """CNN with two convolutional and two fully connected layers, the CIFAR-10 model of
    Masuda & Shudo, loss-based Byzantine resilience for decentralized learning (the
    rule of :mod:`peer.defenses.loss_threshold`).

    The paper describes the model as two convolutional and two fully connected layers;
    its widths were not available to us, so byzemu uses the widths of the
    well-known CNN of this shape, McMahan et al., "Communication-efficient learning of
    deep networks from decentralized data", AISTATS 2017 (FedAvg's "CNN"):
    conv(in, 32, 5, padding=2) -> ReLU -> maxpool 2 -> conv(32, 64, 5, padding=2) -> ReLU
    -> maxpool 2 -> flatten -> fc(64*f*f, 512) -> ReLU -> fc(512, num_classes), with
    ``f = s // 4``. 1x28x28: 1,663,370 parameters (the count McMahan et al. report);
    3x32x32 (CIFAR-10): 2,156,490 parameters.
    """

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__(
            "cnn_masuda",
            (32, 64),
            (512,),
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
        )


class CNNGuo(_TwoConvCNN):
    """CNN with two convolutional layers, each followed by max-pooling, and three fully
    connected layers: the CIFAR-10 model of UBAR (Guo et al., "Byzantine-resilient
    decentralized stochastic gradient descent", IEEE TCSVT 2022; the rule of
    :mod:`peer.defenses.ubar`).

    The paper gives the layer types, not their widths; those were not available to us,
    so byzemu uses the widths of the classic CIFAR-10 CNN of this shape, TensorFlow's
    CIFAR-10 tutorial model (after Krizhevsky's cuda-convnet: 64 5x5 filters twice, then
    384 and 192 hidden units), without its local response normalisation:
    conv(in, 64, 5, padding=2) -> ReLU -> maxpool 2 -> conv(64, 64, 5, padding=2) -> ReLU
    -> maxpool 2 -> flatten -> fc(64*f*f, 384) -> ReLU -> fc(384, 192) -> ReLU
    -> fc(192, num_classes), with ``f = s // 4``. 3x32x32 (CIFAR-10): 1,756,426
    parameters; 1x28x28: 1,384,586.
    """

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__(
            "cnn_guo",
            (64, 64),
            (384, 192),
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
        )


#: Groups of every GroupNorm layer in :func:`_resnet18` (Reddi et al. 2021 use 2).
RESNET_NORM_GROUPS = 2


def _lenet(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998); see :class:`LeNet5`."""
    return LeNet5(in_channels=in_channels, image_size=image_size, num_classes=num_classes)


def _cnn_masuda(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Two conv + two fully connected layers (Masuda & Shudo); see :class:`CNNMasuda`."""
    return CNNMasuda(in_channels=in_channels, image_size=image_size, num_classes=num_classes)


def _cnn_guo(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Two conv/max-pool + three fully connected layers (Guo et al., UBAR); see :class:`CNNGuo`."""
    return CNNGuo(in_channels=in_channels, image_size=image_size, num_classes=num_classes)


def _resnet18(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """ResNet-18 (He, Zhang, Ren & Sun, "Deep residual learning for image recognition",
    CVPR 2016) from ``torchvision.models.resnet18(num_classes=...)``, in its usual CIFAR
    form and with group norm instead of batch norm.

    * Stem: torchvision's ImageNet stem (7x7 stride-2 convolution, then a 3x3 stride-2
      max-pool) would shrink a 32x32 image to 8x8 before the first residual stage and
      to 1x1 at the last; like the CIFAR ResNets of He et al. (Sec. 4.2) and most
      CIFAR-10 code, the stem here is one 3x3 stride-1 convolution (``in_channels`` ->
      64, no bias) and no max-pool, so the stages see 32, 16, 8 and 4 pixel maps.
    * Normalisation: every BatchNorm2d is a GroupNorm with 2 groups (Wu & He, "Group
      normalization", ECCV 2018), as in the ResNet-18 of Reddi et al., "Adaptive
      federated optimization", ICLR 2021, and as Hsieh et al., "The non-IID data
      quagmire of decentralized machine learning", ICML 2020 recommend for decentralized
      training. Batch norm keeps running statistics in buffers, which are not
      parameters: they would not be chunked, exchanged or aggregated, each peer's would
      drift with its own (possibly non-IID) data, and a model rebuilt from a parameter
      vector (the loss probe of loss-based defenses) would evaluate with different
      statistics. Group norm has no buffers and normalises each sample on its own, so
      the parameter vector is the whole model and a sample's output never depends on the
      rest of its batch. Its weight and bias are parameters like batch norm's, so the
      parameter count equals the batch-norm network's.

    Initialisation is torchvision's (Kaiming-normal convolutions, norm weight 1 and bias
    0), the replaced stem included. 3x32x32 (CIFAR-10), 10 classes: 11,173,962
    parameters; 1x28x28: 11,172,810. Slow on CPU: about 0.56 G multiply-adds per 32x32
    image forward.
    """
    from torchvision.models import resnet18

    def norm(channels: int) -> nn.Module:
        return nn.GroupNorm(RESNET_NORM_GROUPS, channels)

    model = resnet18(num_classes=num_classes, norm_layer=norm)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def _mlp(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """One-hidden-layer perceptron: flatten -> fc(in*s*s, 64) -> ReLU -> fc(64, num_classes).

    The classic multilayer perceptron (Rumelhart, Hinton & Williams, "Learning
    representations by back-propagating errors", Nature 323, 1986), sized small.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, 64),
        nn.ReLU(),
        nn.Linear(64, num_classes),
    )


def _logreg(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Multinomial logistic regression: flatten -> fc(in*s*s, num_classes).

    Convex in its weights; trained with cross-entropy it is softmax regression.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, num_classes),
    )


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet": _lenet,
    "cnn_masuda": _cnn_masuda,
    "cnn_guo": _cnn_guo,
    "resnet18": _resnet18,
    "mlp": _mlp,
    "logreg": _logreg,
}


def build_model(name: str, *, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> nn.Module:
    """Build model ``name`` from :data:`MODELS` for square ``in_channels`` x s x s images.

    Weights come from the layers' initialisation (PyTorch's default; torchvision's for
    ``resnet18``); set ``torch.manual_seed`` before calling for reproducible weights.

    Raises:
        ModelError: unknown name, or a non-positive / too small size.
    """
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")
    for key, value in (("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"model.{key}={value!r} is invalid; use a positive integer")
    return MODELS[name](in_channels=in_channels, image_size=image_size, num_classes=num_classes)


def check_input(model: nn.Module, image_shape: tuple[int, int, int], num_classes: int) -> None:
    """Run ``model`` once on a zero image of shape ``image_shape`` (C, H, W).

    Raises:
        ModelError: the forward pass fails, or its output is not ``(1, num_classes)``.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *image_shape))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"its forward pass fails ({detail})") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (1, num_classes):
        raise ModelError(f"it outputs shape {list(out.shape)}, need [1, {num_classes}]")


def param_count(model: nn.Module) -> int:
    """Total number of trainable parameters (``requires_grad``) in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
