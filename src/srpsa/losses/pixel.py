"""Pixel-wise reconstruction losses: the paper's RMSE (eq. 1) and the L1 / L2 it is compared with (Fig. 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PIXEL_LOSSES", "PixelLoss", "l1_loss", "l2_loss", "rmse_loss"]

PIXEL_LOSSES = ("rmse", "l1", "l2")

# sqrt has an infinite derivative at 0: a generator that reproduces an image exactly would get NaN
# gradients. With eps inside the root the gradient at zero error is 0 and stays bounded near it; 1e-8
# changes the loss by at most 1e-4 in intensity units.
RMSE_EPS = 1e-8


def rmse_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = RMSE_EPS) -> torch.Tensor:
    """Root mean squared error of eq. 1: ``mean_b sqrt(mean_{c,h,w} (target - pred)**2 + eps)``.

    The square root is taken per image (so each image's error is an RMSE in intensity units) and then
    averaged over the batch. Large early errors are compressed by the root, small late errors amplified
    relative to L2 (sec 3.2).
    """
    mse = (target - pred).pow(2).flatten(1).mean(dim=1)
    return torch.sqrt(mse + eps).mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (pix2pix's default reconstruction loss)."""
    return F.l1_loss(pred, target)


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


class PixelLoss(nn.Module):
    """Select one of :data:`PIXEL_LOSSES` by name (``"rmse"`` is the paper's choice, sec 3.2).

    Parameters
    ----------
    kind : {"rmse", "l1", "l2"}
        Which loss.
    eps : float
        Stabiliser inside the RMSE square root (see :data:`RMSE_EPS`).
    """

    def __init__(self, kind: str = "rmse", eps: float = RMSE_EPS) -> None:
        super().__init__()
        if kind not in PIXEL_LOSSES:
            raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {kind!r}")
        self.kind = kind
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "rmse":
            return rmse_loss(pred, target, self.eps)
        if self.kind == "l1":
            return l1_loss(pred, target)
        return l2_loss(pred, target)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
