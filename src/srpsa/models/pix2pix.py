"""Pix2Pix U-Net generator for OM -> SEM translation (sec 3.2, 4, 5.2.1); its PatchGAN is in discriminators.py.

Three ablations share this code (see ``configs/translate/``): the default pix2pix (strided convolutions),
+ spectral normalisation (``spectral_norm=True``), and AASNA (+ ``antialias=True`` and
``attention_levels=3``).

Intensity range
---------------
Images enter and leave the models in the generator's output range: ``[-1, 1]`` with
``output_activation="tanh"`` (pix2pix's convention, the default) or ``[0, 1]`` with ``"sigmoid"``.
Use :func:`to_generator_range` / :func:`from_generator_range` to convert from / to the package's
``[0, 1]`` float images. The discriminator sees the condition and the (real or generated) image in the
same range.

Layer order
-----------
Encoder stages are written post-activation, ``conv -> norm -> LeakyReLU(0.2)``, and decoder stages
pre-activation, ``ReLU -> ConvTranspose -> norm [-> dropout]`` applied to ``cat(skip, up)``. Because
``ReLU(LeakyReLU(h)) == ReLU(h)`` this computes the same function as pix2pix's U-Net (whose skips
carry the pre-activation ``h``; only the two un-normalised encoder convs keep a bias here) while giving
anti-aliasing a natural place: ``conv(stride 1) -> norm -> LeakyReLU -> BlurPool(stride 2)``, the
ConvBlurPool order of Zhang (2019). The blur sits after the non-linearity because the non-linearity itself
creates new high frequencies; blurring before it would let those alias at the sub-sampling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from srpsa.errors import InputError
from srpsa.models.gan_layers import SelfAttention2d, down_stage, init_norm

__all__ = ["OUTPUT_ACTIVATIONS", "Pix2PixGenerator", "from_generator_range", "to_generator_range"]

OUTPUT_ACTIVATIONS = ("tanh", "sigmoid")

_INIT_STD = 0.02  # pix2pix initialises convs with N(0, 0.02) (Isola et al.)


def to_generator_range(x01: torch.Tensor, output_activation: str = "tanh") -> torch.Tensor:
    """Map a ``[0, 1]`` image to the range the generator works in (``[-1, 1]`` for tanh)."""
    _check_activation(output_activation)
    return x01 * 2.0 - 1.0 if output_activation == "tanh" else x01


def from_generator_range(y: torch.Tensor, output_activation: str = "tanh") -> torch.Tensor:
    """Map a generator output back to ``[0, 1]`` (inverse of :func:`to_generator_range`)."""
    _check_activation(output_activation)
    return (y + 1.0) * 0.5 if output_activation == "tanh" else y


def _check_activation(name: str) -> None:
    if name not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {name!r}")


class Pix2PixGenerator(nn.Module):
    """U-Net generator of pix2pix (Isola et al. 2017) with the paper's AASNA options (Fig. 5).

    Parameters
    ----------
    in_channels : int
        Input channels (1: grayscale OM images generalised better than RGB, sec 5.2.1).
    out_channels : int
        Output channels (1: grayscale SEM).
    ngf : int
        Feature maps of the first level; level ``k`` has ``ngf * min(2**(k-1), max_mult)``.
    depth : int
        Number of down-sampling levels (8 = pix2pix's ``unet_256``: a 512 input reaches 2x2). Inputs must
        have sides divisible by ``2**depth``.
    max_mult : int
        Cap of the channel multiplier (8 in pix2pix).
    norm : {"batch", "instance", "none"}
        Normalisation in all but the outermost and innermost encoder levels and in the decoder.
    dropout : float
        Dropout probability in the decoder levels just above the bottleneck that have ``ngf * max_mult``
        channels (pix2pix: 0.5 on three levels for depth 8). Active only in training mode.
    output_activation : {"tanh", "sigmoid"}
        ``tanh``: images in [-1, 1]; ``sigmoid``: images in [0, 1] (see module docstring).
    spectral_norm : bool
        Spectral normalisation of every down-sampling convolution (sec 4.1) and of the attention convs.
    antialias : bool
        Replace each stride-2 conv by ``conv(stride 1, aa_kernel) -> norm -> LeakyReLU -> BlurPool`` with a
        binomial-5 filter (sec 4.2, 6.1.3).
    aa_kernel : int
        Kernel of the stride-1 convolutions in anti-aliased stages (odd, so features stay centred; 3 as in
        Zhang's anti-aliased VGG/ResNets, since the 4x4 kernel of the strided version would need
        asymmetric padding at stride 1).
    attention_levels : int
        Number of decoder levels, from the smallest, followed by a SAGAN self-attention block (3 in
        AASNA, sec 4.3).
    attention_reduction : int
        Channel reduction of the attention's f, g, h convolutions (8 in SAGAN).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        ngf: int = 64,
        depth: int = 8,
        max_mult: int = 8,
        norm: str = "batch",
        dropout: float = 0.5,
        output_activation: str = "tanh",
        spectral_norm: bool = False,
        antialias: bool = False,
        aa_kernel: int = 3,
        attention_levels: int = 0,
        attention_reduction: int = 8,
    ) -> None:
        super().__init__()
        _check_activation(output_activation)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        if not 0 <= attention_levels < depth:
            raise ValueError(f"attention_levels must be in [0, depth), got {attention_levels}")
        if aa_kernel % 2 != 1:
            raise ValueError(f"aa_kernel must be odd, got {aa_kernel}")
        self.model_args: dict[str, Any] = dict(
            in_channels=in_channels, out_channels=out_channels, ngf=ngf, depth=depth, max_mult=max_mult,
            norm=norm, dropout=dropout, output_activation=output_activation, spectral_norm=spectral_norm,
            antialias=antialias, aa_kernel=aa_kernel, attention_levels=attention_levels,
            attention_reduction=attention_reduction,
        )  # fmt: skip
        self.depth = depth
        self.output_activation = output_activation
        ch = [ngf * min(2**k, max_mult) for k in range(depth)]  # ch[k-1] = channels of level k

        # Encoder: level 1 and the innermost level carry no norm (pix2pix), the others do.
        self.encoder = nn.ModuleList()
        for k in range(depth):
            cin = in_channels if k == 0 else ch[k - 1]
            level_norm = "none" if k in (0, depth - 1) else norm
            self.encoder.append(
                down_stage(cin, ch[k], norm=level_norm, sn=spectral_norm, antialias=antialias, aa_kernel=aa_kernel)
            )

        # Decoder: stage k (k = depth .. 1) up-samples level k to the resolution of level k-1.
        self.decoder = nn.ModuleList()
        self.attention = nn.ModuleList()
        for k in range(depth, 0, -1):
            cin = ch[k - 1] if k == depth else 2 * ch[k - 1]
            cout = out_channels if k == 1 else ch[k - 2]
            up = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=(k == 1 or norm != "batch"))
            nn.init.normal_(up.weight, 0.0, _INIT_STD)
            if up.bias is not None:
                nn.init.zeros_(up.bias)
            layers: list[nn.Module] = [nn.ReLU(), up]
            if k == 1:
                layers.append(nn.Tanh() if output_activation == "tanh" else nn.Sigmoid())
            else:
                layers.append(init_norm(norm, cout))
                # pix2pix: dropout on the max-width levels between the bottleneck and the first narrower one
                if dropout > 0 and k < depth and cout == ch[-1] and ch[k - 1] == ch[-1]:
                    layers.append(nn.Dropout(dropout))
            self.decoder.append(nn.Sequential(*layers))
            use_attention = k > 1 and (depth - k) < attention_levels
            self.attention.append(
                SelfAttention2d(cout, attention_reduction, spectral_norm) if use_attention else nn.Identity()
            )

    @property
    def size_multiple(self) -> int:
        """Input sides must be a multiple of this (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (B, in_channels, H, W) in the generator's range to (B, out_channels, H, W)."""
        m = self.size_multiple
        # skipped while tracing (ONNX export): shapes are symbolic there and the check would be frozen
        if not torch.jit.is_tracing() and (x.shape[-1] % m or x.shape[-2] % m):
            raise InputError(
                f"Pix2Pix input of size {tuple(x.shape[-2:])} must have sides divisible by 2**depth = {m}"
            )
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        y = skips.pop()  # the bottleneck has no skip connection of its own
        for stage, attn in zip(self.decoder, self.attention, strict=True):
            y = attn(stage(y))
            if skips:
                y = torch.cat([skips.pop(), y], dim=1)
        return y
