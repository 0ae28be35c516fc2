"""Losses of the paper's GANs: pixel (RMSE eq. 1, L1, L2), adversarial (vanilla/LSGAN/hinge, relativistic
average) and perceptual (VGG-19), plus the generator objectives of eq. 2 (Pix2Pix) and eq. 3 (ESRGAN); the detector's eq. 4-5 loss is
:func:`srpsa.losses.detection.detection_loss`."""

from srpsa.losses.gan import (
    GAN_MODES,
    ESRGANGeneratorLoss,
    GANLoss,
    Pix2PixGeneratorLoss,
    RelativisticAverageLoss,
    pix2pix_discriminator_loss,
)
from srpsa.losses.perceptual import PerceptualLoss
from srpsa.losses.pixel import PIXEL_LOSSES, PixelLoss, l1_loss, l2_loss, rmse_loss

__all__ = [
    "GAN_MODES",
    "PIXEL_LOSSES",
    "ESRGANGeneratorLoss",
    "GANLoss",
    "PerceptualLoss",
    "Pix2PixGeneratorLoss",
    "PixelLoss",
    "RelativisticAverageLoss",
    "l1_loss",
    "l2_loss",
    "pix2pix_discriminator_loss",
    "rmse_loss",
]
