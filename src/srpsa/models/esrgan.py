"""ESRGAN generator (RRDBNet, Wang et al. 2018) for the 4x super-resolution stage (sec 3.3, 4.1, 5.2.2).

The paper's "Improved ESRGAN" / "ESRGAN-SN" is RRDBNet with 23 residual-in-residual dense blocks and
spectral normalisation on the generator's convolutions (and on the discriminator, see
``discriminators.py``); ``spectral_norm=False`` gives the plain ESRGAN.

Intensity range: images are ``[0, 1]`` in and out. The last layer is linear (as in ESRGAN), so outputs
can leave ``[0, 1]`` slightly; clamp at inference, never inside the training graph.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srpsa.models.gan_layers import maybe_spectral_norm

__all__ = ["RRDB", "RRDBNet", "ResidualDenseBlock"]

_LEAK = 0.2
# ESRGAN scales its Kaiming initialisation by 0.1 so that each residual branch starts close to zero and a
# deep stack of blocks is initially near the identity (Wang et al. 2018, sec 3.3 "smaller initialization").
_INIT_SCALE = 0.1


def _conv3(cin: int, cout: int, sn: bool, dense: bool = False) -> nn.Module:
    conv = nn.Conv2d(cin, cout, 3, 1, 1)
    if dense:  # only the dense-block convs get ESRGAN's scaled init; the others keep torch's default
        nn.init.kaiming_normal_(conv.weight, a=0.0, mode="fan_in")
        with torch.no_grad():
            conv.weight.mul_(_INIT_SCALE)
        nn.init.zeros_(conv.bias)
    # With SN the 0.1 scale is normalised away (W / sigma(W)); the residual scaling still keeps each
    # branch small.
    return maybe_spectral_norm(conv, sn)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; ``y = x + res_scale * conv5(...)``.

    Parameters
    ----------
    nf : int
        Feature maps entering and leaving the block (64).
    gc : int
        Growth channels added by each of the first four convs (32).
    res_scale : float
        Residual scaling beta (0.2 in ESRGAN).
    spectral_norm : bool
        Spectrally normalise the five convs.
    """

    def __init__(self, nf: int = 64, gc: int = 32, res_scale: float = 0.2, spectral_norm: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.convs = nn.ModuleList(_conv3(nf + i * gc, gc, spectral_norm, dense=True) for i in range(4))
        self.conv5 = _conv3(nf + 4 * gc, nf, spectral_norm, dense=True)
        self.act = nn.LeakyReLU(_LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(self.act(conv(torch.cat(feats, dim=1))))
        return x + self.res_scale * self.conv5(torch.cat(feats, dim=1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and an outer scaled residual."""

    def __init__(self, nf: int = 64, gc: int = 32, res_scale: float = 0.2, spectral_norm: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.blocks = nn.Sequential(*(ResidualDenseBlock(nf, gc, res_scale, spectral_norm) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.blocks(x)


class RRDBNet(nn.Module):
    """ESRGAN generator: conv, RRDB trunk with a long skip, then nearest-neighbour up-sampling stages.

    Parameters
    ----------
    in_channels, out_channels : int
        1 for grayscale (the Pix2Pix output is grayscale).
    nf : int
        Trunk feature maps (64).
    gc : int
        Growth channels of the dense blocks (32).
    num_blocks : int
        Number of RRDBs (23 in the paper, sec 5.2.2).
    scale : int
        Up-sampling factor, a power of two (4: 128 -> 512 in the paper). Each factor 2 is a nearest-
        neighbour up-sample followed by a 3x3 conv and LeakyReLU (no transposed convs: fewer checkerboard
        artefacts).
    res_scale : float
        Residual scaling inside and around the dense blocks (0.2).
    spectral_norm : bool
        Spectrally normalise every convolution of the generator (sec 4.1, "ESRGAN-SN").
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        nf: int = 64,
        gc: int = 32,
        num_blocks: int = 23,
        scale: int = 4,
        res_scale: float = 0.2,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if scale < 1 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two, got {scale}")
        self.model_args: dict[str, Any] = dict(
            in_channels=in_channels, out_channels=out_channels, nf=nf, gc=gc, num_blocks=num_blocks,
            scale=scale, res_scale=res_scale, spectral_norm=spectral_norm,
        )  # fmt: skip
        self.scale = scale
        self.conv_first = _conv3(in_channels, nf, spectral_norm)
        self.body = nn.Sequential(*(RRDB(nf, gc, res_scale, spectral_norm) for _ in range(num_blocks)))
        self.conv_body = _conv3(nf, nf, spectral_norm)
        self.up_convs = nn.ModuleList(_conv3(nf, nf, spectral_norm) for _ in range(int(math.log2(scale))))
        self.conv_hr = _conv3(nf, nf, spectral_norm)
        self.conv_last = _conv3(nf, out_channels, spectral_norm)
        self.act = nn.LeakyReLU(_LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x`` (B, C, h, w) in [0, 1] to (B, C, scale*h, scale*w)."""
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in self.up_convs:
            feat = self.act(conv(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        return self.conv_last(self.act(self.conv_hr(feat)))
