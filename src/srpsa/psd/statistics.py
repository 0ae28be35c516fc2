"""Number- (Q0) and volume-weighted (Q3) size statistics of a list of particle diameters.

Definitions, formulas and the choices made (percentile interpolation, ddof, weighted std, what "mean"
means for Q3) are written up in ``docs/statistics.md``; the code follows that document.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from srpsa.errors import InputError
from srpsa.io.calibration import is_pixel_size
from srpsa.psd.kde import kde_mode
from srpsa.psd.sampling import bootstrap_ci, count_warnings
from srpsa.psd.weighted import weighted_mean, weighted_percentile, weighted_quantile_rows, weighted_std

__all__ = ["WEIGHTINGS", "SizeStatistics", "ecd_from_area", "equivalent_diameters", "moment_ratio", "size_statistics",
           "validate_diameters", "weighted_mean", "weighted_percentile", "weighted_quantile_rows", "weighted_std", "weights_for"]

Weighting = Literal["number", "volume"]
WEIGHTINGS: tuple[str, ...] = ("number", "volume")
# The three percentiles every PSD report quotes (ISO 9276-2 notation x10, x50, x90).
_DECILES = (10.0, 50.0, 90.0)


@dataclass(frozen=True)
class SizeStatistics:
    """Summary of one size distribution (Q0 or Q3), all sizes in ``unit``.

    ``mean`` is the arithmetic mean D[1,0] for ``weighting="number"`` and the volume-weighted mean, which
    is D[4,3], for ``weighting="volume"``. ``d32`` (Sauter) and ``d43`` (De Brouckere) are moment ratios
    of the number list and are therefore identical in the Q0 and Q3 tables. ``cv`` is in percent.
    ``ci`` maps ``"mean", "d10", "d50", "d90"`` to (low, high) percentile-bootstrap bounds at
    ``ci_level``; it is empty when not requested.
    """

    n: int
    mean: float
    std: float
    cv: float
    d10: float
    d50: float
    d90: float
    mode: float
    span: float
    d32: float
    d43: float
    kde_method: str
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    weighting: str = "number"
    unit: str = "um"
    ci_level: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe dict: NaN and infinities become ``None``, CI tuples become 2-item lists."""
        out = asdict(self)
        out["ci"] = {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.ci.items()}
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = _json_float(value)
        return out


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def equivalent_diameters(circles: np.ndarray, pixel_size_um: float | None = None) -> tuple[np.ndarray, str]:
    """Equivalent circle diameter of each fitted circle, ``2 r`` times the pixel size.

    Returns ``(diameters, unit)`` with unit ``"um"`` when a pixel size is given and ``"px"`` otherwise,
    so an uncalibrated image still yields statistics, labelled honestly.
    """
    c = np.asarray(circles, dtype=np.float64)
    if c.size == 0:
        c = c.reshape(0, 3)
    if c.ndim != 2 or c.shape[1] != 3:
        raise InputError(f"circles must have shape (N, 3) = [x, y, r], got {c.shape}")
    return _scale(2.0 * c[:, 2], pixel_size_um)


def ecd_from_area(area_px: np.ndarray, pixel_size_um: float | None = None) -> tuple[np.ndarray, str]:
    """Equivalent circle diameter ``sqrt(4 A / pi)`` of regions of ``area_px`` pixels (e.g. watershed)."""
    a = np.asarray(area_px, dtype=np.float64).ravel()
    if np.any(a < 0):
        raise InputError("areas must be non-negative")
    return _scale(np.sqrt(4.0 * a / np.pi), pixel_size_um)


def _scale(d_px: np.ndarray, pixel_size_um: float | None) -> tuple[np.ndarray, str]:
    if pixel_size_um is None:
        return d_px, "px"
    if not is_pixel_size(pixel_size_um):
        raise InputError(f"pixel size must be a positive number of um, got {pixel_size_um!r}")
    return d_px * float(pixel_size_um), "um"


def validate_diameters(diameters: np.ndarray) -> np.ndarray:
    """Return the diameters as a 1-D float64 array; raise InputError unless all are finite and > 0."""
    d = np.asarray(diameters, dtype=np.float64)
    if d.ndim > 1:
        d = np.squeeze(d)
    d = np.atleast_1d(d)
    if d.ndim != 1:
        raise InputError(f"diameters must be a 1-D list, got an array of shape {np.shape(diameters)}")
    bad = int(np.count_nonzero(~(np.isfinite(d) & (d > 0))))
    if bad:
        raise InputError(f"diameters must be finite and positive; {bad} of {d.size} values are not")
    return d


