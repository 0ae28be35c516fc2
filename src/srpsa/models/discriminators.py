"""Discriminators of the two GANs: the conditional 70x70 PatchGAN of Pix2Pix and ESRGAN's VGG-style critic.

Both return raw logits (no sigmoid): the losses in ``srpsa.losses.gan`` apply BCE-with-logits, least
squares or hinge, or the relativistic average form, themselves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from srpsa.models.gan_layers import LEAK, down_stage, init_conv, init_norm, make_norm, maybe_spectral_norm

__all__ = ["PatchDiscriminator", "VGGDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Conditional 70x70 PatchGAN (Isola et al. 2017; Li & Wand 2016) with optional SN and anti-aliasing.

    Parameters
    ----------
    in_channels : int
        Channels of ``cat(condition, image)`` (2 for grayscale OM + SEM).
    ndf : int
        Feature maps of the first layer (64).
    n_layers : int
        Stride-2 layers (3 gives the 70x70 receptive field).
    norm : {"batch", "instance", "none"}
        Normalisation of the inner layers. The SN configs use ``"none"``, as SN-GAN/SAGAN discriminators do.
    spectral_norm : bool
        Spectral normalisation of every convolution (sec 3.2, 6.1.2).
    antialias : bool
        Stride-2 layers become ``conv(stride 1) -> norm -> LeakyReLU -> BlurPool`` (sec 4.2); this widens
        the receptive field (91 px for ``n_layers=3`` and ``aa_kernel=3``).
    aa_kernel : int
        Kernel of the stride-1 convolutions of anti-aliased layers (odd).

    Notes
    -----
    The output is a map of logits, one per overlapping patch. Inputs need sides of at least
    ``2**n_layers * 3`` pixels (24 for the default) so the two final 4x4 convs have something to see.
    """

    def __init__(
        self,
        in_channels: int = 2,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        spectral_norm: bool = False,
        antialias: bool = False,
        aa_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.model_args: dict[str, Any] = dict(
            in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm, spectral_norm=spectral_norm,
            antialias=antialias, aa_kernel=aa_kernel,
        )  # fmt: skip
        layers: list[nn.Module] = []
        cin = in_channels
        for n in range(n_layers):
            cout = ndf * min(2**n, 8)
            layer_norm = "none" if n == 0 else norm  # pix2pix: no norm on the first layer
            layers.append(
                down_stage(cin, cout, norm=layer_norm, sn=spectral_norm, antialias=antialias, aa_kernel=aa_kernel)
            )
            cin = cout
        cout = ndf * min(2**n_layers, 8)
        layers += [
            init_conv(cin, cout, 4, 1, 1, bias=norm != "batch", sn=spectral_norm),
            init_norm(norm, cout),
            nn.LeakyReLU(LEAK),
            init_conv(cout, 1, 4, 1, 1, bias=True, sn=spectral_norm),
        ]
        self.model = nn.Sequential(*layers)
        # (kernel, stride) of every layer that grows the receptive field, input to output
        per_down = [(aa_kernel, 1), (5, 2)] if antialias else [(4, 2)]
        self._rf_layers = per_down * n_layers + [(4, 1), (4, 1)]

    @property
    def receptive_field(self) -> int:
        """Side in input pixels of the patch one output logit sees (70 for the default)."""
        r = 1
        for k, s in reversed(self._rf_layers):
            r = (r - 1) * s + k
        return r

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Patch logits (B, 1, h, w) for ``image`` given ``condition`` (same size, generator range)."""
        return self.model(torch.cat([condition, image], dim=1))


class VGGDiscriminator(nn.Module):
    """VGG-style discriminator of ESRGAN ("VGG128"), made size-agnostic by global average pooling.

    Each stage is ``conv3x3 -> norm -> LeakyReLU -> conv4x4/2 -> norm -> LeakyReLU`` (no norm on the very
    first conv); widths ``nf * min(2**i, 8)``. ESRGAN flattens a fixed 4x4x512 map (128 px inputs only);
    here a global average pool feeds the two dense layers instead, so the same weights score the paper's
    512 px HR patches, smaller CPU patches or whole images (any side >= ``2**num_stages``). The output is
    one logit per image, as the relativistic average loss needs.

    Parameters
    ----------
    in_channels : int
        1 for grayscale HR images.
    nf : int
        Width of the first stage (64).
    num_stages : int
        Stride-2 stages (5, as VGG128).
    norm : {"batch", "instance", "none"}
        ``"batch"`` as ESRGAN; ``"none"`` for the spectrally normalised variants.
    spectral_norm : bool
        Spectrally normalise every conv and linear layer (sec 4.1).
    hidden : int
        Width of the hidden dense layer (100 in ESRGAN).
    """

    def __init__(
        self,
        in_channels: int = 1,
        nf: int = 64,
        num_stages: int = 5,
        norm: str = "batch",
        spectral_norm: bool = False,
        hidden: int = 100,
    ) -> None:
        super().__init__()
        self.model_args: dict[str, Any] = dict(
            in_channels=in_channels, nf=nf, num_stages=num_stages, norm=norm, spectral_norm=spectral_norm,
            hidden=hidden,
        )  # fmt: skip
        self.num_stages = num_stages
        sn = spectral_norm
        bias = norm != "batch"
        layers: list[nn.Module] = []
        cin = in_channels
        for i in range(num_stages):
            cout = nf * min(2**i, 8)
            first = nn.Conv2d(cin, cout, 3, 1, 1, bias=True if i == 0 else bias)
            layers += [maybe_spectral_norm(first, sn)]
            if i > 0:
                layers.append(make_norm(norm, cout))
            layers += [
                nn.LeakyReLU(LEAK),
                maybe_spectral_norm(nn.Conv2d(cout, cout, 4, 2, 1, bias=bias), sn),
                make_norm(norm, cout),
                nn.LeakyReLU(LEAK),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            maybe_spectral_norm(nn.Linear(cin, hidden), sn),
            nn.LeakyReLU(LEAK),
            maybe_spectral_norm(nn.Linear(hidden, 1), sn),
        )

    @property
    def min_size(self) -> int:
        """Smallest input side (every stride-2 stage must see at least 2 pixels)."""
        return 2**self.num_stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per image, shape (B, 1)."""
        return self.head(torch.flatten(self.pool(self.features(x)), 1))
