"""Typed configuration of the SR-PSA circle detector (paper sections 3.4 and 5.2.3).

One :class:`DetectorConfig` holds everything that defines a detector run, in sections:

- ``model``: the network (:class:`ModelConfig`),
- ``loss``: eq. 4-5 and our choice for the confidence term (:class:`LossConfig`),
- ``data``: how training crops are cut, rescaled and encoded (:class:`DataConfig`),
- ``train``: optimiser, schedule, checkpoints (:class:`TrainConfig`),
- ``inference``: pyramid scales, thresholds, tiling, merging (:class:`InferenceConfig`),
- ``refine``: sub-pixel edge refinement after the network (:class:`RefineConfig`).

Every paper hyper-parameter is a named field whose default is the paper's value (comment cites the
section). TOML files under ``configs/detector/`` override the defaults section by section; an unknown
section or key, or a value of the wrong type, raises :class:`~srpsa.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srpsa.config import dataclass_from_dict, read_toml
from srpsa.errors import ConfigError

# Output stride of the network: two 2x2 max-pools (paper 3.4: "the input image is downscaled by 4").
STRIDE = 4


@dataclass
class ModelConfig:
    """The SR-PSA network: five 3x3 conv layers, two max-pools, a final conv to [p, x, y, r]."""

    in_channels: int = 1  # paper 5.2.3: images are converted to grayscale
    # Widths of the five 3x3 conv layers. The paper does not give them; 32-32-64-64-64 is a small
    # net (about 0.1 M parameters) that trains in minutes on a CPU and is the `paper` config.
    channels: tuple[int, ...] = (32, 32, 64, 64, 64)
    # Dilation of each of the five 3x3 layers (paper: plain convs = all 1). Dilation grows the
    # receptive field so large apparent particles are seen whole; see configs/detector/wide.toml.
    dilations: tuple[int, ...] = (1, 1, 1, 1, 1)
    # Zero-based indices of the conv layers followed by a 2x2 max-pool (paper 3.4: two pools -> 1/4).
    pool_after: tuple[int, ...] = (1, 3)
    head_kernel: int = 1  # kernel of the final conv to the 4 maps (paper 3.4 does not say; 1x1)
    # Normalisation after each 3x3 conv: "none" (the paper mentions none), "group" or "batch". With the
    # paper's batch of 4, BatchNorm's running statistics swing from batch to batch and shift the
    # regressed radii at inference; GroupNorm has no such train/test gap.
    norm: str = "none"
    # Paper 5.2.3: ground-truth radii are normalised by max-radius = 5. We define it in output cells:
    # radius in cells = r * max_radius, radius in network-input pixels = r * max_radius * STRIDE.
    max_radius: float = 5.0


@dataclass
class LossConfig:
    """Eq. 4-5: masked MSE on x, y, r where a centre exists; weighted MSE on p."""

    lambda_p: float = 5.0  # paper 5.2.3: lambda = 5
    # How the confidence term is masked. The paper multiplies it by the ground-truth mask, which would
    # never penalise a false positive (p = 1 everywhere is optimal). "balanced" (default): mean squared
    # error over positive cells times lambda plus the mean over negative cells, so both kinds count
    # whatever the particle density. "paper_masked": the literal eq. 4, kept for the ablation.
    p_loss: str = "balanced"
    # Weight of negative cells that touch a positive cell (its 8 neighbours): a centre near a cell
    # border makes the neighbour a near-miss, not a clear negative, so it is penalised less.
    neighbour_weight: float = 0.25


@dataclass
class DataConfig:
    """Training crops: where they come from and how they are rescaled, augmented and encoded."""

    crop: int = 128  # crop size at the network input, px (multiple of 4)
    # Working range of apparent radii, in output cells. Particles inside it are positives; centres of
    # particles outside it are ignored (no loss) because another pyramid scale is responsible for them.
    radius_band: tuple[float, float] = (1.0, 4.5)
    # Particles outside radius_band but inside this band are ignored (a neighbouring scale answers for
    # them); those beyond it are negatives: clearly too small or too large for this scale.
    ignore_band: tuple[float, float] = (0.7, 6.5)
    # Each crop is rescaled so that a randomly picked particle has a radius drawn log-uniformly from
    # this range (cells); wider than radius_band so the net also sees too-small/too-large particles.
    sample_band: tuple[float, float] = (0.5, 9.0)
    max_upscale: float = 3.0  # never enlarge a source image by more than this when rescaling
    flip: bool = True
    rot90: bool = True
    rescale: bool = True
    invert_prob: float = 0.0  # probability of inverting the contrast (polarity-agnostic training)
    contrast_jitter: float = 0.2  # gain drawn from [1 - j, 1 + j] after normalisation
    gamma_jitter: float = 0.2  # gamma drawn from [1 - j, 1 + j] on the [0, 1] image
    noise_std: float = 0.02  # max std of added Gaussian noise on the [0, 1] image
    n_train_images: int = 48  # simulator images generated into the cache for training
    n_val_images: int = 4  # simulator images kept apart for validation and threshold selection
    val_fraction: float = 0.2  # user folders: fraction of images held out for validation
    samples_per_epoch: int = 2000  # random crops per epoch


@dataclass
class TrainConfig:
    """Optimiser and schedule (paper 5.2.3 for the optimiser settings)."""

    lr: float = 1e-4  # paper 5.2.3
    weight_decay: float = 1e-6  # paper 5.2.3
    batch_size: int = 4  # paper 5.2.3
    epochs: int = 20
    seed: int = 0
    num_workers: int = 2
    checkpoint_every: int = 500  # optimiser steps between checkpoints (also at every epoch end)
    val_every: int = 1  # epochs between validations
    device: str = "cpu"


@dataclass
class InferenceConfig:
    """Multi-scale inference, merging and default thresholds (replaced by the tuned ones on export)."""

    scales: tuple[float, ...] = (0.25, 0.125)  # paper 3.4 / 5.2.3: image fed at 1/4 and 1/8
    auto_scale: bool = True  # choose scales from diameter_range or the size estimate, not `scales`
    # Scales always added to the automatic or configured ones (not to explicit scales or a diameter
    # range): `srpsa finetune` pins the scales that cover the labelled sizes of the user's microscope.
    pinned_scales: tuple[float, ...] = ()
    # Accept a detection from one scale only if its radius in cells lies in this band (the smallest
    # scale keeps everything above the lower bound, the largest everything below the upper bound).
    valid_band: tuple[float, float] = (0.9, 5.0)
    # The band the scale chooser aims particles at (cells); narrower than valid_band for margin.
    target_band: tuple[float, float] = (1.3, 4.0)
    scale_step: float = 2.0  # ratio between consecutive pyramid scales
    min_scale: float = 1.0 / 64.0
    max_scale: float = 2.0
    # Automatic scales only: add a larger (smaller) scale when this fraction of the confident
    # detections at the largest (smallest) scale lies below (above) target_band.
    adaptive_scales: bool = True
    extend_fraction: float = 0.1
    # Downwards the rule is looser: a smaller scale costs 1/step^2 of the one above, while a minority
    # of large particles (a coarse tail, a second mode) has no radius past the head's ~5 cells and
    # would be lost. At least `extend_min_count` and this fraction of the confident detections above
    # target_band at the smallest scale add a scale below it.
    extend_down_fraction: float = 0.01
    extend_min_count: int = 3
    auto_range_factor: float = 2.0  # estimated diameters d_a <= d_b -> range (d_a / f, d_b * f)
    p_thresh: float = 0.5
    nms_thresh: float = 0.6  # suppress if centre distance < nms_thresh * max(r_a, r_b)
    # Drop a circle whose area is more than this fraction covered by >= 2 smaller detections centred
    # inside it: a cluster answered as one particle by a coarse scale (0 disables; see nms.suppress_clusters).
    cluster_cover: float = 0.5
    merge: str = "nms"  # "nms" (keep the best) or "weighted" (score-weighted mean of each cluster)
    candidate_floor: float = 0.05  # p floor for candidates kept before thresholding (threshold tuning)
    tile: int = 1024  # tile size at the network input, px
    tile_margin: int = 48  # context on each side of a tile, px at the network input


@dataclass
class RefineConfig:
    """Sub-pixel radius refinement on the full-resolution image after the network."""

    enabled: bool = True
    n_rays: int = 64
    n_samples: int = 41  # samples per ray across the search window
    window: float = 0.4  # search radii from r * (1 - window) to r * (1 + window) around the CNN radius
    # Edge criterion: "gradient" (strongest gradient of the particle's dominant polarity),
    # "outer" (outermost strong gradient, for OM rims inside the physical edge), "half_max".
    edge: str = "gradient"
    # Move gradient edges out by sigma^2 / (2 r), sigma = the edge blur measured on each particle.
    curvature_correction: bool = True
    # Calibrated correction of the edge radius (fitted on simulator images with known radii):
    # r <- r_edge * (1 + bias_rel) + bias_px + bias_inv / r_edge. The 1/r term is the inward shift of
    # the steepest point of a blurred curved edge (about sigma_psf^2 / (2 r)); bias_px a rim offset.
    bias_rel: float = 0.0
    bias_px: float = 0.0
    bias_inv: float = 0.0  # px^2
    # ... + bias_sigma * sigma, sigma = the particle's measured edge width (px): wide rims need more.
    bias_sigma: float = 0.0
    n_iter: int = 2  # sampling passes (each recentres the rays on the previous fit)
    min_edge_strength: float = 0.7  # a ray's edge must reach this fraction of the particle's 90th-percentile edge
    outlier_k: float = 2.5  # reject edge points farther than k * MAD from the fitted circle
    min_valid_fraction: float = 0.3  # rays with a usable edge needed to accept the refined circle
    max_change: float = 0.35  # keep the CNN circle if the radius moves by more than this fraction
    max_shift: float = 0.5  # ... or if the centre moves by more than this fraction of the radius
    min_radius_px: float = 1.5  # below this the image holds too few pixels to refine


@dataclass
class DetectorConfig:
    """Everything that defines one detector: network, loss, data, training, inference, refinement."""

    name: str = "paper"
    domain: str = "sem"  # "sem" or "om": which simulator image (and ground truth) trains it
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)

    def validate(self) -> DetectorConfig:
        """Check cross-field constraints; raise ConfigError naming the field."""
        m = self.model
        if len(m.channels) != 5 or len(m.dilations) != 5:
            raise ConfigError(f"model.channels and model.dilations need 5 entries (paper 3.4), got {len(m.channels)} and {len(m.dilations)}")
        if sorted(set(m.pool_after)) != list(m.pool_after) or len(m.pool_after) != 2 or not all(0 <= i < 5 for i in m.pool_after):
            raise ConfigError(f"model.pool_after must name 2 distinct conv layers in 0..4 (output stride 4), got {m.pool_after}")
        if m.norm not in ("batch", "group", "none"):
            raise ConfigError(f"model.norm must be 'batch', 'group' or 'none', got {m.norm!r}")
        if m.head_kernel % 2 != 1 or m.max_radius <= 0:
            raise ConfigError("model.head_kernel must be odd and model.max_radius positive")
        if self.loss.p_loss not in ("balanced", "paper_masked"):
            raise ConfigError(f"loss.p_loss must be 'balanced' or 'paper_masked', got {self.loss.p_loss!r}")
        if self.domain not in ("sem", "om"):
            raise ConfigError(f"domain must be 'sem' or 'om', got {self.domain!r}")
        if self.data.crop % STRIDE or self.data.crop < 16:
            raise ConfigError(f"data.crop must be a multiple of {STRIDE} and >= 16, got {self.data.crop}")
        if not (self.data.ignore_band[0] <= self.data.radius_band[0] and self.data.ignore_band[1] >= self.data.radius_band[1]):
            raise ConfigError(f"data.ignore_band {self.data.ignore_band} must contain data.radius_band {self.data.radius_band}")
        for name, band in (("data.radius_band", self.data.radius_band), ("data.ignore_band", self.data.ignore_band), ("data.sample_band", self.data.sample_band),
                           ("inference.valid_band", self.inference.valid_band), ("inference.target_band", self.inference.target_band)):
            if len(band) != 2 or not 0 < band[0] < band[1]:
                raise ConfigError(f"{name} must be (low, high) with 0 < low < high, got {band}")
        inf = self.inference
        if not inf.scales or any(s <= 0 for s in inf.scales):
            raise ConfigError(f"inference.scales must be positive, got {inf.scales}")
        if inf.merge not in ("nms", "weighted"):
            raise ConfigError(f"inference.merge must be 'nms' or 'weighted', got {inf.merge!r}")
        if inf.tile % STRIDE or inf.tile_margin % STRIDE or inf.tile <= 2 * inf.tile_margin:
            raise ConfigError("inference.tile and tile_margin must be multiples of 4 with tile > 2 * tile_margin")
        if self.refine.edge not in ("gradient", "outer", "half_max"):
            raise ConfigError(f"refine.edge must be 'gradient', 'outer' or 'half_max', got {self.refine.edge!r}")
        if not 0 < self.refine.window < 1:
            raise ConfigError(f"refine.window must be in (0, 1), got {self.refine.window}")
        return self


def config_from_dict(data: dict[str, Any]) -> DetectorConfig:
    """Build a validated :class:`DetectorConfig` from nested dicts (missing keys keep their defaults)."""
    return dataclass_from_dict(DetectorConfig, data).validate()


def config_to_dict(cfg: DetectorConfig) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), suitable for JSON and for :func:`config_from_dict`."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def load_config(path: str | Path | None) -> DetectorConfig:
    """Read a TOML file of overrides; ``None`` gives the paper defaults."""
    if path is None:
        return DetectorConfig().validate()
    path = Path(path)
    data = read_toml(path, "detector config")
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