def weights_for(diameters: np.ndarray, weighting: str) -> np.ndarray | None:
    """Per-particle weights of a weighting: ``None`` (unit) for number, ``d**3`` for volume."""
    if weighting == "number":
        return None
    if weighting == "volume":
        return np.asarray(diameters, dtype=np.float64) ** 3
    raise InputError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")


def moment_ratio(diameters: np.ndarray, p: int, q: int) -> float:
    """Moment-ratio mean diameter ``D[p,q] = (sum d^p / sum d^q) ** (1 / (p - q))`` (ISO 9276-2), ``p > q``."""
    d = np.asarray(diameters, dtype=np.float64).ravel()
    if d.size == 0:
        return float("nan")
    # Scaling by the largest diameter avoids overflow of d^p for large p or large px values.
    top = float(d.max())
    s = d / top
    return float(top * (np.sum(s**p) / np.sum(s**q)) ** (1.0 / (p - q)))


def _row_statistics(weighting: str):
    """Vectorised statistic for the bootstrap: sorted resamples (B, n) -> mean and deciles per row."""

    def stat(rows: np.ndarray) -> dict[str, np.ndarray]:
        w = None if weighting == "number" else rows**3
        mean = rows.mean(axis=1) if w is None else np.sum(w * rows, axis=1) / np.sum(w, axis=1)
        dec = weighted_quantile_rows(rows, w, np.asarray(_DECILES) / 100.0)
        return {"mean": mean, "d10": dec[:, 0], "d50": dec[:, 1], "d90": dec[:, 2]}

    return stat


def size_statistics(
    diameters: np.ndarray,
    *,
    weighting: Weighting = "number",
    unit: str = "um",
    ci: bool = False,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    precision: float = 0.05,
) -> SizeStatistics:
    """Size statistics of one sample of diameters, number- or volume-weighted.

    Parameters
    ----------
    diameters : array_like, shape (n,)
        Equivalent circle diameters (finite, > 0) in ``unit``. ``n = 0`` gives NaN everywhere.
    weighting : {"number", "volume"}
        ``"number"`` (Q0, every particle counts once) or ``"volume"`` (Q3, weight ``d**3``).
    unit : str
        Unit label carried into the result (``"um"`` or ``"px"`` when uncalibrated).
    ci : bool
        Add percentile-bootstrap confidence intervals for mean, D10, D50 and D90.
    n_boot, ci_level, seed : int, float, int
        Bootstrap resamples, two-sided confidence level, and RNG seed (same seed, same intervals).
    precision : float
        Relative precision of the median used for the particle-count warning
        (see :func:`srpsa.psd.sampling.count_warnings`).

    Returns
    -------
    SizeStatistics
    """
    d = validate_diameters(diameters)
    w = weights_for(d, weighting)
    n = int(d.size)
    if not isinstance(unit, str) or not unit:
        raise InputError(f"unit must be a non-empty string, got {unit!r}")
    notes = count_warnings(d, weighting=weighting, precision=precision)
    if n == 0:
        nan = float("nan")
        return SizeStatistics(
            n=0, mean=nan, std=nan, cv=nan, d10=nan, d50=nan, d90=nan, mode=nan, span=nan, d32=nan,
            d43=nan, kde_method="none (no particles)", weighting=weighting, unit=unit,
            ci_level=ci_level if ci else None, warnings=notes,
            ci={k: (nan, nan) for k in ("mean", "d10", "d50", "d90")} if ci else {},
        )
    mean = weighted_mean(d, w)
    std = weighted_std(d, w)
    d10, d50, d90 = weighted_percentile(d, list(_DECILES), weights=w)
    mode, method = kde_mode(d, weights=w)
    intervals: dict[str, tuple[float, float]] = {}
    if ci:
        intervals = bootstrap_ci(d, _row_statistics(weighting), n_boot=n_boot, level=ci_level, seed=seed)
    return SizeStatistics(
        n=n,
        mean=mean,
        std=std,
        cv=100.0 * std / mean if np.isfinite(std) else float("nan"),
        d10=float(d10),
        d50=float(d50),
        d90=float(d90),
        mode=mode,
        span=float((d90 - d10) / d50),
        d32=moment_ratio(d, 3, 2),
        d43=moment_ratio(d, 4, 3),
        kde_method=method,
        ci=intervals,
        weighting=weighting,
        unit=unit,
        ci_level=ci_level if ci else None,
        warnings=notes,
    )
