"""Small building blocks shared by the srpsa networks (kept minimal on purpose)."""

from __future__ import annotations

import math

from torch import nn


class ConvNormAct(nn.Module):
    """``Conv2d`` (same padding) -> optional ``BatchNorm2d`` -> ReLU.

    The attribute names ``conv``/``norm``/``act`` are part of the state-dict keys, i.e. of the weights
    format: do not rename them.

    Parameters
    ----------
    in_ch, out_ch : int
        Channel counts.
    kernel : int
        Odd kernel size.
    dilation : int
        Dilation of the kernel; padding keeps the spatial size.
    norm : {"batch", "group", "none"}
        Normalisation after the convolution (the conv has a bias only without one). "group" is
        GroupNorm with up to 8 groups: independent of the batch, so training with batches of 4 and
        inference behave the same.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1, norm: str = "batch") -> None:
        super().__init__()
        use_norm = norm in ("batch", "group")
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=not use_norm)
        if norm == "batch":
            self.norm: nn.Module = nn.BatchNorm2d(out_ch)
        elif norm == "group":
            self.norm = nn.GroupNorm(math.gcd(8, out_ch), out_ch)
        else:
            self.norm = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):  # noqa: D102 - standard module call
        return self.act(self.norm(self.conv(x)))
