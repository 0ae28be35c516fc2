"""Polarity for the SEM-domain detector: bright particles on a dark ground, or the inverse?

The SEM detector was trained on secondary-electron images: particles brighter than the ground, with
bright edges. Dark particles on a bright ground (TEM bright field, ISO TR 19672 disks, back-lit
shadows) are not seen at all: ``--modality sem`` gave F1 0.000 on them (issue 13), and its circles,
drawn on the ground between the particles, still looked round to the network.

The decision here is model-free in its criterion: the detector runs on a window of the image as it is
and on its inverse, and the self-check's radial F (:mod:`srpsa.inference.quality`: how much more the
intensities differ between rings around a circle than within a ring) of each pass's circles is
compared. Circles on real particles have it by the hundreds; circles on the ground between particles
(what the wrong polarity gives) a few. The inverse is used only when its median radial F is
``ratio`` times the image's own and it found at least ``min_circles``: an image in the training
polarity is kept as it is unless the evidence is clear. The margin was checked on the simulator's
SEM images (``benchmarks/polarity_calibration.py``: training data, never the benchmark's images).

Why by hand: no library decides image polarity for a particle detector; it is two detector passes and
the quality module's ring statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srpsa.inference.detect import Detector
from srpsa.inference.quality import QualityConfig, _normalised, radial_f, ring_profiles
from srpsa.inference.window import centred_window
from srpsa.io.images import to_gray


@dataclass(frozen=True)
class PolarityConfig:
    enabled: bool = True
    window_pixels: int = 500_000  # the decision reads a centred window of at most this many pixels
    ratio: float = 2.0  # inverse's median radial F over the image's own needed to invert
    min_circles: int = 5  # the inverse must find at least this many circles
    max_circles: int = 2000  # radial F on a random sample of at most this many circles


def invert(gray: np.ndarray) -> np.ndarray:
    """The photometric inverse of a float gray image within its own range (``[0, 1]`` stays ``[0, 1]``)."""
    lo, hi = float(gray.min()), float(gray.max())
    lo, hi = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (lo, hi)
    return ((lo + hi) - gray).astype(np.float32)


def median_radial_f(gray: np.ndarray, circles: np.ndarray, max_circles: int = 2000, seed: int = 0) -> float:
    """Median radial F of ``circles`` on ``gray`` (0 without circles): the polarity criterion."""
    if len(circles) == 0:
        return 0.0
    if len(circles) > max_circles:
        circles = circles[np.random.default_rng(seed).choice(len(circles), max_circles, replace=False)]
    profiles, _ = ring_profiles(_normalised(gray), np.asarray(circles, np.float64), QualityConfig())
    return float(np.median(radial_f(profiles)))


def decide_polarity(detector: Detector, gray: np.ndarray, diameter_range: tuple[float, float] | None = None,
                    refine: bool = True, cfg: PolarityConfig | None = None) -> tuple[bool, dict, object]:
    """(invert?, info for summary.json, the as-is detection of the window when it is the whole image)."""
    cfg = cfg or PolarityConfig()
    ys, xs = centred_window(gray.shape, cfg.window_pixels)
    win = gray[ys, xs]
    whole = win.shape == gray.shape
    passes = {}
    for name, im in (("as_is", win), ("inverted", invert(win))):
        found = detector.detect(im, diameter_range=diameter_range, refine=refine)
        passes[name] = (found, median_radial_f(im, found.circles, cfg.max_circles))
    f_as, f_inv = passes["as_is"][1], passes["inverted"][1]
    n_inv = len(passes["inverted"][0].circles)
    flip = n_inv >= cfg.min_circles and f_inv > cfg.ratio * max(f_as, 1e-6)
    info = {"polarity": "inverted" if flip else "as is",
            "polarity_test": {"median_radial_f_as_is": round(f_as, 2), "median_radial_f_inverted": round(f_inv, 2),
                              "circles_as_is": len(passes["as_is"][0].circles), "circles_inverted": n_inv,
                              "ratio_needed": cfg.ratio, "window": [int(win.shape[0]), int(win.shape[1])]}}
    reuse = passes["inverted" if flip else "as_is"][0] if whole else None
    return flip, info, reuse


def polarity_detect(detector: Detector, image: np.ndarray, refine: bool = True,
                    diameter_range: tuple[float, float] | None = None,
                    cfg: PolarityConfig | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The SEM detector's pass with the polarity decided first: circles, scores, info (``polarity``,
    ``polarity_test`` and what :func:`srpsa.inference.guide.guided_detect` records)."""
    from srpsa.inference.guide import guided_detect

    cfg = cfg or PolarityConfig()
    gray = to_gray(image)
    if not cfg.enabled:
        flip, info, reuse = False, {"polarity": "as is (not tested)"}, None
    else:
        flip, info, reuse = decide_polarity(detector, gray, diameter_range, refine, cfg)
    use = invert(gray) if flip else gray
    if reuse is not None:  # the window was the whole image: that pass is the result
        size_from = "diameter_range" if diameter_range is not None else "estimate"
        return reuse.circles, reuse.scores, {"size_from": size_from, "scales": list(reuse.info.get("scales", [])), **info}
    if diameter_range is not None:
        found = detector.detect(use, diameter_range=diameter_range, refine=refine)
        return found.circles, found.scores, {"size_from": "diameter_range", "scales": list(found.info.get("scales", [])), **info}
    circles, scores, det_info = guided_detect(detector, use, refine=refine)
    return circles, scores, {**det_info, **info}
