"""Fixed-seed, randomly initialised CNN embedders for set-level image metrics (density and coverage).

The paper (section 6.2) computes density and coverage (Naeem et al., "Reliable Fidelity and Diversity
Metrics for Generative Models", ICML 2020) on embeddings of a *randomly initialised* Inception-V3;
Naeem et al. report that random embeddings work for these metrics (and avoid the ImageNet bias of
trained features on non-natural images such as micrographs).

Two networks are offered:

- ``"inception"``: ``torchvision.models.inception_v3(weights=None, aux_logits=False,
  init_weights=True)`` initialised under ``torch.manual_seed(seed)``; the 2048-d pool features of a
  299 x 299 input (gray replicated to three channels, bilinear resize). This is the paper's network.
- ``"random-cnn"``: srpsa's own fixed-seed random CNN (below), used when torchvision is not importable
  (the local CPU torch build here has no matching torchvision). 512-d features at the patch's own size.

``"auto"`` takes the first that works. The two give different numbers: compare results only when their
``embedder`` string is the same.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

EmbedderKind = Literal["auto", "inception", "random-cnn"]

#: Inception-V3's native input size.
INCEPTION_INPUT = 299
#: The random CNN downsamples by 32 (stride-2 stem, 4 max-pools): smaller inputs leave no pixel to pool.
RANDOM_CNN_MIN_INPUT = 32
#: (in, out) channels of the random CNN's 3 x 3 convolutions after the stem; the last gives the dimension.
_RANDOM_CNN_WIDTHS = ((32, 64), (64, 128), (128, 256), (256, 512))


@dataclass(frozen=True)
class Embedder:
    """A frozen network mapping gray patches (N, h, w) in [0, 1] to feature vectors (N, dim).

    Attributes
    ----------
    name
        ``"torchvision-inception_v3-random"`` or ``"srpsa-random-cnn"``.
    seed
        The torch seed the weights were drawn with.
    input_size
        Side the patches are resized to, or None when they are used at their own size.
    dim
        Feature dimension.
    """

    name: str
    seed: int
    input_size: int | None
    dim: int
    model: nn.Module
    device: str = "cpu"
    batch_size: int = 64

    @property
    def description(self) -> str:
        """``"<name>:seed=<seed>"``: the string results are labelled with."""
        return f"{self.name}:seed={self.seed}"

    def info(self) -> dict:
        """Network, seed, input size and dimension, for a result file."""
        return {
            "network": self.name,
            "seed": self.seed,
            "input_size": self.input_size if self.input_size is not None else "patch size (no resampling)",
            "dim": self.dim,
        }

    def embed(self, patches: np.ndarray) -> np.ndarray:
        """Embed gray patches of shape (N, h, w), values in [0, 1]; returns float64 (N, dim)."""
        if patches.ndim != 3:
            raise ValueError(f"patches must have shape (N, h, w), got {patches.shape}")
        out = np.empty((patches.shape[0], self.dim), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, patches.shape[0], self.batch_size):
                chunk = np.ascontiguousarray(patches[start:start + self.batch_size], dtype=np.float32)
                x = torch.from_numpy(chunk).to(self.device).unsqueeze(1)
                out[start:start + len(chunk)] = self._forward(x).double().cpu().numpy()
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # [0, 1] -> [-1, 1], the range Inception-V3 expects; for the random CNN it centres the input so
        # the first layer's ReLU sees both signs.
        x = x * 2.0 - 1.0
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.name.startswith("torchvision"):
            x = x.expand(-1, 3, -1, -1)  # gray -> RGB by replication
        return self.model(x).flatten(1)


class RandomCNN(nn.Module):
    """A small VGG-style stack with an Inception-like stem; used with random weights only.

    stride-2 3x3 conv + max-pool (as Inception-V3's stem), then four 3x3 conv + ReLU stages (3 with a
    max-pool after them), global average pooling -> 512-d. About 77 M multiply-adds for a 128 x 128
    patch, so a few thousand patches embed in seconds on one CPU core; Inception-V3 at 299 x 299 needs
    about 5.7 G.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, _RANDOM_CNN_WIDTHS[0][0], 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        for i, (cin, cout) in enumerate(_RANDOM_CNN_WIDTHS):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            if i < len(_RANDOM_CNN_WIDTHS) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # Kaiming (He) init keeps the activation scale through the ReLU stack, so the last layer
                # is neither saturated nor vanishing without any normalisation layer.
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def torchvision_available() -> bool:
    """Whether ``torchvision.models`` imports (it fails when torchvision does not match the torch build)."""
    try:
        import torchvision.models  # noqa: F401
    except Exception:  # ImportError, or a RuntimeError/OSError from mismatched compiled operators
        return False
    return True


def _build_inception() -> nn.Module:
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=False, init_weights=True)
    model.fc = nn.Identity()  # keep the 2048-d pool features (dropout is off in eval mode)
    return model


@functools.lru_cache(maxsize=4)
def make_embedder(seed: int = 0, kind: EmbedderKind = "auto", device: str = "cpu") -> Embedder:
    """A frozen random embedder, deterministic for ``seed`` (cached: building Inception-V3 takes seconds).

    ``kind="auto"`` uses torchvision's Inception-V3 when torchvision imports, else :class:`RandomCNN`.

    Raises
    ------
    ValueError
        For ``kind="inception"`` when torchvision is not importable, or an unknown kind.
    """
    if kind not in ("auto", "inception", "random-cnn"):
        raise ValueError(f"unknown embedder kind {kind!r} (expected auto, inception or random-cnn)")
    use_inception = kind == "inception" or (kind == "auto" and torchvision_available())
    if use_inception and not torchvision_available():
        raise ValueError("embedder 'inception' needs torchvision, which does not import here; use 'random-cnn'")
    # fork_rng: draw the weights from our own seed without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_inception() if use_inception else RandomCNN()
    model = model.eval().requires_grad_(False).to(device)
    if use_inception:
        return Embedder("torchvision-inception_v3-random", seed, INCEPTION_INPUT, 2048, model, device)
    return Embedder("srpsa-random-cnn", seed, None, _RANDOM_CNN_WIDTHS[-1][1], model, device)
