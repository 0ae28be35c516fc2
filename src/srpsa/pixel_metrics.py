"""PSNR and SSIM of two gray ``[0, 1]`` images (data range 1): the one definition srpsa uses.

Used by the GAN trainer's evaluations (:mod:`srpsa.training.gan_train`) and by ``srpsa evaluate images``
(:mod:`srpsa.evaluation.image_quality`). A leaf module (numpy, scikit-image imported on first use), so the
trainer does not import the evaluation package with pandas and scipy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "psnr_ssim", "ssim"]


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB with peak 1: ``10 log10(1 / MSE)``; ``inf`` for identical images.

    The formula of ``skimage.metrics.peak_signal_noise_ratio`` with ``data_range=1``, written out because
    importing that function pulls in scipy.stats (seconds per process) and it warns about log10(1/0).
    """
    mse = float(np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM of ``pred`` against ``target``: skimage's ``structural_similarity`` (7x7 uniform window)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(target, pred, data_range=1.0))


def psnr_ssim(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(psnr(pred, target), ssim(pred, target))``."""
    return psnr(pred, target), ssim(pred, target)
