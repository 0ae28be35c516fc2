"""Kernel density estimate of a size distribution: ISJ bandwidth with a recorded Silverman fallback.

The paper (section 6.3) builds its distributions and reads the mode with the Improved Sheather-Jones
bandwidth (Botev et al., 2010). ISJ is a fixed-point iteration that needs enough distinct values; on tiny
or heavily tied samples it either raises or "succeeds" with a bandwidth that resolves the quantisation
comb rather than the distribution. Both cases fall back to Silverman's rule of thumb, and the returned
method string says so, so a reader of ``summary.json`` knows which estimator produced the mode.
"""

from __future__ import annotations

import warnings

import numpy as np
from KDEpy import FFTKDE

from srpsa.errors import InputError
from srpsa.psd.weighted import weighted_percentile, weighted_std

ISJ = "ISJ"
# Quartile distance of a unit normal, used to turn an IQR into a standard deviation.
_NORMAL_IQR = 1.3489795003921634
# Grid resolution: a few points per bandwidth keeps the mode accurate without a huge grid.
_POINTS_PER_BW = 8
_MIN_POINTS, _MAX_POINTS = 1024, 1 << 16
# Half-width of the evaluation grid beyond the data, in bandwidths (Gaussian tails below 1e-7).
_TAIL_BW = 5.5
# Relative width of the placeholder kernel drawn when every value is the same (no spread to estimate).
_DEGENERATE_REL_BW = 0.05


