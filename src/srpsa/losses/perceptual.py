"""Perceptual loss of ESRGAN (sec 3.3): L1 distance between VGG-19 conv5_4 features before activation."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srpsa.models.vgg import VGG19Features, build_vgg19_features

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PerceptualLoss"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PerceptualLoss(nn.Module):
    """``mean |phi(fake) - phi(target)|`` with ``phi`` a frozen VGG-19 truncated at ``extractor.last_layer``.

    Parameters
    ----------
    extractor : VGG19Features
        Frozen feature extractor (see :func:`srpsa.models.vgg.build_vgg19_features`).
    normalize : bool
        Apply ImageNet mean/std normalisation. Only meaningful for ImageNet-pretrained weights; a random
        extractor sees the ``[0, 1]`` image directly.
    criterion : {"l1", "l2"}
        Distance between feature maps (L1 in ESRGAN and the paper).
    source : str
        Where the extractor's weights came from (kept for run metadata as ``perceptual_source``).

    Notes
    -----
    Inputs are (B, 1 or 3, H, W) images in ``[0, 1]``; grayscale is replicated to three channels. The
    target's features are computed without gradient.
    """

    def __init__(
        self, extractor: VGG19Features, normalize: bool, criterion: str = "l1", source: str = "unknown"
    ) -> None:
        super().__init__()
        if criterion not in ("l1", "l2"):
            raise ValueError(f"criterion must be 'l1' or 'l2', got {criterion!r}")
        self.extractor = extractor
        self.normalize = normalize
        self.criterion = criterion
        self.source = source
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def build(
        cls, weights: str | Path | None = None, layer: str = "conv5_4", seed: int = 0, criterion: str = "l1"
    ) -> PerceptualLoss:
        """Perceptual loss from local VGG-19 weights, or a seeded random VGG-19 when ``weights`` is empty."""
        extractor, source = build_vgg19_features(weights, layer, seed)
        return cls(extractor, normalize=bool(weights), criterion=criterion, source=source)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps of ``x`` (``[0, 1]`` images, 1 or 3 channels)."""
        return self.extractor(self._prepare(x))

    def forward(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f_fake = self.features(fake)
        with torch.no_grad():
            f_real = self.features(target)
        if self.criterion == "l1":
            return F.l1_loss(f_fake, f_real)
        return F.mse_loss(f_fake, f_real)

    def extra_repr(self) -> str:
        return f"source={self.source!r}, normalize={self.normalize}, criterion={self.criterion!r}"
