"""The size guide: the typical particle size of an image, read by a detector from a sample of it.

Two consumers. The full pipeline's enhance chain and its SEM detector both need the particle size before
they run (docs/gans.md, "Working scale"): the OM detector's detections give it (see
:mod:`srpsa.inference.full`). And any detector on a large image without a given size range
(:func:`guided_detect`): the automatic size estimate (:mod:`srpsa.inference.scale`) is deliberately
generous (its range is widened 2x each way), and on a 4752x3168 image that put a near-full-resolution
pyramid scale in, 72 % of a 150 s run (docs/speed.md). The detector's own detections on a window give
a range that is both cheaper and tighter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from srpsa.inference.detect import Detector
from srpsa.inference.window import centred_window
from srpsa.io.images import to_gray
from srpsa.psd.weighted import weighted_percentile


@dataclass(frozen=True)
class GuideConfig:
    """How a detector's detections on a sample set the working scale and the detector's range."""

    enabled: bool = True
    min_guide_particles: int = 5  # fewer detections than this: use the generic size estimate
    # Re-measure the guide's circles on the image (srpsa.inference.refine) before the median. Off: measured
    # on the generalisation benchmark (2026-12-03) it fixes the guide on ideal binary disks (ISO 7 px: raw
    # median 4.4 px, refined 7.1), which the binary route now measures without a network, but it moved
    # other images across the native/GAN route boundary for the worse (trackpy latex pooled mean +5.4 ->
    # +12.1 %, AMPIS image Sc2 F1 0.717 -> 0.629, render2 halo_000 mean -5 -> -24 %).
    refine: bool = False
    # The (second) detector pass starts from diameters (median / f, median * f); most powders span < 10x
    # and the detector's pyramid extension follows detections beyond.
    range_factor: float = 3.0
    # ... narrowed to the guide's own tails when they are closer: (q / tail_margin, q' * tail_margin) for
    # the ``tail_quantile`` and ``1 - tail_quantile`` quantiles. The finest scale costs the most, so a
    # narrow powder should not pay for a 9x range (0: off, always median / f .. median * f).
    tail_quantile: float = 0.02
    tail_margin: float = 1.3
    # A median needs a sample, not every particle: on a larger image the guide reads a centred window
    # of this many pixels (whole-image guide on 4752x3168: 51 s of a 93 s run, docs/speed.md). 0: always
    # the whole image.
    max_pixels: int = 1_000_000
    # ... and the window shrinks further so that all pyramid scales together feed the network at most this
    # many pixels: the automatic range of a guide reaches down to ~3 px and so puts a 2x scale in (4x the
    # window's pixels). Measured on the 1024x768 demo image: 15.9 s for the guide at 1 Mpx, 3.8 s at
    # 0.25 Mpx, median 18.7 vs 18.0 px (docs/decisions.md, "Bounded cost"). 0: no such bound.
    max_network_pixels: int = 1_000_000
    # Full pipeline only: after translation, the SEM detector reads a window of the SEM-like image with its
    # automatic range (``verify_max_pixels``, about 0.3-0.8 s). When its median exceeds the OM guide's
    # by more than ``verify_ratio``, the OM detector misread the image (it answers the dark gaps of
    # reflected-light bead photos, docs/real_images.md) and the pipeline re-plans from the SEM-side sizes.
    # 1.5: the SEM detector's range (the guide's tails x and / tail_margin) cannot absorb a larger error.
    # Only upward: a SEM-side median far below the guide came from texture read as specks (measured: an
    # under-trained translator on held-out optics, 21380 false circles after a downward re-plan). On the
    # simulator presets the two agree within 1.39x (the SEM side is the closer to the truth).
    verify: bool = True
    verify_max_pixels: int = 500_000
    verify_ratio: float = 1.5


def _guide_range(d: np.ndarray, weights: np.ndarray | None, cfg: GuideConfig) -> tuple[float, tuple[float, float]]:
    """(median, SEM-detector range) from guide diameters (``weights`` None: unweighted)."""
    def q(p: float) -> float:
        return float(np.quantile(d, p)) if weights is None else float(weighted_percentile(d, 100.0 * p, weights))

    med = q(0.5)
    lo, hi = med / cfg.range_factor, med * cfg.range_factor
    if cfg.tail_quantile > 0:
        lo = max(lo, q(cfg.tail_quantile) / cfg.tail_margin)
        hi = min(hi, q(1.0 - cfg.tail_quantile) * cfg.tail_margin)
    return med, (lo, hi)


def size_guide(om_detector: Detector, om: np.ndarray, cfg: GuideConfig | None = None) -> tuple[float, tuple[float, float]] | None:
    """(median diameter, (d_min, d_max)) in OM px from the OM detector's detections (no refinement), or
    None when it finds fewer than ``cfg.min_guide_particles``: :func:`guide_pass` without its info."""
    return guide_pass(om_detector, om, cfg)[0]


def guide_pass(om_detector: Detector, om: np.ndarray, cfg: GuideConfig | None = None) -> tuple[tuple[float, tuple[float, float]] | None, dict]:
    """The size guide (see :func:`size_guide`) and what its detector pass cost: ``{"guide_shape": [h, w],
    "guide_scales": [...]}`` of the last pass (for speed accounting).

    Images above ``cfg.max_pixels`` are sampled through a centred window. Only particles wholly inside
    the window count, each weighted by ``1 / ((W - d) (H - d))``, the inverse of the area where its
    centre could lie and still fit (the Miles-Lantuejoul edge correction of stereology): without it,
    large particles, more often cut by the window's border, would pull the median down. When the window
    holds too few particles (large ones), the whole image is read, shrunk to ``max_pixels``.
    """
    cfg = cfg or GuideConfig()
    info: dict = {}

    def detect(image: np.ndarray) -> np.ndarray:
        found = om_detector.detect(image, refine=cfg.refine)
        info.update(guide_shape=list(image.shape[:2]), guide_scales=list(found.info.get("scales", [])))
        return found.circles

    h, w = om.shape[:2]
    budget = _window_budget(om_detector, om, cfg)
    # a window shrunk for its network cost that holds too few particles (sparse small ones) is read
    # again at the full max_pixels before the image is shrunk (which would lose small particles)
    tries = [b for b in dict.fromkeys((budget, cfg.max_pixels)) if b and h * w > b]
    for budget in tries:
        ys, xs = centred_window((h, w), budget)
        wh, ww = ys.stop - ys.start, xs.stop - xs.start
        c = detect(om[ys, xs])
        x, y, r = c[:, 0], c[:, 1], c[:, 2]
        inside = (x - r >= -0.5) & (y - r >= -0.5) & (x + r <= ww - 0.5) & (y + r <= wh - 0.5)
        d = 2.0 * r[inside]
        if len(d) >= cfg.min_guide_particles:
            return _guide_range(d, 1.0 / np.maximum((ww - d) * (wh - d), 1.0), cfg), info
    if tries and cfg.max_pixels and h * w > cfg.max_pixels:
        f = math.sqrt(cfg.max_pixels / (h * w))
        circles = detect(cv2.resize(om, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)) / f
    else:
        circles = detect(om)
    if len(circles) < cfg.min_guide_particles:
        return None, info
    return _guide_range(2.0 * circles[:, 2], None, cfg), info


def _window_budget(detector: Detector, om: np.ndarray, cfg: GuideConfig) -> int:
    """Pixels of the guide's window: ``cfg.max_pixels``, less when the pyramid the detector would run on
    that window feeds the network more than ``cfg.max_network_pixels`` (0: whole image)."""
    budget = cfg.max_pixels
    if not cfg.max_network_pixels:
        return budget
    h, w = om.shape[:2]
    n = min(h * w, budget) if budget else h * w
    ys, xs = centred_window((h, w), n)
    try:  # the scales the detector's own automatic choice gives on that window (a cheap image statistic)
        scales = detector.resolve_scales(to_gray(om[ys, xs]))
    except Exception:  # noqa: BLE001 - no usable estimate: the detector's own pass decides, as before
        return budget
    cost = sum(s * s for s in scales) or 1.0
    return max(int(min(n, cfg.max_network_pixels / cost)), 64 * 64)


def guided_detect(detector: Detector, image: np.ndarray, cfg: GuideConfig | None = None, refine: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Detect on an image above ``cfg.max_pixels`` in two passes: the guide on a window, then the whole
    image at the scales of the guide's range (which may still extend); smaller images, or no usable
    guide, take the detector's single automatic pass. Returns circles, scores and what was decided."""
    cfg = cfg or GuideConfig()
    h, w = image.shape[:2]
    large = cfg.enabled and cfg.max_pixels and h * w > cfg.max_pixels
    guide, pass_info = guide_pass(detector, image, cfg) if large else (None, {})
    if guide is None:
        found = detector.detect(image, refine=refine)
        return found.circles, found.scores, {"size_from": "estimate", "scales": list(found.info.get("scales", []))}
    med, d_range = guide
    info = {"size_from": "guide", "guide_median_diameter_px": med, "guide_range_px": list(d_range), **pass_info}
    found = detector.detect(image, diameter_range=d_range, refine=refine, extend=True)
    info["scales"] = list(found.info.get("scales", []))
    return found.circles, found.scores, info
