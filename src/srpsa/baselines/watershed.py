"""Peer baseline: the threshold + watershed pipeline of an ImageJ "Analyze Particles" user.

The steps mirror ImageJ's menu path (Process > Filters > Gaussian Blur; Image > Adjust > Threshold;
Process > Binary > Fill Holes; Process > Binary > Watershed; Analyze > Analyze Particles):

1. Gaussian smoothing (``blur_sigma``);
2. global automatic threshold (``threshold``: Otsu by default) with the particle polarity detected
   automatically (:func:`detect_polarity`) or given;
3. fill holes (bright centres of dark particles from illumination);
4. split touching particles: Euclidean distance transform, one marker per local maximum
   (``peak_local_max`` with ``min_peak_distance_px``), watershed of the negated distance map inside the
   mask; this is the role of ImageJ's EDM-based "Watershed" binary command;
5. drop objects smaller than ``min_area_px``;
6. report each object as its equivalent circle: centroid and ``r = sqrt(area / pi)``.

Centroids from :func:`skimage.measure.regionprops` are in (row, col) pixel-index coordinates, i.e. pixel
centres at integers, srpsa's convention, so no offset is applied.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage import filters, measure, segmentation
from skimage.feature import peak_local_max

from srpsa.baselines import tuning
from srpsa.errors import InputError
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR

THRESHOLDS = {
    "otsu": filters.threshold_otsu,
    "li": filters.threshold_li,
    "triangle": filters.threshold_triangle,
    "yen": filters.threshold_yen,
    "isodata": filters.threshold_isodata,
    "mean": filters.threshold_mean,
}
POLARITIES = ("auto", "dark", "bright")


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of :func:`watershed_detect`.

    Attributes
    ----------
    blur_sigma : float
        Gaussian smoothing before thresholding, pixels (0: none).
    threshold : str
        Automatic threshold method: one of :data:`THRESHOLDS`.
    polarity : {"auto", "dark", "bright"}
        Whether particles are darker or brighter than the background; "auto" decides per image.
    fill_holes : bool
        Fill holes inside objects before splitting.
    split : bool
        Split touching particles with the distance-transform watershed.
    min_peak_distance_px : int
        Minimum distance between two watershed markers (smaller values split more).
    min_area_px : float
        Objects with a smaller area (pixels) are removed.
    """

    blur_sigma: float = 1.0
    threshold: str = "otsu"
    polarity: str = "auto"
    fill_holes: bool = True
    split: bool = True
    min_peak_distance_px: int = 3
    min_area_px: float = 10.0

    def __post_init__(self) -> None:
        if self.threshold not in THRESHOLDS:
            raise InputError(f"watershed threshold must be one of {', '.join(THRESHOLDS)}, got {self.threshold!r}")
        if self.polarity not in POLARITIES:
            raise InputError(f"watershed polarity must be one of {', '.join(POLARITIES)}, got {self.polarity!r}")
        if self.blur_sigma < 0 or self.min_area_px < 0 or int(self.min_peak_distance_px) < 1:
            raise InputError("watershed blur_sigma and min_area_px must be >= 0 and min_peak_distance_px >= 1")


def detect_polarity(smoothed: np.ndarray, thresh: float) -> str:
    """Guess whether particles are "dark" or "bright" from which phase owns the image frame.

    The background is the phase that covers most of the one-pixel border (particles cut by the border
    cover only part of it); if the border is split almost evenly (40-60 %), the minority phase of the
    whole image is taken as the particles.
    """
    above = smoothed > thresh
    border = np.concatenate([above[0], above[-1], above[1:-1, 0], above[1:-1, -1]])
    frac_bright_border = float(border.mean())
    if frac_bright_border >= 0.6:
        return "dark"
    if frac_bright_border <= 0.4:
        return "bright"
    return "dark" if above.mean() >= 0.5 else "bright"


