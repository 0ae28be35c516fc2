"""How far a counted sample can be trusted: bootstrap intervals, the particle-count rule, edge exclusion.

See ``docs/statistics.md`` for the derivations (lognormal count rule for Q0 and Q3, percentile
bootstrap) and for why border-touching particles are left out by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import norm

from srpsa.errors import InputError

# A resample chunk holds at most this many values, so 1000 resamples of 20 000 particles never need
# more than a few tens of MB at once.
_MAX_CHUNK_ELEMENTS = 2_000_000

RowStatistic = Callable[[np.ndarray], dict[str, np.ndarray]]


def _check_fraction(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and 0.0 < float(value) < 1.0):
        raise InputError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def bootstrap_ci(
    values: np.ndarray,
    statistic: RowStatistic,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
    max_elements: int = _MAX_CHUNK_ELEMENTS,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap confidence intervals, vectorised over resamples.

    Parameters
    ----------
    values : array_like, shape (n,)
        The observed sample.
    statistic : callable
        Maps a (B, n) array of resamples, **each row sorted ascending**, to ``{name: (B,) array}``.
        Rows come sorted because resampling sorted indices of the sorted sample is as cheap as
        resampling and saves every quantile statistic its own sort.
    n_boot : int
        Number of resamples (>= 1).
    level : float
        Two-sided confidence level; the bounds are the ``(1 - level) / 2`` and ``(1 + level) / 2``
        quantiles of the bootstrap distribution.
    seed : int or numpy.random.Generator
        Same seed, same intervals.
    max_elements : int
        Resamples are drawn in chunks of at most this many values (bounded memory).

    Returns
    -------
    dict
        ``{name: (low, high)}``; NaN bounds when the sample has fewer than 2 values.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    level = _check_fraction("ci_level", level)
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InputError(f"n_boot must be a positive integer, got {n_boot!r}")
    n = x.size
    if n < 2:
        names = statistic(np.repeat(x[None, :], 1, axis=0)).keys() if n else ("mean", "d10", "d50", "d90")
        return {k: (float("nan"), float("nan")) for k in names}
    rng = np.random.default_rng(seed)
    per_chunk = max(1, int(max_elements) // n)
    parts: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < n_boot:
        b = min(per_chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        idx.sort(axis=1)
        for name, vals in statistic(x[idx]).items():
            parts.setdefault(name, []).append(np.asarray(vals, dtype=np.float64))
        done += b
    alpha = (1.0 - level) / 2.0
    out = {}
    for name, chunks in parts.items():
        lo, hi = np.quantile(np.concatenate(chunks), [alpha, 1.0 - alpha])
        out[name] = (float(lo), float(hi))
    return out


def _log_spread(diameters: np.ndarray) -> tuple[int, float]:
    d = np.asarray(diameters, dtype=np.float64).ravel()
    if not np.all(np.isfinite(d) & (d > 0)):
        raise InputError("diameters must be finite and positive")
    if d.size < 2:
        raise InputError(f"need at least 2 diameters to estimate the geometric standard deviation, got {d.size}")
    return d.size, float(np.std(np.log(d), ddof=1))


def geometric_std(diameters: np.ndarray) -> float:
    """Geometric standard deviation ``sigma_g = exp(std(ln d, ddof=1))`` of the sample (>= 1)."""
    return math.exp(_log_spread(diameters)[1])


def required_count(
    diameters: np.ndarray, precision: float = 0.05, confidence: float = 0.95, *, weighting: str = "number"
) -> int:
    """Particles needed to know the median to ``+/- precision`` (relative) at ``confidence``.

    Assumes a lognormal size distribution with the sample's geometric standard deviation ``sigma_g``
    (``s = ln sigma_g``) and ``z`` the two-sided normal quantile (1.96 for 95 %):

    - number-weighted (Q0): ``n = z^2 s^2 / eps^2``;
    - volume-weighted (Q3): ``n = z^2 (s^2 + 9 s^4) exp(9 s^2) / eps^2`` -- the d^3 weights shrink the
      effective sample (delta-method variance of the volume-weighted log-mean).

    Never less than 2, the minimum to estimate ``sigma_g``. See ``docs/statistics.md``.
    """
    eps = _check_fraction("precision", precision)
    conf = _check_fraction("confidence", confidence)
    _, s = _log_spread(diameters)
    z = float(norm.ppf(0.5 + conf / 2.0))
    var_factor = s**2
    if weighting == "volume":
        var_factor = (s**2 + 9.0 * s**4) * math.exp(9.0 * s**2)
    elif weighting != "number":
        raise InputError(f"weighting must be 'number' or 'volume', got {weighting!r}")
    # Round before ceil so that e.g. 384.00000000001 from float noise does not become 385.
    return max(2, math.ceil(round(z**2 * var_factor / eps**2, 6)))


def count_warnings(
    diameters: np.ndarray, *, weighting: str = "number", precision: float = 0.05, confidence: float = 0.95
) -> list[str]:
    """One-line warnings when the sample is too small for the requested precision (empty when fine)."""
    d = np.asarray(diameters, dtype=np.float64).ravel()
    table = "Q0" if weighting == "number" else "Q3" if weighting == "volume" else None
    if table is None:
        raise InputError(f"weighting must be 'number' or 'volume', got {weighting!r}")
    if d.size == 0:
        return ["no particles: statistics are undefined"]
    if d.size == 1:
        return ["only 1 particle: standard deviation, CV and confidence intervals are undefined"]
    need = required_count(d, precision, confidence, weighting=weighting)
    if d.size >= need:
        return []
    return [
        f"{table}: {d.size} particles counted, but about {need} are needed to know the median to "
        f"+/-{precision * 100:g} % at {confidence * 100:g} % confidence (lognormal, geometric std "
        f"{geometric_std(d):.3g}; ISO 13322-1 count rule)"
    ]


def select_for_statistics(edge_flags: np.ndarray, include_edge: bool = False) -> np.ndarray:
    """Boolean mask of particles that enter the statistics.

    Particles touching the image border are cut by it, so their measured size is too small; ISO 13322-1
    excludes them, and so does this function unless ``include_edge`` is true.
    """
    flags = np.asarray(edge_flags)
    if flags.ndim != 1:
        raise InputError(f"edge flags must be a 1-D list, got shape {flags.shape}")
    if flags.dtype != bool:
        if flags.size and not np.all(np.isin(flags, (0, 1))):
            raise InputError("edge flags must be booleans or 0/1")
        flags = flags.astype(bool)
    if include_edge:
        return np.ones(flags.shape, dtype=bool)
    return ~flags
