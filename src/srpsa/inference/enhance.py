"""OM -> SEM-like image: translation (Pix2Pix) then 4x super-resolution (ESRGAN), at a scale that follows
the particles.

The paper's flow (sec 5.2) resizes a 1024 px OM patch to 512, translates it, shrinks the translation to
128 and super-resolves it to 512: a fixed 8x shrink before SR, which turns a 15 px particle into 2 px.
Here the working scale of each stage is chosen from the particle size instead (``flow = "adaptive"``):

1. estimate the typical particle diameter ``d`` in the OM image (:func:`estimate_particle_diameter`, the
   estimate the detector uses) or take it from the caller;
2. translate at scale ``s_t``: 1 (no resampling) when ``d`` lies in ``translate_min/max_diameter_px``
   (40-56 px), else the scale that brings ``d`` to ``translate_target_diameter_px`` (48 px, the size at
   which the translator separates touching particles best, measured);
3. super-resolve from ``s_t / sr_input_factor`` (4): the SR input then holds ~12 px particles, inside
   the 5-22 px range of its training inputs (SEM area-averaged 4x from a grid 2x finer than the OM),
   and its output lies on the translation's grid. The input factor is lowered when that would leave
   particles below ``min_sr_input_diameter_px``;
4. the output is the SR image at ``s_out = s_t / factor * 4`` times the input pixel grid; coordinates map
   back with ``x_in = (x_out + 0.5) / s_out - 0.5`` (pixel centres at integer coordinates).

``flow = "paper"`` keeps the paper's fixed scales (0.5 for translation, 0.125 into SR) for comparison.
Every stage runs tile by tile (:func:`srpsa.inference.tiling.apply_tiled`), so memory stays bounded and
tiles show no seams.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from srpsa.errors import InputError
from srpsa.io.images import to_gray
from srpsa.inference.tiling import apply_tiled

FLOWS = ("adaptive", "paper")
SR_MODES = ("model", "none")


@dataclass(frozen=True)
class EnhanceConfig:
    """Scales and tiling of the enhance chain (see the module docstring)."""

    flow: str = "adaptive"
    # Inside 40-56 px the OM image is translated as is, outside it is resized to put the typical
    # particle at 48 px. The GANs were trained on particles of 10-44 OM px (configs/synth/gan.toml), yet
    # on simulator diagnostics (docs/decisions.md, "Enhance working scale") the translator separates
    # touching particles far better when they are ~48 px: F1 0.82-0.85 at 15 px vs 0.998-1.000 at 48 px.
    translate_min_diameter_px: float = 40.0
    translate_max_diameter_px: float = 56.0
    translate_target_diameter_px: float = 48.0
    # LR = translation shrunk by this factor before the 4x SR, so the output lies on the translation's
    # grid and SR inputs hold ~12 px particles (inside the 5-22 px its training inputs had). Factor 2
    # (SR output at 2x the translation) gave the same F1 at 4x the SR and detector cost.
    sr_input_factor: float = 4.0
    min_sr_input_diameter_px: float = 8.0  # the floor: below ~8 px a particle is not restorable
    paper_translate_scale: float = 0.5  # sec 5.2: 1024 -> 512
    paper_sr_input_scale: float = 0.125  # sec 5.2: 512 -> 128 before 4x SR
    # "model": the ESRGAN stage (the paper's chain); "none": the SEM detector reads the translation
    # itself (translate -> detect), the fast mode compared side by side in docs/speed.md.
    sr_mode: str = "model"
    # Tiles: ONNX Runtime's rate is about flat from 256 to 512 px (translation) and 96 to 256 px (SR
    # input) on this CPU (benchmarks/network_throughput.py), so the larger tiles win by wasting less on
    # the overlaps (SR: 1.44x the pixels at 96, 1.19x at 192).
    tile: int = 512  # translation tile (a multiple of the U-Net's 2**depth)
    overlap: int = 32
    sr_tile: int = 192  # SR input tile (output 4x)
    sr_overlap: int = 16
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.flow not in FLOWS:
            raise InputError(f"enhance flow must be one of {', '.join(FLOWS)}, got '{self.flow}'")
        if self.sr_mode not in SR_MODES:
            raise InputError(f"enhance sr_mode must be one of {', '.join(SR_MODES)}, got '{self.sr_mode}'")


@dataclass
class EnhancePlan:
    """Scales chosen for one image (all relative to the input OM pixel grid)."""

    diameter_px: float  # typical particle diameter in the input image
    translate_scale: float
    sr_input_scale: float
    output_scale: float  # SR output pixels per input pixel

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class EnhanceResult:
    image: np.ndarray  # SEM-like, float32 in [0, 1], at output_scale x the input grid
    plan: EnhancePlan
    translated: np.ndarray | None = None  # the translation (at translate_scale), if kept
    info: dict[str, Any] = field(default_factory=dict)


def plan_scales(diameter_px: float, cfg: EnhanceConfig, sr_scale: int = 4) -> EnhancePlan:
    """Working scales for an OM image whose particles span ``diameter_px`` pixels.

    With ``sr_mode = "none"`` the output is the translation: ``sr_input_scale = output_scale =
    translate_scale``.
    """
    if cfg.flow == "paper":
        s_t, s_lr = cfg.paper_translate_scale, cfg.paper_sr_input_scale
    else:
        d = diameter_px if (diameter_px and math.isfinite(diameter_px) and diameter_px > 0) else cfg.translate_target_diameter_px
        if cfg.translate_min_diameter_px <= d <= cfg.translate_max_diameter_px:
            s_t = 1.0
        else:
            s_t = cfg.translate_target_diameter_px / d
        d_t = d * s_t
        factor = min(cfg.sr_input_factor, max(d_t / cfg.min_sr_input_diameter_px, 1.0))
        s_lr = s_t / factor
    if cfg.sr_mode == "none":
        return EnhancePlan(diameter_px=float(diameter_px), translate_scale=float(s_t), sr_input_scale=float(s_t), output_scale=float(s_t))
    return EnhancePlan(diameter_px=float(diameter_px), translate_scale=float(s_t), sr_input_scale=float(s_lr), output_scale=float(s_lr * sr_scale))


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize by ``scale`` (area averaging down, bicubic up); identity at 1."""
    if abs(scale - 1.0) < 1e-9:
        return image
    h, w = image.shape[:2]
    size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(image, size, interpolation=interp), 0.0, 1.0)


