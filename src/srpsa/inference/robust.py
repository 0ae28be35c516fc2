"""Out-of-domain safeguards of the detector (issue 13): the network's input spread for sparse particles,
and a second edge refinement for circles whose network radius was far off.

Both only act where the training data never went (particles on under 0.5 % of the pixels; a refinement
that failed), so in-distribution results are unchanged. Why by hand: they are a few lines around the
project's own normalisation and refinement; no library has them.
"""

from __future__ import annotations

import numpy as np

from srpsa.inference.refine import refine_circles
from srpsa.models.detector import image_stats

# The network's input spread is the 0.5-99.5 percentile range (models.detector.image_stats). When the
# particles cover less than 0.5 % of the pixels (sparse small disks: ISO TR 19672 frames of 7-15 px hold
# 0.1-0.4 % dark pixels), that range is the background's alone, often exactly 0, and the particles reach
# the network at -1000 spreads: every training image had its particles inside the range. Below this
# share of the 0.01-99.99 percentile range the wider range is used instead (issue 13).
MIN_SPREAD_SHARE = 0.2


def robust_stats(image: np.ndarray) -> tuple[float, float]:
    """:func:`srpsa.models.detector.image_stats`, with the spread widened to the 0.01-99.99 percentile
    range when the particles are too rare to reach the 0.5-99.5 one (``MIN_SPREAD_SHARE``)."""
    centre, spread = image_stats(image)
    flat = np.asarray(image, dtype=np.float32).ravel()
    if flat.size > 4_000_000:  # enough pixels for a 0.01 % tail, at bounded cost
        flat = flat[:: flat.size // 4_000_000 + 1]
    lo, hi = np.percentile(flat, [0.01, 99.99])
    wide = float(hi - lo)
    return (centre, wide) if spread < MIN_SPREAD_SHARE * wide else (centre, spread)


# Fewer refined circles than this: no typical radius to restart the others from.
MIN_REFINED_FOR_RETRY = 5


def rerefine_failed(img: np.ndarray, circles: np.ndarray, ok: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray, int]:
    """Refine the circles whose refinement failed again, starting from the image's typical refined radius.

    The refinement searches edges within ``cfg.window`` of the network's radius. Out of its training
    domain the network can put a centre right and the radius far off (ideal binary ISO TR 19672 disks of
    10 px: half of the radii at 0.5x or near 0, issue 13), and the edge then lies outside the window:
    the circle keeps the network's radius. The other particles of the same image say where to look: the
    median radius of the circles that did refine. Those that refine from it take the edge found; the rest
    keep what they had. Returns circles, the refined mask and how many were recovered.
    """
    fail = ~ok
    if ok.sum() < MIN_REFINED_FOR_RETRY or not fail.any():
        return circles, ok, 0
    start = circles[fail].copy()
    start[:, 2] = float(np.median(circles[ok, 2]))
    again, ok2 = refine_circles(img, start, cfg)
    if not ok2.any():
        return circles, ok, 0
    circles, ok = circles.copy(), ok.copy()
    idx = np.flatnonzero(fail)[ok2]
    circles[idx] = again[ok2]
    ok[idx] = True
    return circles, ok, int(ok2.sum())