def segment(image: np.ndarray, params: WatershedParams) -> np.ndarray:
    """Label image (int32, 0 = background) of the particles found by the pipeline."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"watershed baseline needs a 2-D gray image, got shape {img.shape}")
    smoothed = ndi.gaussian_filter(img, params.blur_sigma) if params.blur_sigma > 0 else img
    if float(smoothed.max()) <= float(smoothed.min()):
        return np.zeros(img.shape, np.int32)
    thresh = float(THRESHOLDS[params.threshold](smoothed))
    polarity = detect_polarity(smoothed, thresh) if params.polarity == "auto" else params.polarity
    mask = smoothed < thresh if polarity == "dark" else smoothed > thresh
    if params.fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if params.split:
        dist = ndi.distance_transform_edt(mask)
        blobs = measure.label(mask)
        peaks = peak_local_max(dist, min_distance=int(params.min_peak_distance_px), labels=blobs, exclude_border=False)
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        # A blob without any peak (too small for the spacing) keeps one marker so it is not lost.
        missing = np.setdiff1d(np.unique(blobs[mask]), np.unique(blobs[markers > 0]))
        if missing.size:
            extra = ndi.maximum_position(dist, blobs, missing)
            for k, (r, c) in enumerate(extra, start=len(peaks) + 1):
                markers[r, c] = k
        labels = segmentation.watershed(-dist, markers, mask=mask)
    else:
        labels = measure.label(mask)
    if params.min_area_px > 0:
        # Done with bincount rather than remove_small_objects, whose size argument changed meaning
        # across scikit-image releases (min_size exclusive -> max_size inclusive in 0.26).
        area = np.bincount(labels.ravel())
        small = area < params.min_area_px
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return labels.astype(np.int32)


def watershed_detect(image: np.ndarray, params: WatershedParams) -> tuple[np.ndarray, np.ndarray]:
    """Detect particles as equivalent circles.

    Parameters
    ----------
    image : np.ndarray, float32 (H, W)
    params : WatershedParams

    Returns
    -------
    circles : np.ndarray, float64 (N, 3)
        ``[x, y, r]``: centroid and equivalent-circle radius ``sqrt(area / pi)``, pixels.
    scores : np.ndarray, float64 (N,)
        Inscribed-disc ratio ``pi * max(EDT)^2 / area`` in (0, 1]: round single particles score near 1,
        unsplit clumps and ragged blobs low.
    """
    labels = segment(image, params)
    if labels.max() == 0:
        return np.zeros((0, 3)), np.zeros(0)
    props = measure.regionprops_table(labels, properties=("label", "area", "centroid"))
    area = np.asarray(props["area"], dtype=np.float64)
    circles = np.column_stack([props["centroid-1"], props["centroid-0"], np.sqrt(area / np.pi)]).astype(np.float64)
    # Score: area of the largest inscribed disc over the object's area (1 for a disc, low for an unsplit
    # clump or a ragged blob). Far cheaper than solidity's convex hulls on thousands of objects.
    inscribed = ndi.maximum(ndi.distance_transform_edt(labels > 0), labels, props["label"])
    scores = np.clip(np.pi * np.square(np.asarray(inscribed, dtype=np.float64)) / area, 0.0, 1.0)
    return circles, scores


def gt_polarity(images: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> str:
    """Particle polarity read off ground truth: mean intensity inside the GT discs vs. outside."""
    inside, outside = [], []
    for im, g in zip(images, gts):
        h, w = im.shape
        yy, xx = np.mgrid[0:h, 0:w]
        disc = np.zeros((h, w), bool)
        for x, y, r in np.asarray(g).reshape(-1, 3):
            x0, x1 = max(0, int(x - r) - 1), min(w, int(x + r) + 2)
            y0, y1 = max(0, int(y - r) - 1), min(h, int(y + r) + 2)
            sub = (xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2 <= r * r
            disc[y0:y1, x0:x1] |= sub
        if disc.any():
            inside.append(float(im[disc].mean()))
        if (~disc).any():
            outside.append(float(im[~disc].mean()))
    if not inside or not outside:
        return "auto"
    return "dark" if np.mean(inside) < np.mean(outside) else "bright"


DEFAULT_GRID: dict[str, Sequence] = {
    "blur_sigma": (0.0, 1.0, 2.0),
    "threshold": ("otsu", "li", "triangle"),
    "min_peak_frac": (0.4, 0.7, 1.0),  # marker spacing as a fraction of the median GT radius
    "min_area_frac": (0.25, 0.5),  # smallest object as a fraction of the smallest GT particle's area
}


def _to_params(combo: Mapping, r_lo: float, r_med: float) -> WatershedParams:
    c = dict(combo)
    if "min_peak_frac" in c:
        c["min_peak_distance_px"] = max(1, int(round(c.pop("min_peak_frac") * r_med)))
    if "min_area_frac" in c:
        c["min_area_px"] = round(c.pop("min_area_frac") * math.pi * r_lo * r_lo, 2)
    try:
        return WatershedParams(**c)
    except TypeError as exc:
        raise InputError(f"watershed grid: {exc}") from None


def tune_watershed(
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    grid: Mapping[str, Sequence] | None = None,
    n_jobs: int = 1,
    *,
    match_factor: float = DEFAULT_MATCH_FACTOR,
    refine: bool = True,
    time_budget_s: float | None = 600.0,
    max_candidate_s: float | None = None,
    seed: int = 0,
) -> tuple[WatershedParams, pd.DataFrame]:
    """Grid-search :class:`WatershedParams` to maximise pooled F1 (same protocol as :func:`tune_hough`).

    The polarity is read from the ground truth (:func:`gt_polarity`) and fixed. The coarse grid
    (:data:`DEFAULT_GRID`, 54 points; ``min_peak_frac`` and ``min_area_frac`` are relative to the
    ground-truth radii) is followed by a fine search of the marker spacing around the best point.

    Returns
    -------
    best : WatershedParams
    table : pandas.DataFrame
        Every scored candidate, best first.
    """
    images, gts = tuning.check_training_set(images, gts)
    r_lo, r_med, _ = tuning.radius_range(gts)
    base = {"polarity": gt_polarity(images, gts)}
    deadline = None if time_budget_s is None else time.perf_counter() + time_budget_s
    if max_candidate_s is None and time_budget_s is not None:
        max_candidate_s = time_budget_s / 10
    kw = {"match_factor": match_factor, "n_jobs": n_jobs, "deadline": deadline, "max_candidate_s": max_candidate_s, "seed": seed}

    candidates = list({_to_params(c, r_lo, r_med): None for c in tuning.expand(grid or DEFAULT_GRID, base)})
    rows = tuning.grid_search(watershed_detect, candidates, images, gts, stage="coarse", **kw)
    table = tuning.rank(rows)
    best = tuning.best_params(WatershedParams, table)
    if refine:
        seen = set(candidates)
        md = best.min_peak_distance_px
        fine = []
        for combo in tuning.expand(
            {
                "min_peak_distance_px": sorted({max(1, md + d) for d in (-2, -1, 0, 1, 2)}),
                "blur_sigma": sorted({max(0.0, best.blur_sigma + d) for d in (-0.5, 0.0, 0.5)}),
            },
            asdict(best),
        ):
            p = WatershedParams(**combo)
            if p not in seen:
                fine.append(p)
        rows += tuning.grid_search(watershed_detect, fine, images, gts, stage="fine", **kw)
        table = tuning.rank(rows)
        best = tuning.best_params(WatershedParams, table)
    return best, table


def save_watershed_params(path: str | Path, params: WatershedParams) -> None:
    """Write tuned parameters as JSON."""
    tuning.save_params(path, params)


def load_watershed_params(path: str | Path) -> WatershedParams:
    """Read parameters written by :func:`save_watershed_params`."""
    return tuning.load_params(path, WatershedParams)
