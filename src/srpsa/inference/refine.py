"""Sub-pixel circle refinement on the full-resolution image, after the network.

The network finds particles well but its regressed radius is coarse (a few percent to ~10 %), which
matters more for a size distribution than a missed particle. This module re-measures every circle on
the original image:

1. sample ``n_rays`` radial intensity profiles around each circle, from ``r (1 - window)`` to
   ``r (1 + window)`` (bilinear, :func:`cv2.remap`, all particles of a chunk at once); limiting the
   search to a window around the network's radius keeps a touching neighbour's edge out of reach;
2. find the edge on each ray, polarity-agnostic: the particle's dominant polarity is the sign of the
   strongest extremum of its mean radial derivative (bright SEM particles fall off outwards, dark OM
   rims rise), and the edge criterion is a config choice (``RefineConfig.edge``):

   - ``"gradient"``: the position of the strongest derivative of that polarity;
   - ``"outer"``: the outermost strong extremum of the mean derivative sets polarity and a lower bound
     for the search (for OM images whose dark rim lies inside the physical edge);
   - ``"half_max"``: where the profile crosses half-way between the inner and outer plateau levels,
     nearest to the strongest derivative;

   each with sub-sample precision (parabola through the three samples around the maximum, or linear
   interpolation of the crossing);
3. fit ``rho(theta) = r + dx cos(theta) + dy sin(theta)`` (the first-order circle around the current
   centre; the design matrix is the same for all particles, so the normal equations are solved for
   all of them in one batched call), rejecting rays beyond ``outlier_k`` median absolute deviations
   and refitting; a second pass re-samples around the new centre;
4. correct the curvature bias of gradient edges: the steepest point of a Gaussian-blurred disc of
   radius ``r`` lies ``sigma^2 / (2 r)`` inside the edge, with ``sigma`` measured per particle from the
   width of its mean derivative peak (``curvature_correction``);
5. apply the calibrated bias ``r <- r (1 + bias_rel) + bias_px + bias_inv / r + bias_sigma * sigma``
   (the edge criterion's offset from the true edge, fitted on simulator images with known ground truth
   by :func:`calibrate_bias`). The ``sigma`` term makes the correction follow each particle's measured
   edge width: a wide SEM rim (large interaction volume, grazing-incidence roll-off) puts the steepest
   point further inside the edge than a sharp one, and one constant offset cannot serve both.

A circle whose refinement is not trustworthy (too few usable rays, a radius change beyond
``max_change`` or a centre shift beyond ``max_shift``, too small to measure) keeps the network's value; :func:`refine_circles` reports which.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from scipy import ndimage

from srpsa.models.detector_config import RefineConfig

# cv2.remap needs map dimensions below 32767: rays of this many particles are sampled per call.
_CHUNK = 256


def refine_circles(
    image: np.ndarray,
    circles: np.ndarray,
    cfg: RefineConfig | None = None,
    *,
    return_sigma: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine circle centres and radii on ``image``.

    Parameters
    ----------
    image : np.ndarray, (H, W)
        Gray image, full resolution, any polarity (float or integer).
    circles : np.ndarray, (N, 3)
        Initial ``[x, y, r]`` in pixels of ``image``.
    cfg : RefineConfig, optional
        Settings (defaults: :class:`RefineConfig`).

    Returns
    -------
    refined : np.ndarray, float64, (N, 3)
        Refined circles (the input circle where refinement was rejected).
    ok : np.ndarray, bool, (N,)
        True where the refined value was accepted.
    sigma : np.ndarray, float64, (N,)
        Only with ``return_sigma``: the measured edge width (Gaussian sigma, px) of each particle
        (0 where it was not measured), for :func:`calibrate_bias`.

    Examples
    --------
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> img = ((xx - 31.3) ** 2 + (yy - 30.8) ** 2 <= 12.0 ** 2).astype(np.float32)
    >>> out, ok = refine_circles(img, np.array([[32.0, 31.0, 10.5]]))
    >>> bool(ok[0] and abs(out[0, 2] - 12.0) < 0.3)
    True
    """
    cfg = cfg or RefineConfig()
    img = np.ascontiguousarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"refine_circles needs a 2-D gray image, got shape {img.shape}")
    circles = np.asarray(circles, np.float64).reshape(-1, 3)
    out = circles.copy()
    ok = np.zeros(len(circles), bool)
    sigma = np.zeros(len(circles))
    todo = np.flatnonzero(circles[:, 2] >= cfg.min_radius_px)
    for start in range(0, len(todo), _CHUNK):
        idx = todo[start:start + _CHUNK]
        out[idx], ok[idx], sigma[idx] = _refine_chunk(img, circles[idx], cfg)
    return (out, ok, sigma) if return_sigma else (out, ok)


