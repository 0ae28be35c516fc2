"""Weighted sample statistics (quantiles with midpoint interpolation, mean, reliability-weighted std)
shared by the size statistics (:mod:`srpsa.psd.statistics`) and the KDE bandwidth (:mod:`srpsa.psd.kde`),
so neither imports the other. Definitions: ``docs/statistics.md``.
"""

from __future__ import annotations

import math

import numpy as np

from srpsa.errors import InputError


def weighted_quantile_rows(values: np.ndarray, weights: np.ndarray | None, q: np.ndarray) -> np.ndarray:
    """Weighted quantiles of each row of ``values`` (rows sorted ascending), midpoint interpolation.

    Each sorted value ``x_i`` sits at cumulative fraction ``p_i = (W_i - w_i / 2) / W`` (``W_i`` the
    cumulative weight up to and including ``i``, ``W`` the total), i.e. in the middle of its own weight.
    The quantile at ``p`` interpolates linearly between neighbouring ``(p_i, x_i)`` and is clamped to the
    first/last value outside ``[p_1, p_n]``. With unit weights ``p_i = (i - 1/2) / n``, which is
    ``numpy.percentile(..., method="hazen")``.

    Parameters
    ----------
    values : ndarray, shape (B, n), n >= 1
        Rows sorted ascending.
    weights : ndarray, shape (B, n), or None
        Weights aligned with ``values`` (None = unit weights).
    q : array_like, shape (k,)
        Quantiles as fractions in [0, 1].

    Returns
    -------
    ndarray, shape (B, k)
    """
    x = np.asarray(values, dtype=np.float64)
    b, n = x.shape
    q = np.asarray(q, dtype=np.float64).ravel()
    if weights is None:
        pos = np.broadcast_to((np.arange(n) + 0.5) / n, (b, n))
    else:
        w = np.asarray(weights, dtype=np.float64)
        cum = np.cumsum(w, axis=1)
        pos = (cum - 0.5 * w) / cum[:, -1:]
    out = np.empty((b, q.size))
    rows = np.arange(b)
    for k, p in enumerate(q):
        # Index of the first position strictly above p (at least 1, at most n-1), then interpolate.
        hi = np.clip(np.count_nonzero(pos <= p, axis=1), 1, max(n - 1, 1))
        lo = hi - 1
        if n == 1:
            out[:, k] = x[:, 0]
            continue
        p_lo, p_hi = pos[rows, lo], pos[rows, hi]
        x_lo, x_hi = x[rows, lo], x[rows, hi]
        gap = p_hi - p_lo
        t = np.where(gap > 0, (p - p_lo) / np.where(gap > 0, gap, 1.0), 0.0)
        out[:, k] = x_lo + np.clip(t, 0.0, 1.0) * (x_hi - x_lo)
    return out


def weighted_percentile(values: np.ndarray, percentiles, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Weighted percentile(s) of an unsorted 1-D sample (see :func:`weighted_quantile_rows`).

    ``percentiles`` are in percent, like ``numpy.percentile``; a scalar gives a float. NaN when empty.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    pct = np.asarray(percentiles, dtype=np.float64)
    if np.any((pct < 0) | (pct > 100)):
        raise InputError("percentiles must lie in [0, 100]")
    if x.size == 0:
        res = np.full(pct.shape, np.nan)
    else:
        order = np.argsort(x, kind="stable")
        w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()[order][None, :]
        res = weighted_quantile_rows(x[order][None, :], w, pct.ravel() / 100.0)[0].reshape(pct.shape)
    return float(res) if res.ndim == 0 else res


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted arithmetic mean; NaN for an empty sample."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return float("nan")
    return float(np.average(x, weights=weights))


def weighted_std(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Standard deviation with the reliability-weights correction ``V1 - V2 / V1``.

    ``var = sum w (x - m)^2 / (V1 - V2 / V1)`` with ``V1 = sum w``, ``V2 = sum w^2``. For unit weights the
    denominator is ``n - 1``: the usual sample standard deviation (``numpy.std(ddof=1)``). NaN when the
    effective sample has fewer than two points.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    v1 = float(w.sum())
    if x.size < 2 or v1 <= 0:
        return float("nan")
    denom = v1 - float(np.sum(w**2)) / v1
    if denom <= 0:
        return float("nan")
    m = float(np.sum(w * x) / v1)
    return float(math.sqrt(np.sum(w * (x - m) ** 2) / denom))
