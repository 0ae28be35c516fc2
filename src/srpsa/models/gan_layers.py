"""Building blocks shared by the paper's two GANs (sec 4): normalisation, spectral norm, BlurPool, self-attention.

Everything here is a plain ``nn.Module`` or a small helper so that inference can rebuild a generator from
its ``model_args`` without importing anything from the training stack.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _torch_spectral_norm

__all__ = [
    "NORM_KINDS",
    "BlurPool2d",
    "SelfAttention2d",
    "binomial_filter",
    "down_stage",
    "has_spectral_norm",
    "init_conv",
    "init_norm",
    "make_norm",
    "maybe_spectral_norm",
    "strip_spectral_norm",
]

#: Normalisation layers a generator/discriminator can use ("none" = identity).
NORM_KINDS = ("batch", "instance", "none")

# pix2pix/DCGAN initialise convs with N(0, 0.02) and batch-norm scales with N(1, 0.02) (Isola et al.).
INIT_STD = 0.02
LEAK = 0.2  # LeakyReLU slope of pix2pix/DCGAN encoders and discriminators


def make_norm(kind: str, channels: int) -> nn.Module:
    """Return the normalisation layer ``kind`` for ``channels`` feature maps.

    Parameters
    ----------
    kind : {"batch", "instance", "none"}
        ``"batch"`` is pix2pix's default; ``"instance"`` is its affine-free alternative; ``"none"`` is used
        by spectrally normalised discriminators (SN-GAN/SAGAN discriminators carry no batch norm, because
        batch norm's 1/std rescaling would undo the Lipschitz bound SN provides).
    channels : int
        Number of feature maps.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORM_KINDS}, got {kind!r}")


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module``'s ``weight`` with spectral normalisation (Miyato et al. 2018) when ``enabled``.

    One power iteration per training forward (Lipschitz constant 1, sec 5), via torch's parametrisation
    API, so the state dict holds ``parametrizations.weight.original`` plus the ``_u``/``_v`` vectors.
    """
    if not enabled:
        return module
    return _torch_spectral_norm(module, n_power_iterations=1)


def has_spectral_norm(module: nn.Module) -> bool:
    """True if ``module`` itself (not its children) has a spectrally normalised ``weight``."""
    return parametrize.is_parametrized(module, "weight")


def strip_spectral_norm(model: nn.Module) -> nn.Module:
    """Bake every spectral-norm parametrisation into a plain weight, in place, and return ``model``.

    The baked weight is ``W / sigma`` with the current power-iteration vectors, i.e. exactly what the model
    computes in eval mode. Afterwards the state dict has plain ``weight`` keys and loads into the same
    architecture built with ``spectral_norm=False``: inference and ONNX export need no parametrisation.
    """
    was_training = model.training
    model.eval()  # eval: use the stored u, v without another power iteration
    with torch.no_grad():
        for module in model.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    model.train(was_training)
    return model


def init_conv(cin: int, cout: int, k: int, s: int, p: int, *, bias: bool, sn: bool) -> nn.Module:
    """A ``Conv2d`` initialised as in pix2pix (N(0, 0.02), zero bias), spectrally normalised if ``sn``.

    SN is attached after the initialisation so that its power iteration starts from the final weight.
    """
    conv = nn.Conv2d(cin, cout, k, s, p, bias=bias)
    nn.init.normal_(conv.weight, 0.0, INIT_STD)
    if bias:
        nn.init.zeros_(conv.bias)
    return maybe_spectral_norm(conv, sn)


def init_norm(kind: str, channels: int) -> nn.Module:
    """:func:`make_norm` with pix2pix's initialisation of batch-norm scales (N(1, 0.02))."""
    layer = make_norm(kind, channels)
    if isinstance(layer, nn.BatchNorm2d):
        nn.init.normal_(layer.weight, 1.0, INIT_STD)
        nn.init.zeros_(layer.bias)
    return layer


def down_stage(
    cin: int, cout: int, *, norm: str, sn: bool, antialias: bool, aa_kernel: int = 3
) -> nn.Sequential:
    """One down-sampling stage of the U-Net encoder or the PatchGAN, halving the resolution.

    ``antialias=False``: ``Conv(4, stride 2, pad 1) -> norm -> LeakyReLU(0.2)`` (pix2pix).
    ``antialias=True``: ``Conv(aa_kernel, stride 1) -> norm -> LeakyReLU(0.2) -> BlurPool(stride 2)``,
    Zhang's ConvBlurPool order: the blur comes after the non-linearity because the non-linearity creates
    new high frequencies that would otherwise alias at the sub-sampling. ``sn`` spectrally normalises the
    (down-sampling) conv; a conv followed by batch norm gets no bias, as in pix2pix.
    """
    bias = norm != "batch"
    if antialias:
        return nn.Sequential(
            init_conv(cin, cout, aa_kernel, 1, aa_kernel // 2, bias=bias, sn=sn),
            init_norm(norm, cout),
            nn.LeakyReLU(LEAK),
            BlurPool2d(cout, stride=2),
        )
    return nn.Sequential(
        init_conv(cin, cout, 4, 2, 1, bias=bias, sn=sn),
        init_norm(norm, cout),
        nn.LeakyReLU(LEAK),
    )


def binomial_filter(size: int = 5) -> torch.Tensor:
    """Normalised 2-D binomial filter of side ``size`` (sum 1), e.g. [1,4,6,4,1] outer itself / 256.

    The binomial is the discrete approximation of a Gaussian that Zhang (2019) found the best trade-off
    between anti-aliasing and keeping detail ("Bin-5").
    """
    if size < 1:
        raise ValueError(f"filter size must be >= 1, got {size}")
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).to(torch.float32)