def _as_samples(diameters: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    x = np.asarray(diameters, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise InputError("kde: diameters contain NaN or infinite values")
    if weights is None:
        return x, None
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != x.shape:
        raise InputError(f"kde: weights have {w.size} values for {x.size} diameters")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or (w.size and not np.any(w > 0)):
        raise InputError("kde: weights must be finite, non-negative and not all zero")
    return x, w


def _effective_n(weights: np.ndarray | None, n: int) -> float:
    """Kish effective sample size: equals n for equal weights, smaller when a few weights dominate."""
    if weights is None:
        return float(n)
    return float(weights.sum() ** 2 / np.sum(weights**2))


def silverman_bandwidth(diameters: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Silverman's rule of thumb, ``0.9 * min(s, IQR / 1.349) * n_eff ** (-1/5)``, with optional weights.

    KDEpy's own Silverman ignores weights, so the weighted standard deviation, weighted quartiles and the
    Kish effective sample size are used here instead; for unit weights this is the textbook rule
    (Silverman 1986, eq. 3.31). When the IQR is zero (more than half the values tied) the standard
    deviation alone is used.
    """
    x, w = _as_samples(diameters, weights)
    s = weighted_std(x, w)
    q25, q75 = weighted_percentile(x, [25.0, 75.0], weights=w)
    spread = min(s, (q75 - q25) / _NORMAL_IQR) if q75 > q25 else s
    n_eff = _effective_n(w, x.size)
    return float(0.9 * spread * n_eff ** (-0.2))


def _isj_bandwidth(x: np.ndarray, w: np.ndarray | None) -> float:
    """ISJ bandwidth from KDEpy, raising ValueError with a short reason when it is unusable."""
    # Numerical warnings inside the fixed-point solver (divide by zero, overflow) mean the result is
    # garbage, so they are promoted to errors and end up in the recorded reason (underflow is harmless).
    with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        warnings.simplefilter("error", RuntimeWarning)
        try:
            bw = float(FFTKDE(bw="ISJ").fit(x, weights=w).bw)
        except (ValueError, ArithmeticError, RuntimeWarning) as exc:
            raise ValueError(" ".join(f"{type(exc).__name__}: {exc}".split())) from exc
    if not np.isfinite(bw) or bw <= 0:
        raise ValueError(f"non-positive bandwidth {bw:g}")
    uniq = np.unique(x)
    if uniq.size < x.size:
        # Tied (quantised) data: a bandwidth below half the typical spacing of the distinct values makes
        # the KDE a comb of spikes at those values, i.e. it estimates the rounding, not the sizes.
        gap = float(np.median(np.diff(uniq)))
        if bw < 0.5 * gap:
            raise ValueError(f"bandwidth {bw:.3g} below half the spacing {gap:.3g} of tied values")
    if bw > np.ptp(x):
        raise ValueError(f"bandwidth {bw:.3g} wider than the data range {np.ptp(x):.3g}")
    return bw


def bandwidth(diameters: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, str]:
    """Choose the KDE bandwidth: ISJ, else Silverman with the reason recorded.

    Returns
    -------
    bw : float
        Gaussian kernel standard deviation, in the diameters' unit. NaN when there are no values.
    method : str
        ``"ISJ"``, ``"silverman (ISJ failed: <reason>)"``, ``"none (no particles)"``,
        ``"none (single value)"`` or ``"none (all values equal)"``.
    """
    x, w = _as_samples(diameters, weights)
    if w is not None:
        # Zero-weight points carry no mass; ISJ drops them too.
        x, w = x[w > 0], w[w > 0]
    if x.size == 0:
        return float("nan"), "none (no particles)"
    if np.ptp(x) == 0:
        # No spread to estimate; a placeholder kernel keeps curves drawable.
        scale = abs(float(x[0])) or 1.0
        return _DEGENERATE_REL_BW * scale, "none (single value)" if x.size == 1 else "none (all values equal)"
    try:
        return _isj_bandwidth(x, w), ISJ
    except ValueError as exc:
        bw = silverman_bandwidth(x, w)
        if not bw > 0:  # e.g. two values with an extreme weight ratio
            bw = _DEGENERATE_REL_BW * float(np.ptp(x))
        return bw, f"silverman (ISJ failed: {exc})"


def kde(
    diameters: np.ndarray, *, weights: np.ndarray | None = None, num_points: int | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Gaussian KDE of a size sample on an equidistant grid (FFT convolution, KDEpy ``FFTKDE``).

    Parameters
    ----------
    diameters : array_like, shape (n,)
        Particle diameters.
    weights : array_like, shape (n,), optional
        Non-negative weights, e.g. ``d**3`` for the volume-weighted (Q3) density. Normalised internally.
    num_points : int, optional
        Grid size; by default enough points for ~8 per bandwidth (1024 to 65536).

    Returns
    -------
    grid, density : ndarray
        The density integrates to 1 over the grid (within the Gaussian tails). Empty for no data.
    method : str
        Bandwidth method, see :func:`bandwidth`.
    """
    x, w = _as_samples(diameters, weights)
    bw, method = bandwidth(x, w)
    if not np.isfinite(bw):
        return np.empty(0), np.empty(0), method
    if w is not None:
        x, w = x[w > 0], w[w > 0]
    lo, hi = float(x.min()) - _TAIL_BW * bw, float(x.max()) + _TAIL_BW * bw
    if num_points is None:
        num_points = int(np.clip(np.ceil((hi - lo) / bw * _POINTS_PER_BW), _MIN_POINTS, _MAX_POINTS))
    elif num_points < 3:
        raise InputError(f"kde: num_points must be at least 3, got {num_points}")
    grid = np.linspace(lo, hi, int(num_points))
    density = FFTKDE(kernel="gaussian", bw=bw).fit(x, weights=w).evaluate(grid)
    # FFT round-off can leave tiny negative values far in the tails.
    return grid, np.clip(np.asarray(density, dtype=np.float64), 0.0, None), method


def kde_mode(diameters: np.ndarray, *, weights: np.ndarray | None = None) -> tuple[float, str]:
    """Mode (global maximum) of the KDE, refined between grid points by a parabola through the peak.

    One value, or all values equal: the mode is that value. No values: NaN.
    """
    x, w = _as_samples(diameters, weights)
    grid, density, method = kde(x, weights=w)
    if grid.size == 0:
        return float("nan"), method
    if method.startswith("none"):
        return float(x[0] if w is None else x[w > 0][0]), method
    i = int(np.argmax(density))
    if 0 < i < grid.size - 1:
        y0, y1, y2 = density[i - 1 : i + 2]
        denom = y0 - 2.0 * y1 + y2
        if denom < 0:  # a true local maximum: vertex of the parabola, within half a step
            step = grid[1] - grid[0]
            return float(grid[i] + 0.5 * step * (y0 - y2) / denom), method
    return float(grid[i]), method
