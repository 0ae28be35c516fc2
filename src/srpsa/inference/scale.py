"""Pick the pyramid scales: a fast particle-size estimate and the scale chooser.

The network sees particles best when their apparent radius lies in a trained band of output cells
(``InferenceConfig.target_band``, e.g. 1.3-4 cells = 5-16 px at the network input). Users' particles
span about 8 to 300 px in diameter, so the image is fed at the scales that bring every expected size
into that band.

Size estimate (:func:`estimate_particle_diameter`), in two steps:

1. **Scale-space**: the energy of the scale-normalised Laplacian of Gaussian, ``mean((s^2 LoG_s * I)^2)``,
   over a geometric series of ``s`` (4 per octave, computed on an image pyramid so each level costs
   about the same). A disc of radius ``R`` responds most at ``s ~ R / sqrt(2)``; the strongest interior
   local maximum of the curve (parabolic interpolation in ``log s``) gives a coarse diameter
   ``2 sqrt(2) s``. It is coarse: dense packing and ringed (OM) particles pull it down by ~15-30 %.
2. **Edges**: the strongest blob centres at that scale (LoG extrema of the dominant polarity) are
   measured with the radial-profile edge refinement of :mod:`srpsa.inference.refine`, twice: edges near
   the coarse radius, and the outermost strong edge out to 3.5 coarse radii (the coarse scale may have
   locked onto a lens spot inside transmitted-light particles). The median refined diameters are the
   candidates; :func:`estimate_particle_diameter` returns their geometric mean and
   :func:`estimate_diameter_range` a range spanning both. The confidence combines how many blobs gave
   a usable edge, how distinct the scale-space peak is and how well the two candidates agree.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage

from srpsa.errors import InputError
from srpsa.inference.refine import refine_circles
from srpsa.models.detector_config import STRIDE, InferenceConfig, RefineConfig

_PER_OCTAVE = 4
_MIN_SIGMA = 1.0  # px: diameters below ~3 px are not particles one can size
_MAX_BLOBS = 300


def log_energy_curve(image: np.ndarray, *, min_sigma: float = _MIN_SIGMA, max_sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scale-normalised LoG energy ``mean((s^2 LoG_s * I)^2)`` for ``s`` on a geometric grid.

    Parameters
    ----------
    image : np.ndarray, (H, W)
        Gray image.
    min_sigma, max_sigma : float
        Range of ``s`` in pixels (default upper bound: a third of the shorter side / 2 sqrt 2, so the
        largest blob considered still fits 3 times across the image).

    Returns
    -------
    sigmas, energy : np.ndarray
    """
    img = np.asarray(image, np.float32)
    h, w = img.shape
    if max_sigma is None:
        max_sigma = min(h, w) / 3.0 / (2.0 * math.sqrt(2.0))
    n = int(math.floor(math.log2(max(max_sigma, min_sigma) / min_sigma) * _PER_OCTAVE)) + 1
    sigmas = min_sigma * 2.0 ** (np.arange(n) / _PER_OCTAVE)
    energy = np.zeros(n)
    pyramid = {1: img}
    for i, s in enumerate(sigmas):
        # Work on a level where the blur is 2-4 px: same cost and accuracy at every scale.
        f = int(2 ** max(0, math.floor(math.log2(s / 2.0))))
        if f not in pyramid:
            pyramid[f] = cv2.resize(img, (max(w // f, 1), max(h // f, 1)), interpolation=cv2.INTER_AREA)
        lvl = pyramid[f]
        sl = s / f
        lap = cv2.Laplacian(cv2.GaussianBlur(lvl, (0, 0), sl), cv2.CV_32F, ksize=1) * (sl * sl)
        # Drop a border of 2 sigma: the image edge is a step, not a particle.
        b = int(math.ceil(2 * sl))
        core = lap[b:-b or None, b:-b or None]
        energy[i] = float(np.mean(core.astype(np.float64) ** 2)) if core.size else 0.0
    return sigmas, energy


def _peak_sigma(sigmas: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
    """Strongest interior local maximum of the curve (parabola in log sigma) and its prominence."""
    if len(energy) < 3 or energy.max() <= 0:
        return float(sigmas[int(np.argmax(energy))]) if len(energy) else _MIN_SIGMA, 0.0
    e = energy / energy.max()
    interior = np.flatnonzero((e[1:-1] >= e[:-2]) & (e[1:-1] >= e[2:])) + 1
    if interior.size == 0:
        i = int(np.argmax(e))
        return float(sigmas[i]), 0.0
    i = int(interior[np.argmax(e[interior])])
    denom = e[i - 1] - 2 * e[i] + e[i + 1]
    delta = 0.5 * (e[i - 1] - e[i + 1]) / denom if denom < 0 else 0.0
    log_s = math.log2(sigmas[i]) + float(np.clip(delta, -0.5, 0.5)) / _PER_OCTAVE
    # Prominence: how far the curve falls on both sides (a flat curve means no preferred size).
    left = e[:i].min() if i > 0 else e[i]
    right = e[i + 1:].min() if i + 1 < len(e) else e[i]
    prominence = float(e[i] - max(left, right))
    return 2.0 ** log_s, prominence


def _blob_centres(img: np.ndarray, sigma: float, max_n: int) -> np.ndarray:
    """Centres of the strongest LoG extrema at ``sigma`` of the dominant polarity, ``(N, 2)`` x, y."""
    h, w = img.shape
    f = int(2 ** max(0, math.floor(math.log2(sigma / 2.0))))
    lvl = cv2.resize(img, (max(w // f, 1), max(h // f, 1)), interpolation=cv2.INTER_AREA) if f > 1 else img
    sl = sigma / f
    lap = cv2.Laplacian(cv2.GaussianBlur(lvl, (0, 0), sl), cv2.CV_32F, ksize=1)
    size = max(3, int(2 * sl) | 1)
    best: tuple[float, np.ndarray] | None = None
    for sign in (-1.0, 1.0):  # bright blobs have a negative Laplacian, dark ones a positive one
        resp = sign * lap
        peak = (resp == ndimage.maximum_filter(resp, size=size)) & (resp > 0)
        # Keep away from the border by 2 sigma (blobs cut by the border mislead).
        b = int(math.ceil(2 * sl))
        peak[:b], peak[-b:], peak[:, :b], peak[:, -b:] = False, False, False, False
        ys, xs = np.nonzero(peak)
        vals = resp[ys, xs]
        order = np.argsort(-vals)[:max_n]
        if order.size:
            # Sparse images: most extrema are noise. Keep those comparable to the strong ones (the 5th
            # strongest as reference, so one outlier does not set the bar).
            ref = vals[order[min(4, order.size - 1)]]
            order = order[vals[order] >= 0.35 * ref]
        strength = float(vals[order].sum())
        if best is None or strength > best[0]:
            pts = np.stack([(xs[order] + 0.5) * f - 0.5, (ys[order] + 0.5) * f - 0.5], axis=1)
            best = (strength, pts)
    assert best is not None
    return best[1]


def _edge_diameters(img: np.ndarray, sigma: float, d0: float) -> list[tuple[float, float]]:
    """Median refined diameter around the blob centres, by two edge searches: ``[(d, support), ...]``.

    - *near*: edges within +-60 % of the coarse radius (three passes), for plain discs;
    - *outer*: the outermost strong edge between 0.5 and 3.5 coarse radii (one pass), then a normal
      refinement: when the coarse scale locked onto a structure inside the particles (the bright lens
      spot of a transmitted-light particle), the particle's own edge lies outside it.

    ``support`` is the number of blobs with a usable edge.
    """
    centres = _blob_centres(img, sigma, _MAX_BLOBS)
    if len(centres) < 3:
        return []
    out = []
    near_cfg = RefineConfig(window=0.6, n_iter=3, max_change=0.9, max_shift=0.9, min_valid_fraction=0.5, min_radius_px=1.0)
    ref, ok = refine_circles(img, np.column_stack([centres, np.full(len(centres), d0 / 2.0)]), near_cfg)
    if ok.sum() >= 3:
        out.append((2.0 * float(np.median(ref[ok, 2])), float(ok.sum())))
    wide_cfg = RefineConfig(window=0.75, n_iter=1, edge="outer", max_change=0.9, max_shift=0.9, min_valid_fraction=0.5,
                            min_radius_px=1.0, curvature_correction=False)
    ref, ok = refine_circles(img, np.column_stack([centres, np.full(len(centres), d0)]), wide_cfg)
    if ok.sum() >= 3:
        final_cfg = RefineConfig(window=0.4, n_iter=2, max_change=0.5, max_shift=0.5, min_valid_fraction=0.5, min_radius_px=1.0)
        ref2, ok2 = refine_circles(img, ref[ok], final_cfg)
        if ok2.sum() >= 3:
            out.append((2.0 * float(np.median(ref2[ok2, 2])), float(ok2.sum())))
    return out


def estimate_diameter_range(image: np.ndarray, factor: float = 2.0) -> tuple[tuple[float, float], float]:
    """Range of particle diameters (px) to look for, and a confidence in [0, 1].

    The candidate diameters of :func:`estimate_particle_diameter`'s two edge searches are combined:
    ``(min / factor, max * factor)``. When the two disagree (particles with inner structure, clusters,
    broad size distributions), the range spans both and the detector, whose scale bands and NMS sort
    the candidates out, decides; disagreement therefore does not lower this confidence (it lowers
    :func:`estimate_particle_diameter`'s).
    """
    img = _normalised(image)
    if img is None:
        return (float("nan"), float("nan")), 0.0
    cands, conf = _candidates(img)
    ds = [d for d, _ in cands]
    return (min(ds) / factor, max(ds) * factor), conf


def _normalised(image: np.ndarray) -> np.ndarray | None:
    img = np.asarray(image, np.float32)
    if img.ndim != 2 or min(img.shape) < 16:
        raise InputError(f"particle size estimate needs a 2-D gray image of at least 16x16 px, got shape {img.shape}")
    lo, hi = np.percentile(img, [0.5, 99.5])
    wlo, whi = np.percentile(img, [0.01, 99.99])
    if hi - lo < 0.2 * (whi - wlo):
        # Particles on under 0.5 % of the pixels (sparse small disks) are outside the 0.5-99.5 range,
        # which then is the background's alone (issue 13): the wider range keeps them.
        lo, hi = wlo, whi
    if hi - lo <= 1e-6:
        return None  # a flat image holds no particles
    return ((img - lo) / (hi - lo)).astype(np.float32)


def _candidates(img: np.ndarray) -> tuple[list[tuple[float, float]], float]:
    sigmas, energy = log_energy_curve(img)
    sigma, prominence = _peak_sigma(sigmas, energy)
    d0 = 2.0 * math.sqrt(2.0) * sigma
    peak = 0.5 + 0.5 * min(prominence / 0.3, 1.0)
    cands = _edge_diameters(img, sigma, d0)
    if not cands:
        return [(d0, 0.0)], 0.2 * min(prominence, 1.0)
    # Ten measured particles are enough for a typical size; textured particles (SEM powder) give a
    # usable edge on only a few percent of the blobs, so the count matters, not the fraction.
    support = min(1.0, max(s for _, s in cands) / 10.0)
    return cands, float(np.clip(support * peak, 0.0, 1.0))


def estimate_particle_diameter(image: np.ndarray) -> tuple[float, float]:
    """Typical particle diameter in pixels and a confidence in [0, 1].

    Parameters
    ----------
    image : np.ndarray, (H, W)
        Gray image (any polarity). RGB images should be converted to gray first.

    Returns
    -------
    d_px : float
        Median diameter of the strongest blobs, px (geometric mean of the two edge searches; NaN for
        a flat image).
    confidence : float
        0 (no evidence: flat scale-space curve, no measurable edge, edge searches that disagree) to 1.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:256, 0:256]
    >>> img = np.zeros((256, 256), np.float32)
    >>> for cx, cy in [(60, 60), (180, 70), (70, 190), (190, 180), (128, 128)]:
    ...     img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 15 ** 2] = 1.0
    >>> d, conf = estimate_particle_diameter(img)
    >>> bool(abs(d - 30) < 3)
    True
    """
    img = _normalised(image)
    if img is None:
        return float("nan"), 0.0
    cands, conf = _candidates(img)
    ds = np.array([d for d, _ in cands])
    # One size is asked for here: when the two edge searches disagree, it is only a compromise.
    agreement = float(ds.min() / ds.max())
    return float(np.exp(np.mean(np.log(ds)))), conf * min(1.0, agreement / 0.8)


def choose_scales(d_min: float, d_max: float, cfg: InferenceConfig | None = None) -> list[float]:
    """Pyramid scales that bring every diameter in ``[d_min, d_max]`` (px) into the trained band.

    A particle of diameter ``d`` at scale ``s`` has a radius of ``d s / 8`` output cells (stride 4).
    ``n`` scales spaced by ``cfg.scale_step`` cover diameters from ``8 lo / s_1`` to
    ``8 hi step^(n-1) / s_1`` (``lo, hi = cfg.target_band``); ``n`` is the fewest that span
    ``d_max / d_min``, and ``s_1`` centres the requested range inside the covered one (in log size),
    so that the margins on both sides are equal. Scales are clipped to ``[cfg.min_scale,
    cfg.max_scale]``; sizes beyond them are left to the band's margins.

    Parameters
    ----------
    d_min, d_max : float
        Expected particle diameters in pixels of the full-resolution image.
    cfg : InferenceConfig, optional

    Returns
    -------
    list of float
        Decreasing scales (1.0 = full resolution).

    Examples
    --------
    >>> [round(s, 3) for s in choose_scales(20, 40)]
    [0.645]
    >>> [round(s, 3) for s in choose_scales(10, 300)]
    [1.332, 0.666, 0.333, 0.167, 0.083]
    """
    cfg = cfg or InferenceConfig()
    if not (np.isfinite(d_min) and np.isfinite(d_max)) or d_min <= 0 or d_max < d_min:
        raise InputError(f"diameter range must satisfy 0 < min <= max, got ({d_min}, {d_max})")
    lo, hi = cfg.target_band
    step = cfg.scale_step
    if step <= 1.0 or step > hi / lo:
        raise InputError(f"inference.scale_step must be in (1, {hi / lo:.3g}] so consecutive scales overlap, got {step}")
    cells_per_px = 1.0 / (2.0 * STRIDE)  # diameter px at scale 1 -> radius in output cells
    need = (d_max / d_min) / (hi / lo)
    n = 1 if need <= 1.0 else 1 + int(math.ceil(math.log(need) / math.log(step) - 1e-9))
    s1 = math.sqrt(lo * hi * step ** (n - 1) / (d_min * d_max)) / cells_per_px
    scales = [s1 / step**k for k in range(n)]
    clipped = sorted({min(max(s, cfg.min_scale), cfg.max_scale) for s in scales}, reverse=True)
    # Clipping can leave near-duplicates (e.g. 2.0 and 1.96): they cover the same band and would double
    # the cost of the most expensive scale, so a scale closer than sqrt(step) to the last kept one goes.
    kept: list[float] = []
    for sc in clipped:
        if not kept or kept[-1] / sc >= math.sqrt(step) - 1e-9:
            kept.append(sc)
    return [float(sc) for sc in kept]
