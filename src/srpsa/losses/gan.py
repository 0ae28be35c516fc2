"""Adversarial losses and the two generator objectives of the paper (eq. 2 and eq. 3).

Conventions: discriminators output raw logits; every function returns a scalar mean over the batch (and
over patch positions for the PatchGAN). The trainer passes ``D(fake.detach())`` in discriminator steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srpsa.losses.perceptual import PerceptualLoss
from srpsa.losses.pixel import PixelLoss

__all__ = [
    "GAN_MODES",
    "ESRGANGeneratorLoss",
    "GANLoss",
    "Pix2PixGeneratorLoss",
    "RelativisticAverageLoss",
    "pix2pix_discriminator_loss",
]

GAN_MODES = ("vanilla", "lsgan", "hinge")


class GANLoss(nn.Module):
    """Standard adversarial loss in one of three forms, with one-sided label smoothing.

    Parameters
    ----------
    mode : {"vanilla", "lsgan", "hinge"}
        ``vanilla``: binary cross-entropy on logits (pix2pix's default); ``lsgan``: squared error to the
        label; ``hinge``: ``relu(1 - d)`` / ``relu(1 + d)`` for D and ``-d`` for G.
    real_label, fake_label : float
        Targets of real and fake samples.
    d_real_label : float
        Target of *real* samples in *discriminator* steps only: one-sided label smoothing (sec 4.4;
        Salimans et al. 2016 use 0.9). The generator always aims at ``real_label``, and fake targets are
        never smoothed, since smoothing them would reward the generator for staying fake. Ignored by
        ``hinge``, whose margin already plays that role.
    """

    def __init__(
        self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0, d_real_label: float = 1.0
    ) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"GAN mode must be one of {GAN_MODES}, got {mode!r}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label
        self.d_real_label = d_real_label

    def target_value(self, target_is_real: bool, is_disc: bool) -> float:
        """The label a prediction is pushed towards."""
        if not target_is_real:
            return self.fake_label
        return self.d_real_label if is_disc else self.real_label

    def forward(self, pred: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        """Loss of logits ``pred`` against the real (``target_is_real``) or fake label.

        ``is_disc`` selects the discriminator form (label smoothing; hinge margins).
        """
        if self.mode == "hinge":
            if is_disc:
                margin = 1.0 - pred if target_is_real else 1.0 + pred
                return F.relu(margin).mean()
            return -pred.mean() if target_is_real else pred.mean()
        target = torch.full_like(pred, self.target_value(target_is_real, is_disc))
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.mse_loss(pred, target)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, d_real_label={self.d_real_label}"


def pix2pix_discriminator_loss(gan: GANLoss, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """pix2pix's D objective: half the sum of the real and fake terms (halved to slow D relative to G)."""
    return 0.5 * (gan(real_logits, True, is_disc=True) + gan(fake_logits, False, is_disc=True))


class RelativisticAverageLoss(nn.Module):
    """Relativistic average GAN loss (Jolicoeur-Martineau 2018) in ESRGAN's BCE form (sec 3.3).

    With ``C`` the logits, ``D_Ra(x_r, x_f) = sigmoid(C(x_r) - mean C(x_f))``:

    - discriminator: ``0.5 * [BCE(C(x_r) - mean C(x_f), 1) + BCE(C(x_f) - mean C(x_r), 0)]``
    - generator:     ``0.5 * [BCE(C(x_r) - mean C(x_f), 0) + BCE(C(x_f) - mean C(x_r), 1)]``

    i.e. the average of the real-image and fake-image terms; the generator benefits from gradients of
    both. Means are over the batch.

    Parameters
    ----------
    d_real_label : float
        Smoothed target of the real term in discriminator steps (one-sided label smoothing, sec 4.4).
    """

    def __init__(self, d_real_label: float = 1.0) -> None:
        super().__init__()
        self.d_real_label = d_real_label

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, is_disc: bool) -> torch.Tensor:
        rel_real = real_logits - fake_logits.mean()
        rel_fake = fake_logits - real_logits.mean()
        real_target = self.d_real_label if is_disc else 0.0
        fake_target = 0.0 if is_disc else 1.0
        loss_real = F.binary_cross_entropy_with_logits(rel_real, torch.full_like(rel_real, real_target))
        loss_fake = F.binary_cross_entropy_with_logits(rel_fake, torch.full_like(rel_fake, fake_target))
        return 0.5 * (loss_real + loss_fake)


class Pix2PixGeneratorLoss(nn.Module):
    """Eq. 2, generator side: ``L_cGAN(G, D) + lambda_pixel * L_pixel(G)``.

    Parameters
    ----------
    gan : GANLoss
        Adversarial term (the generator aims at the real label).
    pixel : {"rmse", "l1", "l2"}
        Reconstruction term (RMSE of eq. 1 in the paper; L1 is pix2pix's; Fig. 8 compares all three).
    lambda_pixel : float
        Weight of the reconstruction term (lambda_RMSE = 5, sec 5.2.1).
    """

    def __init__(self, gan: GANLoss, pixel: str = "rmse", lambda_pixel: float = 5.0) -> None:
        super().__init__()
        self.gan = gan
        self.pixel = PixelLoss(pixel)
        self.lambda_pixel = lambda_pixel

    def forward(
        self, fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and its detached terms ``{"gan", "pixel"}`` for logging."""
        l_gan = self.gan(fake_logits, True, is_disc=False)
        l_pix = self.pixel(fake, target)
        total = l_gan + self.lambda_pixel * l_pix
        return total, {"gan": l_gan.detach(), "pixel": l_pix.detach()}


class ESRGANGeneratorLoss(nn.Module):
    """Eq. 3: ``L_G = L_perceptual + lambda * L^R_GAN + eta * L_1``.

    Parameters
    ----------
    perceptual : PerceptualLoss
        VGG-19 conv5_4 (pre-activation) feature L1 distance.
    lambda_gan : float
        Weight of the relativistic term (0.05, sec 3.3; ESRGAN's own recipe uses 5e-3).
    eta_l1 : float
        Weight of the pixel L1 term (0.01, sec 3.3).
    ragan : RelativisticAverageLoss, optional
        Relativistic loss (a default one is created).
    """

    def __init__(
        self,
        perceptual: PerceptualLoss,
        lambda_gan: float = 0.05,
        eta_l1: float = 0.01,
        ragan: RelativisticAverageLoss | None = None,
    ) -> None:
        super().__init__()
        self.perceptual = perceptual
        self.ragan = ragan if ragan is not None else RelativisticAverageLoss()
        self.lambda_gan = lambda_gan
        self.eta_l1 = eta_l1

    def forward(
        self, real_logits: torch.Tensor, fake_logits: torch.Tensor, fake: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and its detached terms ``{"perceptual", "gan", "l1"}``.

        ``real_logits`` may be detached (no generator gradient flows through them).
        """
        l_per = self.perceptual(fake, target)
        l_gan = self.ragan(real_logits, fake_logits, is_disc=False)
        l_1 = F.l1_loss(fake, target)
        total = l_per + self.lambda_gan * l_gan + self.eta_l1 * l_1
        return total, {"perceptual": l_per.detach(), "gan": l_gan.detach(), "l1": l_1.detach()}
