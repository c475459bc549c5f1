"""One split of an image-classification dataset in memory: uint8 images, int64 labels and
the normalisation constants the model sees them with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ImageData:
    """One split of an image-classification dataset held in memory.

    Attributes:
        images: uint8 tensor of shape ``(N, H, W)`` (grayscale) or ``(N, C, H, W)``
            (channels first, e.g. RGB).
        labels: int64 tensor of shape ``(N,)``.
        num_classes: number of classes; labels lie in ``0 .. num_classes - 1``.
        mean: normalisation mean on the ``[0, 1]`` pixel scale: one float for every
            channel, or a tuple with one value per channel (``(N, C, H, W)`` images).
        std: normalisation standard deviation on the ``[0, 1]`` pixel scale, same form.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image, as the model sees it."""
        if self.images.dim() == 3:
            return (1, int(self.images.shape[1]), int(self.images.shape[2]))
        c, h, w = (int(v) for v in self.images.shape[1:])
        return (c, h, w)

    def tensors(
        self, index: torch.Tensor | np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return model-ready ``(x, y)`` for the samples selected by ``index``.

        Args:
            index: integer indices (tensor or numpy array) or a boolean mask; ``None``
                selects every sample.

        Returns:
            ``x``: float32 tensor of shape ``(B, C, H, W)`` (``C = 1`` for ``(N, H, W)``
            images) normalised as ``(pixel / 255 - mean) / std``, per channel when
            ``mean``/``std`` are tuples; ``y``: int64 tensor of shape ``(B,)``.
        """
        if index is None:
            images, labels = self.images, self.labels
        else:
            idx = torch.as_tensor(index)
            if idx.dtype != torch.bool:
                idx = idx.to(torch.int64)
            images, labels = self.images[idx], self.labels[idx]
        if isinstance(self.mean, tuple) or isinstance(self.std, tuple):
            channels = self.image_shape[0]
            mean = torch.tensor(self.mean, dtype=torch.float32).expand(channels).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32).expand(channels).view(1, -1, 1, 1)
            x = images.to(torch.float32, copy=True).div_(255.0)
            if x.dim() == 3:
                x = x.unsqueeze(1)
            return x.sub_(mean).div_(std), labels.to(torch.int64)
        x = images.to(torch.float32, copy=True).div_(255.0).sub_(self.mean).div_(self.std)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return x, labels.to(torch.int64)

    def __len__(self) -> int:
        """Number of samples."""
        return int(self.labels.shape[0])