class Enhancer:
    """The two generators (release folders ``translate/`` and ``superres/``) and how to run them.

    ``backend`` is ``"torch"`` or ``"onnx"`` (:mod:`srpsa.inference.backend`); for ONNX the exports are
    cached in ``dirs`` (the release folders, by weights hash) like the detector's.
    """

    def __init__(
        self,
        translator,
        superres,
        cfg: EnhanceConfig | None = None,
        meta: dict[str, Any] | None = None,
        threads: int | None = None,
        *,
        backend: str = "torch",
        dirs: tuple[Path | None, Path | None] = (None, None),
    ) -> None:
        from srpsa.inference.backend import make_runner, module_hash
        from srpsa.inference.weights import weights_hash

        self.translator = translator.eval()
        self.superres = superres.eval()
        self.cfg = cfg or EnhanceConfig()
        self.meta = meta or {}
        self.backend = backend
        self.sr_scale = int(getattr(superres, "model_args", {}).get("scale", 4))
        self._act = getattr(translator, "model_args", {}).get("output_activation", "tanh")
        self._multiple = int(getattr(translator, "size_multiple", 1))
        if self.cfg.tile % self._multiple:
            raise InputError(f"enhance tile {self.cfg.tile} must be a multiple of the translator's {self._multiple}")

        def runner(model, folder: Path | None, shape: tuple[int, int, int, int]):
            digest = "" if backend != "onnx" else (weights_hash(folder) if folder is not None else module_hash(model))
            return make_runner(model, backend, cache_dir=folder, weights_hash=digest, example_shape=shape, threads=threads, name="generator")

        m = self._multiple
        self._translate = runner(self.translator, dirs[0], (1, 1, max(64, m), max(64, m)))
        # The SR network is not needed (nor exported) when the chain stops at the translation.
        self._superres = runner(self.superres, dirs[1], (1, 1, 32, 32)) if self.cfg.sr_mode == "model" else None

    @classmethod
    def load(
        cls,
        translate_dir: str | os.PathLike[str],
        superres_dir: str | os.PathLike[str],
        cfg: EnhanceConfig | None = None,
        *,
        backend: str = "torch",
        threads: int | None = None,
    ) -> Enhancer:
        from srpsa.models.release import load_generator_release

        t, tmeta = load_generator_release(Path(translate_dir))
        s, smeta = load_generator_release(Path(superres_dir))
        if tmeta.get("task") != "translate" or smeta.get("task") != "superres":
            raise InputError(f"{translate_dir} must hold a translate model and {superres_dir} a superres model")
        return cls(t, s, cfg, meta={"translate": tmeta, "superres": smeta}, threads=threads, backend=backend,
                   dirs=(Path(translate_dir), Path(superres_dir)))

    # -- single stages ----------------------------------------------------------------------------
    def translate(self, om: np.ndarray) -> np.ndarray:
        """SEM-like image on the same grid as ``om`` (gray float in [0, 1])."""
        from srpsa.models.pix2pix import from_generator_range, to_generator_range

        def fn(tiles: np.ndarray) -> np.ndarray:
            y = from_generator_range(self._translate(to_generator_range(_nchw(tiles), self._act)), self._act)
            return np.clip(y[:, 0] if tiles.ndim == 3 else y[0, 0], 0.0, 1.0)

        return apply_tiled(to_gray(om), fn, tile=self.cfg.tile, overlap=self.cfg.overlap, batch_size=self.cfg.batch_size)

    def super_resolve(self, image: np.ndarray) -> np.ndarray:
        """``sr_scale`` times larger image (gray float in [0, 1])."""
        if self._superres is None:
            raise InputError("this enhancer was built with sr_mode='none': it has no super-resolution stage")

        def fn(tiles: np.ndarray) -> np.ndarray:
            y = self._superres(_nchw(tiles))
            return np.clip(y[:, 0] if tiles.ndim == 3 else y[0, 0], 0.0, 1.0)

        return apply_tiled(to_gray(image), fn, tile=self.cfg.sr_tile, overlap=self.cfg.sr_overlap, scale=self.sr_scale, batch_size=self.cfg.batch_size)

    # -- the chain --------------------------------------------------------------------------------
    def plan(self, om: np.ndarray, diameter_px: float | None = None) -> EnhancePlan:
        if diameter_px is None and self.cfg.flow == "adaptive":
            from srpsa.inference.scale import estimate_particle_diameter

            diameter_px, _ = estimate_particle_diameter(to_gray(om))
        return plan_scales(float("nan") if diameter_px is None else diameter_px, self.cfg, self.sr_scale)

    def enhance(self, om: np.ndarray, diameter_px: float | None = None, keep_translation: bool = False, timer=None) -> EnhanceResult:
        """OM -> SEM-like at ``plan.output_scale`` x the input grid (see the module docstring)."""
        om = to_gray(om)
        plan = self.plan(om, diameter_px)
        ctx = timer if timer is not None else (lambda _name: contextlib.nullcontext())
        with ctx("translate"):
            translated = self.translate(resize(om, plan.translate_scale))
        if self.cfg.sr_mode == "none":
            return EnhanceResult(translated, plan, translated if keep_translation else None, {"flow": self.cfg.flow, "sr_mode": "none"})
        with ctx("super_resolve"):
            lr = resize(translated, plan.sr_input_scale / plan.translate_scale)
            sr = self.super_resolve(lr)
        return EnhanceResult(sr, plan, translated if keep_translation else None, {"flow": self.cfg.flow, "sr_mode": "model"})