def apply_bias(r_edge: np.ndarray, cfg: RefineConfig, sigma: np.ndarray | None = None) -> np.ndarray:
    """Calibrated radius from the measured edge radius and edge width ``sigma`` (px; see :class:`RefineConfig`)."""
    r_edge = np.asarray(r_edge, np.float64)
    sig = np.zeros_like(r_edge) if sigma is None else np.asarray(sigma, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return r_edge * (1.0 + cfg.bias_rel) + cfg.bias_px + cfg.bias_inv / r_edge + cfg.bias_sigma * sig


def calibrate_bias(
    r_edge: np.ndarray,
    r_true: np.ndarray,
    *,
    sigma: np.ndarray | None = None,
    terms: tuple[str, ...] = ("rel", "px", "inv", "sigma"),
) -> dict[str, float]:
    """Least-squares fit of the bias terms from matched (measured edge radius, true radius) pairs.

    Parameters
    ----------
    r_edge : np.ndarray
        Radii measured by refinement with zero bias.
    r_true : np.ndarray
        Ground-truth radii of the same particles.
    sigma : np.ndarray, optional
        Measured edge width (px) of each particle (``refine_circles(..., return_sigma=True)``); without
        it the ``sigma`` term is not fitted.
    terms : tuple of {"rel", "px", "inv", "sigma"}
        Which terms to fit (the others are 0).

    Returns
    -------
    dict
        ``{"bias_rel": ..., "bias_px": ..., "bias_inv": ..., "bias_sigma": ...}`` for :class:`RefineConfig`.

    Notes
    -----
    Weighted least squares on relative errors, refitted twice without the pairs beyond 3 robust
    standard deviations (a wrong edge or a wrong match must not pull the correction).
    """
    r_edge = np.asarray(r_edge, np.float64)
    r_true = np.asarray(r_true, np.float64)
    if sigma is None:
        terms = tuple(t for t in terms if t != "sigma")
        sigma = np.zeros_like(r_edge)
    sigma = np.asarray(sigma, np.float64)
    ok = np.isfinite(r_edge) & np.isfinite(r_true) & (r_edge > 0) & np.isfinite(sigma)
    r_edge, r_true, sigma = r_edge[ok], r_true[ok], sigma[ok]
    cols = {"rel": r_edge, "px": np.ones_like(r_edge), "inv": 1.0 / np.maximum(r_edge, 1e-6), "sigma": sigma}
    out = {"bias_rel": 0.0, "bias_px": 0.0, "bias_inv": 0.0, "bias_sigma": 0.0}
    if len(r_edge) < 2 * len(terms):
        return out
    a = np.stack([cols[t] for t in terms], axis=1)
    # Relative residuals: a 1 px miss on a 5 px particle matters more than on a 100 px one.
    wgt = 1.0 / np.maximum(r_true, 1e-6)
    rel = (r_true - r_edge) * wgt
    keep = np.ones(len(r_edge), bool)
    sol = np.zeros(len(terms))
    for _ in range(3):  # least squares, then drop gross misses (a wrong edge, a bad match) and refit
        sol, *_ = np.linalg.lstsq(a[keep] * wgt[keep, None], rel[keep], rcond=None)
        res = rel - (a * wgt[:, None]) @ sol
        mad = float(np.median(np.abs(res - np.median(res)))) + 1e-9
        new_keep = np.abs(res - np.median(res)) <= 3.0 * 1.4826 * mad
        if new_keep.sum() < 2 * len(terms) or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    for t, v in zip(terms, sol):
        out[f"bias_{t}"] = float(v)
    return out


def _refine_chunk(img: np.ndarray, circles: np.ndarray, cfg: RefineConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cur = circles.copy()
    valid_frac = np.zeros(len(circles))
    sigma2 = np.zeros(len(circles))
    for _ in range(max(cfg.n_iter, 1)):
        rho, valid, sigma2 = _edge_radii(img, cur, cfg)
        fit, valid_frac = _fit_circles(rho, valid, cfg)
        # fit = (r, dx, dy) relative to the current centre: move there for the next pass.
        good = valid_frac >= cfg.min_valid_fraction
        cur[good, 0] += fit[good, 1]
        cur[good, 1] += fit[good, 2]
        cur[good, 2] = fit[good, 0]
    r0 = circles[:, 2]
    r_edge = cur[:, 2]
    if cfg.curvature_correction and cfg.edge != "half_max":
        # The steepest point of a blurred disc lies sigma^2 / (2 r) inside its edge (sigma: the edge blur
        # measured on the particle's own mean profile), which matters for small particles.
        # Capped at 10 % of r: beyond it the edge is as wide as the particle and the estimate unreliable.
        with np.errstate(divide="ignore", invalid="ignore"):
            r_edge = r_edge + np.minimum(np.nan_to_num(sigma2 / (2.0 * r_edge), nan=0.0), 0.1 * r_edge)
    sigma = np.sqrt(np.clip(np.nan_to_num(sigma2, nan=0.0), 0.0, None))
    r_new = apply_bias(r_edge, cfg, sigma)
    shift = np.hypot(cur[:, 0] - circles[:, 0], cur[:, 1] - circles[:, 1])
    ok = (
        (valid_frac >= cfg.min_valid_fraction)
        & (np.abs(r_new / r0 - 1.0) <= cfg.max_change)
        & (shift <= cfg.max_shift * r0)
        & np.isfinite(r_new)
        & (r_new > 0)
    )
    result = circles.copy()
    result[ok, :2] = cur[ok, :2]
    result[ok, 2] = r_new[ok]
    return result, ok, sigma


def _edge_radii(img: np.ndarray, circles: np.ndarray, cfg: RefineConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge radius on every ray ``(N, K)`` in pixels, whether it is usable, and the edge blur (px^2, ``(N,)``)."""
    n, k, m = len(circles), cfg.n_rays, cfg.n_samples
    theta = 2.0 * np.pi * np.arange(k) / k
    t = np.linspace(1.0 - cfg.window, 1.0 + cfg.window, m)
    rho = circles[:, 2, None] * t[None, :]  # (N, M)
    xs = circles[:, 0, None, None] + np.cos(theta)[None, :, None] * rho[:, None, :]
    ys = circles[:, 1, None, None] + np.sin(theta)[None, :, None] * rho[:, None, :]
    h, w = img.shape
    map_x = xs.reshape(n * k, m).astype(np.float32)
    map_y = ys.reshape(n * k, m).astype(np.float32)
    prof = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(n, k, m)
    inside = ((xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1))

    # Light smoothing along the ray (in sample units, so it scales with the particle) against noise.
    prof = ndimage.gaussian_filter1d(prof.astype(np.float64), 1.0, axis=2, mode="nearest")
    grad = np.gradient(prof, axis=2)
    mean_grad = grad.mean(axis=1)  # (N, M)

    # Dominant polarity: sign of the strongest extremum of the mean radial derivative.
    strongest = np.abs(mean_grad).argmax(axis=1)
    sign = np.sign(mean_grad[np.arange(n), strongest])
    sign[sign == 0] = 1.0
    lo_m = np.zeros(n, np.int64)
    if cfg.edge == "outer":
        # The outermost extremum at least half as strong as the strongest sets polarity and start.
        a = np.abs(mean_grad)
        is_ext = (a >= 0.5 * a.max(axis=1, keepdims=True))
        is_ext[:, 1:-1] &= (a[:, 1:-1] >= a[:, :-2]) & (a[:, 1:-1] >= a[:, 2:])
        outer = m - 1 - np.argmax(is_ext[:, ::-1], axis=1)
        sign = np.sign(mean_grad[np.arange(n), outer])
        sign[sign == 0] = 1.0
        lo_m = np.maximum(outer - max(m // 8, 1), 0)
    score = grad * sign[:, None, None]
    score_masked = np.where(np.arange(m)[None, None, :] >= lo_m[:, None, None], score, -np.inf)
    best = score_masked.argmax(axis=2)  # (N, K)
    ii, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    s0 = score[ii, kk, best]
    interior = (best > 0) & (best < m - 1)
    sm = score[ii, kk, np.clip(best - 1, 0, m - 1)]
    sp = score[ii, kk, np.clip(best + 1, 0, m - 1)]
    denom = sm - 2.0 * s0 + sp
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(interior & (denom < 0), 0.5 * (sm - sp) / denom, 0.0)
    pos = best + np.clip(delta, -0.5, 0.5)

    if cfg.edge == "half_max":
        q = max(m // 5, 1)
        inner_lvl = np.median(prof[:, :, :q], axis=(1, 2))
        outer_lvl = np.median(prof[:, :, -q:], axis=(1, 2))
        mid = 0.5 * (inner_lvl + outer_lvl)
        pos = np.where(interior, _nearest_crossing(prof, mid, pos), pos)

    # Usable ray: a real maximum (not at the window ends), of the particle's polarity, reasonably
    # strong compared with the particle's typical ray, and sampled inside the image.
    # Rays towards a touching neighbour have a weak, inward-shifted edge (its rising edge overlaps ours);
    # keeping only rays nearly as strong as the particle's best ones favours the clean directions.
    typical = np.percentile(np.maximum(s0, 0.0), 90, axis=1, keepdims=True)
    near = np.clip(np.round(pos).astype(np.int64), 0, m - 1)
    valid = interior & (s0 > 0) & (s0 >= cfg.min_edge_strength * typical) & inside[ii, kk, near]
    edge = circles[:, 2, None] * (t[0] + pos * (t[1] - t[0]))
    return edge, valid, _edge_blur(mean_grad * sign[:, None], lo_m, circles[:, 2] * (t[1] - t[0]))


# Variance (samples^2) that the profile processing adds to an edge: Gaussian smoothing with sigma 1
# sample, plus the central difference (a box of 2 samples: 4 / 12).
_PROCESSING_VAR = 1.0 + 1.0 / 3.0


def _edge_blur(mean_signed_grad: np.ndarray, lo_m: np.ndarray, step_px: np.ndarray) -> np.ndarray:
    """Variance (px^2) of the edge blur from a 3-point Gaussian fit to the mean derivative peak."""
    n, m = mean_signed_grad.shape
    g = np.where(np.arange(m)[None, :] >= lo_m[:, None], mean_signed_grad, -np.inf)
    peak = np.clip(g.argmax(axis=1), 1, m - 2)
    ar = np.arange(n)
    g0, gm, gp = mean_signed_grad[ar, peak], mean_signed_grad[ar, peak - 1], mean_signed_grad[ar, peak + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        curv = np.log(gm) - 2.0 * np.log(g0) + np.log(gp)
        var = np.where((g0 > 0) & (gm > 0) & (gp > 0) & (curv < 0), -1.0 / curv, 0.0)
    return np.clip(np.nan_to_num(var - _PROCESSING_VAR, nan=0.0), 0.0, None) * step_px**2


def _nearest_crossing(prof: np.ndarray, level: np.ndarray, around: np.ndarray) -> np.ndarray:
    """Sub-sample position of the ``level`` crossing nearest to ``around`` on each ray."""
    n, k, m = prof.shape
    d = prof - level[:, None, None]
    cross = np.signbit(d[:, :, :-1]) != np.signbit(d[:, :, 1:])  # (N, K, M-1): crossing in [j, j+1]
    j = np.arange(m - 1)[None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = d[:, :, :-1] / (d[:, :, :-1] - d[:, :, 1:])
    loc = j + np.nan_to_num(frac, nan=0.5)
    dist = np.where(cross, np.abs(loc - around[:, :, None]), np.inf)
    pick = dist.argmin(axis=2)
    found = np.isfinite(dist.min(axis=2))
    got = np.take_along_axis(loc, pick[:, :, None], axis=2)[:, :, 0]
    return np.where(found, got, around)


def _fit_circles(rho: np.ndarray, valid: np.ndarray, cfg: RefineConfig) -> tuple[np.ndarray, np.ndarray]:
    """Robust batched fit of ``rho = r + dx cos + dy sin``; returns ``(N, 3)`` = (r, dx, dy), valid fraction."""
    n, k = rho.shape
    theta = 2.0 * np.pi * np.arange(k) / k
    a = np.stack([np.ones(k), np.cos(theta), np.sin(theta)], axis=1)  # (K, 3), shared by all particles
    w = valid.astype(np.float64)
    sol = np.zeros((n, 3))
    for _ in range(3):  # fit, reject beyond k * MAD, refit
        ata = np.einsum("nk,ki,kj->nij", w, a, a) + 1e-9 * np.eye(3)
        atb = np.einsum("nk,ki,nk->ni", w, a, rho)
        sol = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
        res = rho - sol @ a.T
        absres = np.where(w > 0, np.abs(res), np.nan)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # particles without any usable ray: NaN, handled below
            mad = np.nanmedian(absres, axis=1)
        mad = np.nan_to_num(mad, nan=0.0)
        # Floor of 0.3 px: a perfect edge has MAD ~ 0 and would otherwise reject its own noise.
        limit = cfg.outlier_k * 1.4826 * np.maximum(mad, 0.3 / 1.4826)
        w = (valid & (np.abs(res) <= limit[:, None])).astype(np.float64)
    frac = w.sum(axis=1) / k
    # Fewer than 3 usable rays cannot define a circle at all.
    sol[w.sum(axis=1) < 3] = np.nan
    return sol, frac
