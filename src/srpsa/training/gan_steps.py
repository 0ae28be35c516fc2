"""One optimisation step of each GAN task: its losses, one D update, then one G update.

Pix2Pix (``translate``): ``pix2pix_discriminator_loss`` (D) and ``Pix2PixGeneratorLoss`` (cGAN + pixel
loss, eq. 2), computed in the generator's range. ESRGAN (``superres``): G alone with L1 during the PSNR
warm-up (D untouched), then ``RelativisticAverageLoss`` (D) and ``ESRGANGeneratorLoss`` (perceptual +
RaGAN + L1, eq. 3) on ``[0, 1]`` images, starting the GAN stage with fresh Adam moments for G.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srpsa.losses import (
    ESRGANGeneratorLoss,
    GANLoss,
    PerceptualLoss,
    Pix2PixGeneratorLoss,
    RelativisticAverageLoss,
    pix2pix_discriminator_loss,
)
from srpsa.models.pix2pix import to_generator_range
from srpsa.training.gan_config import GANConfig, TranslateConfig

__all__ = ["GANLosses", "Nets", "build_losses", "set_lr", "set_requires_grad", "step_seed", "superres_step", "translate_step"]


@dataclass
class Nets:
    """What a step updates: G and D as called (DDP-wrapped under torchrun), the bare D, both optimisers."""

    G: nn.Module
    D: nn.Module
    d_net: nn.Module  # the bare D: the G step calls it without DDP (its gradients are not wanted there)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


@dataclass
class GANLosses:
    """The loss modules of a run; ``gan_loss`` for translate, ``ragan`` for superres."""

    g_loss: nn.Module
    gan_loss: GANLoss | None = None
    ragan: RelativisticAverageLoss | None = None
    perceptual_source: str = ""  # where the perceptual loss's features come from (superres)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of torch's global RNG (dropout) for one step: a function of (seed, step, rank) only."""
    return int(np.random.SeedSequence([seed, 2, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def build_losses(cfg: GANConfig, device: torch.device) -> GANLosses:
    """The losses of ``cfg``'s task; the perceptual network is frozen and moved to ``device``."""
    tr = cfg.train
    if isinstance(cfg, TranslateConfig):
        gan_loss = GANLoss(cfg.train.gan_mode, d_real_label=tr.d_real_label)
        return GANLosses(Pix2PixGeneratorLoss(gan_loss, pixel=cfg.train.pixel_loss, lambda_pixel=cfg.train.lambda_pixel), gan_loss=gan_loss)
    st = cfg.train
    perceptual = PerceptualLoss.build(weights=st.perceptual_weights or None, layer=st.perceptual_layer, seed=st.perceptual_seed)
    perceptual = perceptual.to(device).eval()
    set_requires_grad(perceptual, False)
    ragan = RelativisticAverageLoss(d_real_label=st.d_real_label)
    g_loss = ESRGANGeneratorLoss(perceptual, lambda_gan=st.lambda_gan, eta_l1=st.eta_l1, ragan=ragan)
    return GANLosses(g_loss, ragan=ragan, perceptual_source=perceptual.source)


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _terms(loss_d: torch.Tensor, loss_g: torch.Tensor, parts: dict[str, torch.Tensor]) -> dict[str, float]:
    return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), **{k: float(v) for k, v in parts.items()}}


def translate_step(nets: Nets, losses: GANLosses, activation: str, om: torch.Tensor, sem: torch.Tensor) -> dict[str, float]:
    """One Pix2Pix step on a batch of ``[0, 1]`` OM/SEM pairs; returns the loss terms."""
    assert losses.gan_loss is not None
    x, y = to_generator_range(om, activation), to_generator_range(sem, activation)
    fake = nets.G(x)
    set_requires_grad(nets.d_net, True)
    loss_d = pix2pix_discriminator_loss(losses.gan_loss, nets.D(x, y), nets.D(x, fake.detach()))
    _update(nets.opt_d, loss_d)
    set_requires_grad(nets.d_net, False)
    loss_g, parts = losses.g_loss(nets.d_net(x, fake), fake, y)
    _update(nets.opt_g, loss_g)
    return _terms(loss_d, loss_g, parts)


def superres_step(nets: Nets, losses: GANLosses, warmup_steps: int, step: int, lr_img: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
    """ESRGAN step ``step`` (0-based) on a batch of LR/HR pairs; returns the loss terms."""
    assert losses.ragan is not None
    fake = nets.G(lr_img)
    if step < warmup_steps:  # PSNR-oriented warm-up: L1 only, D untouched
        l1 = F.l1_loss(fake, hr)
        _update(nets.opt_g, l1)
        return {"loss_g": float(l1.detach()), "l1": float(l1.detach())}
    if step == warmup_steps and warmup_steps > 0:
        nets.opt_g.state.clear()  # fresh Adam moments for the GAN stage (srpsa.training.gan_train docstring)
    set_requires_grad(nets.d_net, True)
    loss_d = losses.ragan(nets.D(hr), nets.D(fake.detach()), is_disc=True)
    _update(nets.opt_d, loss_d)
    set_requires_grad(nets.d_net, False)
    with torch.no_grad():
        real_logits = nets.d_net(hr)
    loss_g, parts = losses.g_loss(real_logits, nets.d_net(fake), fake, hr)
    _update(nets.opt_g, loss_g)
    return _terms(loss_d, loss_g, parts)
