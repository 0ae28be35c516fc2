"""Typed configuration of the two GAN stages (sec 4.4, 5.2.1, 5.2.2) and the switching-TTUR schedule.

A config is a :class:`TranslateConfig` (Pix2Pix, OM -> SEM-like) or a :class:`SuperResConfig` (ESRGAN,
4x). Defaults are the paper's final models (AASNA-Pix2Pix, ESRGAN-SN) and hyper-parameters; TOML files
in ``configs/translate/`` and ``configs/superres/`` select the ablations. A TOML file looks like::

    task = "translate"          # or "superres"
    name = "aasna"
    [generator]                 # fields of UNetConfig / RRDBNetConfig (= the model's constructor args)
    ngf = 64
    [discriminator]             # fields of PatchGANConfig / VGGDiscriminatorConfig
    [ttur]                      # fields of TTURConfig
    [train]                     # fields of TranslateTrainConfig / SuperResTrainConfig

Unknown keys, wrong types and out-of-range values raise :class:`srpsa.errors.ConfigError`.
Where the paper gives no value the comment says so and names the source of the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srpsa.config import dataclass_from_dict, read_toml
from srpsa.errors import ConfigError

__all__ = [
    "PatchGANConfig",
    "RRDBNetConfig",
    "SuperResConfig",
    "SuperResTrainConfig",
    "TTURConfig",
    "TranslateConfig",
    "TranslateTrainConfig",
    "UNetConfig",
    "VGGDiscriminatorConfig",
    "build_gan",
    "config_to_dict",
    "gan_config_from_dict",
    "load_gan_config",
    "ttur_learning_rates",
]


# --------------------------------------------------------------------------------------------- models
@dataclass
class UNetConfig:
    """Constructor arguments of :class:`srpsa.models.pix2pix.Pix2PixGenerator` (AASNA by default)."""

    in_channels: int = 1  # sec 5.2.1: grayscale OM input generalised better than RGB
    out_channels: int = 1  # grayscale SEM target
    ngf: int = 64  # not in the paper; pix2pix's width
    depth: int = 8  # not in the paper; pix2pix's unet_256 (512 px input -> 2x2 bottleneck)
    max_mult: int = 8  # pix2pix's channel cap (ngf * 8)
    norm: str = "batch"  # pix2pix default
    dropout: float = 0.5  # pix2pix's decoder dropout
    output_activation: str = "tanh"  # pix2pix: images in [-1, 1]
    spectral_norm: bool = True  # sec 4.1: SN on all down-sampling convs of the generator
    antialias: bool = True  # sec 4.2: anti-aliased (BlurPool, binomial-5) down-sampling
    aa_kernel: int = 3  # not in the paper; stride-1 conv before the blur (odd: features stay centred)
    attention_levels: int = 3  # sec 4.3: self-attention on the three smallest (decoder) levels
    attention_reduction: int = 8  # SAGAN's channel reduction of f, g, h


@dataclass
class PatchGANConfig:
    """Constructor arguments of :class:`srpsa.models.discriminators.PatchDiscriminator`."""

    in_channels: int = 2  # conditional: cat(OM, SEM), grayscale each
    ndf: int = 64  # pix2pix
    n_layers: int = 3  # 70x70 PatchGAN (sec 3.2)
    norm: str = "none"  # SN discriminators carry no batch norm (SN-GAN, SAGAN)
    spectral_norm: bool = True  # sec 3.2 / 6.1.2: SN in the PatchGAN
    antialias: bool = True  # sec 3.2 / 4.2: anti-aliasing pooling in the discriminator too
    aa_kernel: int = 3  # as UNetConfig.aa_kernel


@dataclass
class RRDBNetConfig:
    """Constructor arguments of :class:`srpsa.models.esrgan.RRDBNet` (ESRGAN-SN by default)."""

    in_channels: int = 1  # grayscale Pix2Pix output
    out_channels: int = 1
    nf: int = 64  # ESRGAN
    gc: int = 32  # ESRGAN
    num_blocks: int = 23  # sec 5.2.2: 23 RRDBs
    scale: int = 4  # sec 5.2.2: 128 -> 512
    res_scale: float = 0.2  # ESRGAN residual scaling
    spectral_norm: bool = True  # sec 4.1: SN over the generator ("ESRGAN-SN")


@dataclass
class VGGDiscriminatorConfig:
    """Constructor arguments of :class:`srpsa.models.discriminators.VGGDiscriminator`."""

    in_channels: int = 1
    nf: int = 64  # ESRGAN
    num_stages: int = 5  # ESRGAN's VGG128 stages; global pooling makes any size >= 32 px work
    norm: str = "none"  # SN discriminator: no batch norm
    spectral_norm: bool = True  # sec 4.1: SN over the discriminator
    hidden: int = 100  # ESRGAN


# ------------------------------------------------------------------------------------------- training
@dataclass
class TTURConfig:
    """Switching two time-scale update rule (sec 4.4).

    Until ``swap_fraction * total_steps`` the generator uses ``lr_g`` and the discriminator ``lr_d``;
    afterwards the two rates are exchanged and both are multiplied by ``decay_factor`` every
    ``decay_every`` steps. ``swap_fraction >= 1`` disables the swap, ``decay_every = 0`` the decay.
    """

    lr_g: float = 0.005  # sec 5.2.1 (Pix2Pix); 0.003 for ESRGAN (sec 5.2.2)
    lr_d: float = 0.001  # sec 5.2.1 / 5.2.2
    swap_fraction: float = 0.5  # sec 5.2.1: "switch the learning rates at around half the epochs"
    decay_every: int = 10_000  # not in the paper ("periodically decaying"); steps after the swap
    decay_factor: float = 0.5  # not in the paper


@dataclass
class TranslateTrainConfig:
    """Optimisation of AASNA-Pix2Pix (sec 5.2.1)."""

    total_steps: int = 100_000  # not in the paper (it trains in epochs over 578 pairs)
    batch_size: int = 1  # not in the paper; pix2pix's default
    patch_size: int = 512  # sec 5.1 / 5.2.1: 512x512 OM/SEM patches
    beta1: float = 0.5  # sec 5.2.1
    beta2: float = 0.999  # sec 5.2.1
    gan_mode: str = "vanilla"  # not in the paper; pix2pix's BCE cGAN loss
    d_real_label: float = 0.9  # sec 4.4 label smoothing; value of Salimans et al. 2016 (paper gives none)
    pixel_loss: str = "rmse"  # sec 3.2, eq. 1 ("l1"/"l2" reproduce Fig. 8)
    lambda_pixel: float = 5.0  # sec 5.2.1: lambda_RMSE = 5
    seed: int = 0  # model initialisation and data sampling


@dataclass
class SuperResTrainConfig:
    """Optimisation of ESRGAN-SN (sec 3.3, 5.2.2)."""

    total_steps: int = 100_000  # not in the paper; includes the PSNR warm-up
    # not in the paper. ESRGAN uses 16 with 128 px HR patches; the paper's 512 px HR patches have 16x the
    # pixels: batch 16 of esrgan-paper peaks at 73 GiB in fp32 on an H100, batch 4 at 19 GiB (measured)
    batch_size: int = 8
    lr_patch_size: int = 128  # sec 5.2.2: 512 Pix2Pix outputs resized to 128, super-resolved to 512
    beta1: float = 0.9  # sec 5.2.2
    beta2: float = 0.999  # sec 5.2.2
    d_real_label: float = 0.9  # sec 4.4 label smoothing (value: Salimans et al. 2016)
    lambda_gan: float = 0.05  # sec 3.3, eq. 3 (ESRGAN's own recipe: 5e-3)
    eta_l1: float = 0.01  # sec 3.3, eq. 3
    perceptual_layer: str = "conv5_4"  # sec 3.3: VGG-19 pre-activation features (ESRGAN: conv5_4)
    perceptual_weights: str = ""  # local VGG-19 weights (.safetensors/.pth); "" = seeded random VGG-19
    perceptual_seed: int = 0  # seed of the random VGG-19
    psnr_warmup_steps: int = 10_000  # not in the paper; ESRGAN starts the GAN from an L1-only generator
    warmup_lr: float = 2e-4  # ESRGAN's PSNR-oriented learning rate
    seed: int = 0


@dataclass
class TranslateConfig:
    """Pix2Pix stage: generator, discriminator, TTUR and training (paper defaults = AASNA-Pix2Pix)."""

    name: str = "aasna"
    task: str = "translate"
    generator: UNetConfig = field(default_factory=UNetConfig)
    discriminator: PatchGANConfig = field(default_factory=PatchGANConfig)
    ttur: TTURConfig = field(default_factory=lambda: TTURConfig(lr_g=0.005, lr_d=0.001))  # sec 5.2.1
    train: TranslateTrainConfig = field(default_factory=TranslateTrainConfig)

    def learning_rates(self, step: int) -> tuple[float, float]:
        """(lr_G, lr_D) at optimisation step ``step`` (0-based)."""
        return ttur_learning_rates(self.ttur, step, self.train.total_steps)


@dataclass
class SuperResConfig:
    """ESRGAN stage (paper defaults = Improved ESRGAN / ESRGAN-SN)."""

    name: str = "esrgan-paper"
    task: str = "superres"
    generator: RRDBNetConfig = field(default_factory=RRDBNetConfig)
    discriminator: VGGDiscriminatorConfig = field(default_factory=VGGDiscriminatorConfig)
    ttur: TTURConfig = field(default_factory=lambda: TTURConfig(lr_g=0.003, lr_d=0.001))  # sec 5.2.2
    train: SuperResTrainConfig = field(default_factory=SuperResTrainConfig)

    @property
    def hr_patch_size(self) -> int:
        """Side of the HR training patch (``lr_patch_size * scale`` = 512 in the paper)."""
        return self.train.lr_patch_size * self.generator.scale

    def learning_rates(self, step: int) -> tuple[float, float]:
        """(lr_G, lr_D) at step ``step``: ``(warmup_lr, 0)`` during the PSNR warm-up, then the TTUR
        schedule counted from the end of the warm-up."""
        warm = self.train.psnr_warmup_steps
        if step < warm:
            return self.train.warmup_lr, 0.0
        return ttur_learning_rates(self.ttur, step - warm, self.train.total_steps - warm)


GANConfig = TranslateConfig | SuperResConfig


def ttur_learning_rates(ttur: TTURConfig, step: int, total_steps: int) -> tuple[float, float]:
    """Switching-TTUR learning rates ``(lr_G, lr_D)`` at ``step`` of ``total_steps``.

    Before the swap step ``round(swap_fraction * total_steps)`` the rates are ``(lr_g, lr_d)``: the
    generator learns faster while low-level features form. From the swap step on they are exchanged,
    ``(lr_d, lr_g)``, and multiplied by ``decay_factor ** ((step - swap) // decay_every)``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    swap = round(ttur.swap_fraction * total_steps)
    if ttur.swap_fraction >= 1.0 or step < swap:
        return ttur.lr_g, ttur.lr_d
    k = (step - swap) // ttur.decay_every if ttur.decay_every > 0 else 0
    factor = ttur.decay_factor**k
    return ttur.lr_d * factor, ttur.lr_g * factor


# ------------------------------------------------------------------------------------------ loading
def _merge_defaults(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Nested tables of the task's top-level config default to the task's own defaults (e.g. TTUR rates)."""
    defaults = cls()
    merged = dict(data)
    for f in dataclasses.fields(cls):
        sub = merged.get(f.name)
        if isinstance(sub, dict) and dataclasses.is_dataclass(getattr(defaults, f.name)):
            # unknown keys survive the merge and are reported by dataclass_from_dict
            merged[f.name] = {**dataclasses.asdict(getattr(defaults, f.name)), **sub}
    return merged


def _require(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _validate(cfg: GANConfig) -> None:
    from srpsa.losses.gan import GAN_MODES
    from srpsa.losses.pixel import PIXEL_LOSSES
    from srpsa.models.gan_layers import NORM_KINDS
    from srpsa.models.pix2pix import OUTPUT_ACTIVATIONS
    from srpsa.models.vgg import vgg19_layer_names

    t = cfg.ttur
    _require(t.lr_g > 0 and t.lr_d > 0, "ttur: lr_g and lr_d must be > 0")
    _require(0.0 <= t.swap_fraction, "ttur.swap_fraction must be >= 0 (>= 1 disables the swap)")
    _require(t.decay_every >= 0, "ttur.decay_every must be >= 0 (0 disables the decay)")
    _require(0.0 < t.decay_factor <= 1.0, "ttur.decay_factor must be in (0, 1]")
    tr = cfg.train
    _require(tr.total_steps > 0 and tr.batch_size > 0, "train: total_steps and batch_size must be > 0")
    _require(0.0 <= tr.beta1 < 1.0 and 0.0 <= tr.beta2 < 1.0, "train: beta1 and beta2 must be in [0, 1)")
    _require(0.0 < tr.d_real_label <= 1.0, "train.d_real_label must be in (0, 1]")
    g, d = cfg.generator, cfg.discriminator
    _require(d.norm in NORM_KINDS, f"discriminator.norm must be one of {NORM_KINDS}")
    if isinstance(cfg, TranslateConfig):
        assert isinstance(g, UNetConfig) and isinstance(d, PatchGANConfig) and isinstance(tr, TranslateTrainConfig)
        _require(g.norm in NORM_KINDS, f"generator.norm must be one of {NORM_KINDS}")
        _require(g.output_activation in OUTPUT_ACTIVATIONS,
                 f"generator.output_activation must be one of {OUTPUT_ACTIVATIONS}")  # fmt: skip
        _require(g.depth >= 2, "generator.depth must be >= 2")
        _require(0 <= g.attention_levels < g.depth, "generator.attention_levels must be in [0, depth)")
        _require(g.aa_kernel % 2 == 1 and d.aa_kernel % 2 == 1, "aa_kernel must be odd")
        _require(0.0 <= g.dropout < 1.0, "generator.dropout must be in [0, 1)")
        _require(d.in_channels == g.in_channels + g.out_channels,
                 "discriminator.in_channels must equal generator.in_channels + generator.out_channels "
                 "(the PatchGAN is conditional)")  # fmt: skip
        _require(tr.gan_mode in GAN_MODES, f"train.gan_mode must be one of {GAN_MODES}")
        _require(tr.pixel_loss in PIXEL_LOSSES, f"train.pixel_loss must be one of {PIXEL_LOSSES}")
        _require(tr.patch_size % 2**g.depth == 0, f"train.patch_size must be a multiple of 2**depth = {2**g.depth}")
    else:
        assert isinstance(g, RRDBNetConfig) and isinstance(tr, SuperResTrainConfig)
        assert isinstance(d, VGGDiscriminatorConfig)
        _require(g.scale >= 1 and g.scale & (g.scale - 1) == 0, "generator.scale must be a power of two")
        _require(d.in_channels == g.out_channels, "discriminator.in_channels must equal generator.out_channels")
        _require(tr.perceptual_layer in vgg19_layer_names(), "train.perceptual_layer is not a VGG-19 layer name")
        _require(tr.psnr_warmup_steps < tr.total_steps, "train.psnr_warmup_steps must be < total_steps")
        min_side = 2**d.num_stages
        _require(cfg.hr_patch_size >= min_side,
                 f"HR patch ({cfg.hr_patch_size}) is smaller than the discriminator's minimum {min_side}")  # fmt: skip


def load_gan_config(path: str | Path) -> GANConfig:
    """Read a GAN config TOML; the top-level ``task`` ("translate" or "superres") picks the dataclass.

    Missing keys keep the paper's defaults. Raises :class:`srpsa.errors.ConfigError` for a missing or
    unreadable file, an unknown key, a wrongly typed or out-of-range value.
    """
    path = Path(path)
    data = read_toml(path, "GAN config")
    task = data.get("task")
    classes: dict[str, type] = {"translate": TranslateConfig, "superres": SuperResConfig}
    if task not in classes:
        raise ConfigError(f"{path}: 'task' must be \"translate\" or \"superres\", got {task!r}")
    cls = classes[task]
    try:
        cfg = dataclass_from_dict(cls, _merge_defaults(cls, data), "")
        _validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def config_to_dict(cfg: GANConfig) -> dict[str, Any]:
    """JSON-serialisable dict of the whole config (for run metadata)."""
    return dataclasses.asdict(cfg)


def gan_config_from_dict(data: dict[str, Any]) -> GANConfig:
    """Rebuild a config from :func:`config_to_dict` output (e.g. a run's ``config.json``)."""
    classes: dict[str, type] = {"translate": TranslateConfig, "superres": SuperResConfig}
    task = data.get("task") if isinstance(data, dict) else None
    if task not in classes:
        raise ConfigError(f"saved GAN config: 'task' must be translate or superres, got {task!r}")
    return dataclass_from_dict(classes[task], data, "")


def build_gan(cfg: GANConfig) -> tuple[Any, Any]:
    """Build ``(generator, discriminator)`` for ``cfg``, initialised from ``cfg.train.seed`` only.

    The global torch RNG is forked, so the caller's random state is left untouched.
    """
    import torch

    from srpsa.models.discriminators import PatchDiscriminator, VGGDiscriminator
    from srpsa.models.esrgan import RRDBNet
    from srpsa.models.pix2pix import Pix2PixGenerator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        if isinstance(cfg, TranslateConfig):
            return (Pix2PixGenerator(**dataclasses.asdict(cfg.generator)),
                    PatchDiscriminator(**dataclasses.asdict(cfg.discriminator)))  # fmt: skip
        return (RRDBNet(**dataclasses.asdict(cfg.generator)),
                VGGDiscriminator(**dataclasses.asdict(cfg.discriminator)))  # fmt: skip