class BlurPool2d(nn.Module):
    """Depthwise low-pass filter followed by sub-sampling (the "BlurPool" of Zhang 2019).

    Parameters
    ----------
    channels : int
        Number of feature maps (each is filtered on its own).
    stride : int
        Sub-sampling factor (2 in every down-sampling stage of the paper's models).
    filter_size : int
        Side of the binomial filter (5: the paper's "normalized Binomial-5 filter", sec 6.1.3).
    pad_mode : str
        Border extension before filtering. ``"replicate"`` (default) is defined for any map size, which
        matters because the U-Net's innermost maps are 2x2 or 1x1 (reflect padding needs a side > 2 pixels);
        ``"circular"`` is available for periodic analysis in tests.

    Notes
    -----
    Output size is ``ceil(H / stride)``: with 5 taps and 2 pixels of padding each side an even input halves
    exactly, so U-Net skip connections line up as with a stride-2 convolution. The filter is a
    non-persistent buffer: it is not in the state dict and cannot drift.
    """

    def __init__(self, channels: int, stride: int = 2, filter_size: int = 5, pad_mode: str = "replicate") -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.pad_mode = pad_mode
        lo = (filter_size - 1) // 2
        self.padding = (lo, filter_size - 1 - lo, lo, filter_size - 1 - lo)
        kernel = binomial_filter(filter_size)[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, mode=self.pad_mode)
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}, pad_mode={self.pad_mode!r}"


class SelfAttention2d(nn.Module):
    """Self-attention block of SAGAN (Zhang, Goodfellow, Metaxas, Odena 2019), sec 4.3 eq. 7.

    ``f``, ``g`` and ``h`` are 1x1 convolutions to ``channels // reduction`` maps; the attention map is the
    softmax over positions ``i`` of ``f(x_i)^T g(x_j)``; ``o_j = v(sum_i beta_ji h(x_i))`` with ``v`` a 1x1
    convolution back to ``channels``; the output is ``y = gamma * o + x`` with ``gamma`` learnable and
    initialised to 0, so the block is the identity at initialisation and the network "learns local cues
    first" (sec 4.3).

    Parameters
    ----------
    channels : int
        Input (and output) feature maps.
    reduction : int
        Channel reduction of ``f``, ``g``, ``h`` (8 in SAGAN).
    spectral_norm : bool
        Spectrally normalise the four 1x1 convolutions (SAGAN does so in every layer).

    Notes
    -----
    This is the full-attention form of the SAGAN paper, not the memory-saving variant of the official
    SAGAN/BigGAN code (2x2 max-pooling of ``g`` and ``h`` and ``h`` with ``channels // 2`` maps). The paper
    only places attention on the three smallest decoder levels (at most 16x16 = 256 positions for a
    512-pixel input with depth 8), where the N x N map is cheap; max-pooling would also discard positional
    detail and reintroduce the shift variance the anti-aliasing removes.
    """

    def __init__(self, channels: int, reduction: int = 8, spectral_norm: bool = False) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.f = maybe_spectral_norm(nn.Conv2d(channels, inner, 1), spectral_norm)
        self.g = maybe_spectral_norm(nn.Conv2d(channels, inner, 1), spectral_norm)
        self.h = maybe_spectral_norm(nn.Conv2d(channels, inner, 1), spectral_norm)
        self.v = maybe_spectral_norm(nn.Conv2d(inner, channels, 1), spectral_norm)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``beta`` with shape (B, N, N), ``beta[b, i, j]`` = weight of position i for output j."""
        b, _, hgt, wid = x.shape
        f = self.f(x).reshape(b, -1, hgt * wid)
        g = self.g(x).reshape(b, -1, hgt * wid)
        energy = torch.bmm(f.transpose(1, 2), g)  # (B, N_i, N_j)
        return torch.softmax(energy, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        beta = self.attention_map(x)
        h = self.h(x).reshape(b, -1, hgt * wid)
        o = torch.bmm(h, beta).reshape(b, -1, hgt, wid)
        return self.gamma * self.v(o) + x
