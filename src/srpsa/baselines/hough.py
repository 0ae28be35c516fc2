"""Peer baseline: OpenCV's circle Hough transform, grid-searched on images with ground truth.

Both OpenCV variants are covered:

- ``"gradient"`` (``cv2.HOUGH_GRADIENT``, the 2-1 Hough transform): ``param1`` is the upper Canny
  threshold, ``param2`` the accumulator votes a centre needs (it grows with the circle's perimeter);
- ``"gradient_alt"`` (``cv2.HOUGH_GRADIENT_ALT``): ``param1`` is the Scharr-gradient edge threshold
  (around 300 is typical) and ``param2`` the "perfectness" a circle needs, in (0, 1].

Preprocessing is what a careful user would do: the float image is contrast-stretched to uint8 between
its 0.5 and 99.5 percentiles (so ``param1`` means the same on dim and bright images) and optionally
Gaussian-blurred.

Coordinates: OpenCV returns ``(x, y, r)`` with pixel centres at integer coordinates, which is srpsa's
convention, so no offset is applied. Checked empirically (see ``docs/evaluation.md``): on 200 anti-aliased
discs at random sub-pixel positions, the mean centre error was below 0.05 px in x and y for both methods
at ``dp = 2`` (and at ``dp = 1``), with a spread of about 0.3 px (``dp = 1``) to 0.57 px (``dp = 2``) from
the accumulator's resolution.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from srpsa.baselines import tuning
from srpsa.errors import InputError
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR

METHODS = {"gradient": cv2.HOUGH_GRADIENT, "gradient_alt": cv2.HOUGH_GRADIENT_ALT}


@dataclass(frozen=True)
class HoughParams:
    """Parameters of :func:`hough_detect` (the arguments of ``cv2.HoughCircles`` plus preprocessing).

    Attributes
    ----------
    method : {"gradient", "gradient_alt"}
    dp : float
        Inverse accumulator resolution (1 = image resolution, 2 = half).
    min_dist_frac : float
        Minimum distance between detected centres, as a fraction of ``expected_radius_px``
        (touching particles of radius r have centres 2 r apart).
    param1, param2 : float
        Edge threshold and detection threshold (meaning depends on ``method``, see the module docstring).
    min_radius_px, max_radius_px : int
        Radius search range in pixels (OpenCV takes integers).
    blur_sigma : float
        Standard deviation of the Gaussian pre-blur in pixels; 0 disables it.
    expected_radius_px : float
        Typical particle radius; sets the absolute minimum centre distance.
    """

    method: str = "gradient_alt"
    dp: float = 1.5
    min_dist_frac: float = 1.0
    param1: float = 300.0
    param2: float = 0.8
    min_radius_px: int = 3
    max_radius_px: int = 30
    blur_sigma: float = 1.0
    expected_radius_px: float = 10.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"Hough method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.dp >= 1:
            raise InputError(f"Hough dp must be >= 1, got {self.dp}")
        if not (1 <= self.min_radius_px < self.max_radius_px):
            raise InputError(f"Hough radius range needs 1 <= min < max, got {self.min_radius_px}..{self.max_radius_px}")
        if not (self.min_dist_frac > 0 and self.expected_radius_px > 0 and self.param1 > 0 and self.param2 > 0):
            raise InputError("Hough min_dist_frac, expected_radius_px, param1 and param2 must be positive")
        if self.method == "gradient_alt" and self.param2 > 1:
            raise InputError(f"HOUGH_GRADIENT_ALT param2 is a perfectness in (0, 1], got {self.param2}")
        if self.blur_sigma < 0:
            raise InputError(f"Hough blur_sigma must be >= 0, got {self.blur_sigma}")

    @property
    def min_dist_px(self) -> float:
        return max(1.0, self.min_dist_frac * self.expected_radius_px)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Contrast-stretch a float image to uint8 between its 0.5 and 99.5 percentiles."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"Hough baseline needs a 2-D gray image, got shape {img.shape}")
    lo, hi = np.percentile(img, [0.5, 99.5])
    if hi <= lo:  # flat image: nothing to find
        return np.zeros(img.shape, np.uint8)
    return np.clip((img - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def preprocess(image: np.ndarray, blur_sigma: float) -> np.ndarray:
    u8 = to_uint8(image)
    if blur_sigma > 0:
        u8 = cv2.GaussianBlur(u8, (0, 0), blur_sigma)
    return u8


def hough_detect(image: np.ndarray, params: HoughParams) -> tuple[np.ndarray, np.ndarray]:
    """Detect circles with ``cv2.HoughCircles``.

    Parameters
    ----------
    image : np.ndarray, float32 (H, W)
        Gray image (any range; it is percentile-stretched).
    params : HoughParams

    Returns
    -------
    circles : np.ndarray, float64 (N, 3)
        ``[x, y, r]`` in pixels (pixel centres at integer coordinates).
    scores : np.ndarray, float64 (N,)
        Radial edge strength along each circle, in [0, 1] (see :func:`edge_support`); OpenCV reports no
        accumulator votes through its Python binding.
    """
    u8 = preprocess(image, params.blur_sigma)
    found = cv2.HoughCircles(
        u8,
        METHODS[params.method],
        float(params.dp),
        float(params.min_dist_px),
        param1=float(params.param1),
        param2=float(params.param2),
        minRadius=int(params.min_radius_px),
        maxRadius=int(params.max_radius_px),
    )
    if found is None:
        return np.zeros((0, 3)), np.zeros(0)
    circles = found.reshape(-1, found.shape[-1])[:, :3].astype(np.float64)
    return circles, edge_support(u8, circles)


def edge_support(u8: np.ndarray, circles: np.ndarray, n_samples: int = 32) -> np.ndarray:
    """Mean radial gradient along each circle, normalised by the image's 99th-percentile gradient.

    A detection on a real particle edge scores near 1, one on background texture near 0; it ranks
    detections for precision-recall curves.
    """
    if len(circles) == 0:
        return np.zeros(0)
    img = u8.astype(np.float32)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    norm = float(np.percentile(np.hypot(gx, gy), 99)) or 1.0
    t = np.linspace(0, 2 * np.pi, n_samples, endpoint=False)
    cos, sin = np.cos(t), np.sin(t)
    xs = circles[:, :1] + circles[:, 2:3] * cos
    ys = circles[:, 1:2] + circles[:, 2:3] * sin
    h, w = u8.shape
    xi = np.clip(np.rint(xs).astype(int), 0, w - 1)
    yi = np.clip(np.rint(ys).astype(int), 0, h - 1)
    radial = np.abs(gx[yi, xi] * cos + gy[yi, xi] * sin)  # either polarity: dark or bright particles
    return np.clip(radial.mean(axis=1) / norm, 0.0, 1.0).astype(np.float64)


# Coarse grid per method. For "gradient", param2 (votes) is given as a fraction of the perimeter
# 2*pi*r_median of the typical particle ("param2_frac"), so one grid fits any particle size. Vote
# thresholds tied to the smallest particles and Canny thresholds below 100 were tried and dropped: on a
# 1536 x 1024 SEM image they yield thousands of centre candidates and one call takes over a minute.
DEFAULT_GRID: dict[str, dict[str, Sequence[float]]] = {
    "gradient_alt": {
        "dp": (1.0, 1.5),
        "param1": (100.0, 200.0, 300.0),
        "param2": (0.5, 0.65, 0.8, 0.9),
        "min_dist_frac": (0.75, 1.25),
        "blur_sigma": (0.0, 1.0, 2.0),
    },
    "gradient": {
        "dp": (1.0, 1.5),
        "param1": (100.0, 200.0, 300.0),
        "param2_frac": (0.15, 0.3, 0.45, 0.6),
        "min_dist_frac": (0.75, 1.25),
        "blur_sigma": (0.0, 1.0, 2.0),
    },
}


def _candidates(grid: Mapping[str, Mapping[str, Sequence[float]]], base: dict, r_typical: float) -> list[HoughParams]:
    out: list[HoughParams] = []
    for method, axes in grid.items():
        if method not in METHODS:
            raise InputError(f"Hough grid method must be one of {', '.join(METHODS)}, got {method!r}")
        axes = dict(axes)
        frac = axes.pop("param2_frac", None)
        if frac is not None:
            axes["param2"] = tuple(max(1.0, round(f * 2 * math.pi * r_typical)) for f in frac)
        for combo in tuning.expand(axes, {**base, "method": method}):
            try:
                out.append(HoughParams(**combo))
            except TypeError as exc:
                raise InputError(f"Hough grid: {exc}") from None
            except InputError:
                continue  # e.g. param2 > 1 for gradient_alt from a user grid: skip, not fatal
    return out


def _refine(best: HoughParams, r_typical: float) -> list[HoughParams]:
    """Fine grid around the best coarse point: the detection threshold and edge threshold matter most."""
    if best.method == "gradient_alt":
        p2 = {min(0.99, max(0.05, best.param2 + d)) for d in (-0.1, -0.05, 0.0, 0.05, 0.1)}
    else:
        step = max(1.0, round(0.075 * 2 * math.pi * r_typical))
        p2 = {max(1.0, best.param2 + k * step) for k in (-2, -1, 0, 1, 2)}
    p1 = {best.param1 * f for f in (0.75, 1.0, 1.33)}
    md = {max(0.25, best.min_dist_frac + d) for d in (-0.25, 0.0, 0.25)}
    blur = {max(0.0, best.blur_sigma + d) for d in (-0.5, 0.0, 0.5)}
    out = []
    for combo in tuning.expand({"param2": sorted(p2), "param1": sorted(p1), "min_dist_frac": sorted(md), "blur_sigma": sorted(blur)}, asdict(best)):
        try:
            out.append(HoughParams(**combo))
        except InputError:
            continue
    return out


def tune_hough(
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    grid: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    n_jobs: int = 1,
    *,
    match_factor: float = DEFAULT_MATCH_FACTOR,
    refine: bool = True,
    time_budget_s: float | None = 600.0,
    max_candidate_s: float | None = None,
    seed: int = 0,
) -> tuple[HoughParams, pd.DataFrame]:
    """Grid-search :class:`HoughParams` to maximise pooled F1 on images with ground-truth circles.

    The radius range comes from the ground truth (1st-99th percentile radius, widened by 20 %) and the
    expected radius is the median: the baseline gets the same size prior an expert user would type in.
    A coarse grid (:data:`DEFAULT_GRID`, 288 points) is followed by a fine grid (up to 135 points) around
    the best coarse point.

    Parameters
    ----------
    images : sequence of float32 (H, W) arrays
    gts : sequence of (N, 3) circle arrays, one per image
    grid : mapping method -> {field: values}, optional
        Replaces :data:`DEFAULT_GRID`. Fields are :class:`HoughParams` fields; for ``"gradient"``,
        ``param2_frac`` gives votes as a fraction of the median particle's perimeter.
    n_jobs : int
        Threads scoring candidates in parallel (OpenCV releases the GIL).
    match_factor : float
        Matching rule of :func:`srpsa.evaluation.match_circles`.
    refine : bool
        Run the fine stage.
    time_budget_s : float or None
        Wall-clock bound for the whole search; the best point scored so far is returned when it runs out.
    max_candidate_s : float or None
        A candidate still running after this long (checked between images) is abandoned as too slow.
        Default: a tenth of ``time_budget_s``.
    seed : int
        Order of evaluation (matters only when the budget cuts the search short).

    Returns
    -------
    best : HoughParams
    table : pandas.DataFrame
        Every tried candidate, best first (params, f1, precision, recall, tp, fp, fn,
        radius_median_abs_rel_error, seconds, stage, status); abandoned ones have f1 NaN and sort last.
    """
    images, gts = tuning.check_training_set(images, gts)
    r_lo, r_med, r_hi = tuning.radius_range(gts)
    base = {
        "min_radius_px": max(1, int(math.floor(0.8 * r_lo))),
        "max_radius_px": max(2, int(math.ceil(1.2 * r_hi))),
        "expected_radius_px": round(r_med, 3),
    }
    if base["max_radius_px"] <= base["min_radius_px"]:
        base["max_radius_px"] = base["min_radius_px"] + 1
    deadline = None if time_budget_s is None else time.perf_counter() + time_budget_s
    if max_candidate_s is None and time_budget_s is not None:
        max_candidate_s = time_budget_s / 10
    kw = {"match_factor": match_factor, "n_jobs": n_jobs, "deadline": deadline, "max_candidate_s": max_candidate_s, "seed": seed}

    coarse = _candidates(grid or DEFAULT_GRID, base, r_med)
    rows = tuning.grid_search(hough_detect, coarse, images, gts, stage="coarse", **kw)
    table = tuning.rank(rows)
    best = tuning.best_params(HoughParams, table)
    if refine:
        seen = set(coarse)
        fine = [p for p in _refine(best, r_med) if p not in seen]
        rows += tuning.grid_search(hough_detect, fine, images, gts, stage="fine", **kw)
        table = tuning.rank(rows)
        best = tuning.best_params(HoughParams, table)
    return best, table


def save_hough_params(path: str | Path, params: HoughParams) -> None:
    """Write tuned parameters as JSON."""
    tuning.save_params(path, params)


def load_hough_params(path: str | Path) -> HoughParams:
    """Read parameters written by :func:`save_hough_params`."""
    return tuning.load_params(path, HoughParams)


def with_radius_range(params: HoughParams, min_radius_px: float, max_radius_px: float) -> HoughParams:
    """Copy of ``params`` searching another radius range (e.g. a new magnification), keeping the rest."""
    lo = max(1, int(math.floor(min_radius_px)))
    hi = max(lo + 1, int(math.ceil(max_radius_px)))
    return replace(params, min_radius_px=lo, max_radius_px=hi, expected_radius_px=0.5 * (min_radius_px + max_radius_px))