def _nchw(tiles: np.ndarray) -> np.ndarray:
    """float32 ``(N, 1, H, W)`` from one tile ``(H, W)`` (batch size 1) or a stack ``(N, H, W)``."""
    t = np.ascontiguousarray(tiles, np.float32)
    return t[None, None] if t.ndim == 2 else t[:, None]


def to_input_coordinates(circles: np.ndarray, scale: float | tuple[float, float]) -> np.ndarray:
    """Map ``[x, y, r]`` from a grid ``scale`` times finer than the input back to input pixels.

    ``scale`` is one factor or ``(sx, sy)`` per axis (the exact ratio of the output to the input shape:
    rounding the stage sizes makes it differ from the nominal factor by up to a pixel per axis).
    """
    sx, sy = (scale, scale) if np.isscalar(scale) else (float(scale[0]), float(scale[1]))
    c = np.asarray(circles, np.float64).reshape(-1, 3).copy()
    c[:, 0] = (c[:, 0] + 0.5) / sx - 0.5
    c[:, 1] = (c[:, 1] + 0.5) / sy - 0.5
    c[:, 2] = c[:, 2] / math.sqrt(sx * sy)
    return c


def output_scales(input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> tuple[float, float]:
    """Exact ``(sx, sy)`` of an enhanced image relative to its input."""
    return output_shape[1] / input_shape[1], output_shape[0] / input_shape[0]
