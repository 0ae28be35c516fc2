"""The statistics step of ``srpsa analyze`` for one image, applied to a (reviewed) particle table.

This is the one place where the review package repeats what the analysis pipeline computes after
detection (``srpsa.inference.pipeline.analyze_image``, its "statistics" block): the same functions of
:mod:`srpsa.psd` with the settings stored in the image's summary.json. A test checks that, applied to
an unedited analysis, it reproduces the pipeline's summary.json exactly, so the two cannot drift
apart unnoticed. When the public API (``srpsa.analyze``) offers this step on its own, only this
module changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from srpsa.psd import count_warnings, select_for_statistics, size_statistics


@dataclass
class ImageStatistics:
    """What the pipeline derives from a particle table: counts, Q0/Q3 statistics, count warnings."""

    count: int
    count_used: int
    count_edge: int
    used_diameters: np.ndarray  # in the image's unit (um when calibrated, else px)
    statistics: dict[str, dict]  # "Q0", "Q3" -> SizeStatistics.to_dict()
    warnings: list[str]  # the warnings the statistics step itself raises


def image_statistics(table: pd.DataFrame, pixel_size_um: float | None, settings: dict) -> ImageStatistics:
    """Counts and statistics of ``table`` (particles.csv columns) as ``analyze`` computes them."""
    include_edge = bool(settings.get("include_edge", False))
    n_boot = int(settings.get("bootstrap", 1000) or 0)
    seed = int(settings.get("seed", 0) or 0)
    unit = "um" if pixel_size_um else "px"
    edge = table["edge"].to_numpy().astype(bool)
    used = select_for_statistics(edge, include_edge=include_edge)
    diam = (2.0 * table["r_px"].to_numpy(dtype=np.float64) * (pixel_size_um or 1.0))[used]
    stats = {
        weighting: size_statistics(diam, weighting=weighting, unit=unit, ci=n_boot > 0, n_boot=max(n_boot, 1), seed=seed).to_dict()
        for weighting in ("number", "volume")
    }
    warnings: list[str] = []
    if len(diam) > 1:
        warnings.extend(count_warnings(diam))
    if len(table) == 0:
        warnings.append("no particles detected")
    n_edge = int(edge.sum())
    if n_edge and not include_edge:
        warnings.append(f"{n_edge} particles touch the image border and are excluded from statistics (--include-edge keeps them)")
    return ImageStatistics(
        count=int(len(table)),
        count_used=int(used.sum()),
        count_edge=n_edge,
        used_diameters=diam,
        statistics={"Q0": stats["number"], "Q3": stats["volume"]},
        warnings=warnings,
    )


def updated_summary(summary: dict, before: ImageStatistics, after: ImageStatistics) -> dict:
    """``summary`` with counts, statistics and count warnings replaced by those of ``after``.

    Warnings the statistics step raised for the previous table (``before``) are dropped; all others
    (calibration, models, sizing) are kept as they were.
    """
    old = set(before.warnings)
    kept = [w for w in summary.get("warnings", []) if w not in old]
    return {
        **summary,
        "count": after.count,
        "count_used": after.count_used,
        "count_edge": after.count_edge,
        "statistics": after.statistics,
        "kde_method": after.statistics["Q0"].get("kde_method"),
        "warnings": kept + after.warnings,
    }
