"""A GAN run's evaluations and sample grids: G's PSNR/SSIM on fixed validation crops, and the PNG grids.

Evaluation crops are fixed for the whole run (centre crops spread over the val split), so evaluations of
different steps compare. Superres evaluations add the bicubic baseline on the same crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_write_bytes
from srpsa.models.pix2pix import from_generator_range, to_generator_range
from srpsa.pixel_metrics import psnr_ssim

__all__ = ["SAMPLE_ROWS", "evaluate_generator", "generate", "sample_grid", "write_samples"]

SAMPLE_ROWS = 4  # rows of a sample grid


@torch.no_grad()
def generate(net: nn.Module, inputs: torch.Tensor, device: torch.device, activation: str | None, batch: int = 4) -> torch.Tensor:
    """G's output in ``[0, 1]`` for ``[0, 1]`` inputs (eval mode, in chunks), on the CPU.

    ``activation``: the translation generator's output activation (its inputs and outputs are mapped
    to and from its range); None for the super-resolution generator, which works on ``[0, 1]``.
    """
    was_training = net.training
    net.eval()
    outs = []
    for chunk in inputs.split(batch):
        chunk = chunk.to(device)
        if activation is not None:
            y = from_generator_range(net(to_generator_range(chunk, activation)), activation)
        else:
            y = net(chunk)
        outs.append(y.clamp(0.0, 1.0).float().cpu())
    net.train(was_training)
    return torch.cat(outs)


def evaluate_generator(outputs: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, split: str,
                       bicubic_baseline: bool) -> dict[str, Any]:  # fmt: skip
    """Mean PSNR (dB) and SSIM of ``outputs`` against ``targets``; with ``bicubic_baseline`` also those
    of the bicubic upsampling of ``inputs`` (``psnr_bicubic``, ``ssim_bicubic``)."""
    scores = [psnr_ssim(o[0].numpy(), t[0].numpy()) for o, t in zip(outputs, targets)]
    metrics: dict[str, Any] = {
        "psnr": float(np.mean([s[0] for s in scores])),
        "ssim": float(np.mean([s[1] for s in scores])),
        "n": len(scores),
        "split": split,
    }
    if bicubic_baseline:
        bicubic = F.interpolate(inputs, size=targets.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        base = [psnr_ssim(b[0].numpy(), t[0].numpy()) for b, t in zip(bicubic, targets)]
        metrics["psnr_bicubic"] = float(np.mean([s[0] for s in base]))
        metrics["ssim_bicubic"] = float(np.mean([s[1] for s in base]))
    return metrics


def sample_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, gap: int = 2) -> np.ndarray:
    """8-bit grid, one row per pair: input (nearest-upsampled to the target size) | output | target."""
    size = targets.shape[-1]
    up = F.interpolate(inputs, size=targets.shape[-2:], mode="nearest") if inputs.shape[-1] != size else inputs
    rows = []
    for i in range(targets.shape[0]):
        tiles = [t[i, 0].clamp(0, 1).cpu().numpy() for t in (up, outputs, targets)]
        sep = np.ones((size, gap), np.float32)
        rows.append(np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], axis=1))
        rows.append(np.ones((gap, rows[-1].shape[1]), np.float32))
    grid = np.concatenate(rows[:-1], axis=0)
    return np.round(grid * 255.0).astype(np.uint8)


def write_samples(path: Path, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> Path:
    """The :func:`sample_grid` of the first :data:`SAMPLE_ROWS` pairs as the PNG ``path`` (atomic)."""
    import cv2

    n = SAMPLE_ROWS
    ok, buf = cv2.imencode(".png", sample_grid(inputs[:n], outputs[:n], targets[:n]))
    if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint8 array
        raise InputError("cannot encode the sample grid")
    atomic_write_bytes(path, buf.tobytes())
    return path
