"""What one analysis returns: :class:`Result` (particles, statistics, warnings, quality) and
:meth:`Result.save`, which writes exactly the per-image files of ``srpsa analyze``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srpsa.io.atomic import atomic_open, atomic_write_text

#: The CLI's per-image files, in the order they are written (summary.json last: it marks "done").
OUTPUT_FILES = ("particles.csv", "overlay.png", "psd.png", "summary.json")


@dataclass(frozen=True)
class Statistics:
    """Number-weighted (Q0) and volume-weighted (Q3) size statistics, as in summary.json.

    ``q0`` / ``q3`` are :meth:`srpsa.psd.SizeStatistics.to_dict` dicts (``n, mean, std, cv, d10, d50,
    d90, mode, span, d32, d43, ci, ...``), sizes in ``unit``.
    """

    q0: dict[str, Any]
    q3: dict[str, Any]
    unit: str

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per (distribution, statistic) with value and 95 % CI bounds (NaN: none)."""
        rows = []
        for table, stats in (("Q0", self.q0), ("Q3", self.q3)):
            ci = stats.get("ci") or {}
            for key in ("n", "mean", "std", "cv", "d10", "d50", "d90", "mode", "span", "d32", "d43"):
                lo, hi = ci.get(key, (None, None))
                rows.append({"distribution": table, "statistic": key, "value": stats.get(key),
                             "ci_low": lo, "ci_high": hi, "unit": "%" if key == "cv" else ("" if key == "n" else self.unit)})
        return pd.DataFrame(rows).astype({"value": float, "ci_low": float, "ci_high": float})


@dataclass
class Result:
    """One analysed image.

    Attributes
    ----------
    particles
        One row a particle: ``id, x_px, y_px, r_px, d_um, score, edge`` and, unless ``shape=False``, the
        shape descriptors and ``flag`` (srpsa.psd.shape.SHAPE_COLUMNS) (particles.csv).
    statistics
        :class:`Statistics` of the particles used (border-cut ones excluded unless ``include_edge``).
    warnings
        One-line notes on anything doubtful (uncalibrated sizes, few particles, calibration not applied ...).
    quality
        The self-check's verdict (:class:`srpsa.inference.quality.Quality`: ``status`` ok / doubtful /
        failed, ``reasons``, ``metrics``); also in ``summary["quality"]``.
    diameters
        Diameters (in ``statistics.unit``) of the particles the statistics use.
    summary
        Everything summary.json records (settings, models and hashes, timings, what was decided).
    """

    particles: pd.DataFrame
    statistics: Statistics
    warnings: list[str]
    summary: dict[str, Any]
    circles: np.ndarray  # (N, 3) x, y, r in input pixels, by decreasing score
    scores: np.ndarray
    image: np.ndarray = field(repr=False)  # the gray input (H, W)
    rgb: np.ndarray | None = field(default=None, repr=False)  # colour input, shown in the overlay
    quality: Any = None
    # diameters (in ``statistics.unit``) of the particles the statistics use, as drawn in psd.png
    diameters: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def count(self) -> int:
        return int(len(self.particles))

    def save(self, out: str | Path, *, title: str | None = None, exports: tuple[str, ...] | str | None = None) -> Path:
        """Write ``out/`` particles.csv, overlay.png, psd.png and summary.json (the CLI's per-image
        files; each written to a temporary file and renamed; summary.json last). Returns ``out``.

        ``exports``: interchange files also written (srpsa.io.exports: imagej-roi, labels, geojson,
        imagej-csv; named after ``out``); default: the settings' ``exports`` (``--export``)."""
        from srpsa.io.exports import parse_exports, write_exports
        from srpsa.report.figures import plot_overlay, plot_psd

        t0 = time.perf_counter()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        edge = self.particles["edge"].to_numpy().astype(bool)
        with atomic_open(out / "particles.csv", "w", newline="") as fh:
            self.particles.to_csv(fh, index=False, float_format="%.4f")
        pixel_size = self.summary.get("pixel_size_um")
        plot_overlay(self.rgb if self.rgb is not None else self.image, self.circles, out / "overlay.png", edge=edge, scores=self.scores,
                     ids=self.particles["id"].to_numpy(), pixel_size_um=pixel_size,
                     fov_circle=(self.summary.get("roi") or {}).get("circle"))
        plot_psd(self.diameters, out / "psd.png", unit=self.statistics.unit, title=title or Path(self.summary["image"]).name,
                 ci={"number": self.statistics.q0.get("ci"), "volume": self.statistics.q3.get("ci")})
        if exports is None:
            exports = tuple((self.summary.get("settings") or {}).get("exports") or ())
        exports = parse_exports(exports if isinstance(exports, str) else ",".join(exports))
        if exports:
            write_exports(out, out.name, self.particles, self.image.shape, pixel_size, exports)
        summary = dict(self.summary)
        seconds = dict(summary.get("seconds", {}))
        seconds["write"] = round(seconds.get("write", 0.0) + time.perf_counter() - t0, 4)
        seconds["total"] = round(seconds.get("total", 0.0) + seconds["write"], 4)
        summary["seconds"] = seconds
        self.summary = summary
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=json_default))
        return out


def json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
