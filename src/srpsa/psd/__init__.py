"""Particle size statistics: Q0/Q3 moments and deciles, ISJ-KDE mode, bootstrap CIs, count and edge rules.

Definitions and choices are documented in ``docs/statistics.md``.
"""

from srpsa.psd.kde import bandwidth, kde, kde_mode, silverman_bandwidth
from srpsa.psd.sampling import (
    bootstrap_ci,
    count_warnings,
    geometric_std,
    required_count,
    select_for_statistics,
)
from srpsa.psd.statistics import (
    WEIGHTINGS,
    SizeStatistics,
    ecd_from_area,
    equivalent_diameters,
    moment_ratio,
    size_statistics,
    weighted_mean,
    weighted_percentile,
    weighted_std,
)

__all__ = [
    "WEIGHTINGS",
    "SizeStatistics",
    "bandwidth",
    "bootstrap_ci",
    "count_warnings",
    "ecd_from_area",
    "equivalent_diameters",
    "geometric_std",
    "kde",
    "kde_mode",
    "moment_ratio",
    "required_count",
    "select_for_statistics",
    "silverman_bandwidth",
    "size_statistics",
    "weighted_mean",
    "weighted_percentile",
    "weighted_std",
]
