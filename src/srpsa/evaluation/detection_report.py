"""Detections against ground truth as one call: pair the files, match, score, compare the size distributions.

:func:`evaluate_detections` is what ``srpsa evaluate detect`` runs (the command only maps its flags and
prints): pairing (:mod:`~srpsa.evaluation.pairing`), one-to-one matching and detection metrics
(:mod:`~srpsa.evaluation.metrics`) and the size-distribution comparison (:mod:`~srpsa.evaluation.compare`),
with particles cut by the image border left out on both sides when ``ignore_border`` (ISO 13322-1).
:meth:`DetectionReport.save` writes ``metrics.json``, ``per_image.csv``, ``psd_comparison.csv``/``.md``
and ``kde.png`` (paper Fig. 9). Library errors name the parameter (:class:`~srpsa.errors.ParameterError`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srpsa.errors import ParameterError
from srpsa.evaluation.compare import compare_size_distributions, detection_count_table, diameters_of, to_markdown
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR
from srpsa.evaluation.metrics import DetectionMetrics, ImageEvaluation, evaluate_many, per_image_table
from srpsa.evaluation.pairing import DEFAULT_GLOBS, ImagePair, pair_annotations
from srpsa.io.calibration import is_pixel_size

__all__ = ["REPORT_FILES", "DetectionReport", "evaluate_detections"]

#: What :meth:`DetectionReport.save` writes.
REPORT_FILES = ("metrics.json", "per_image.csv", "psd_comparison.csv", "psd_comparison.md", "kde.png")


@dataclass
class DetectionReport:
    """Everything ``srpsa evaluate detect`` reports: pooled and per-image metrics, the PSD comparison."""

    pooled: DetectionMetrics
    evaluations: list[ImageEvaluation]
    psd: pd.DataFrame  # statistics rows x {Ground truth, label, differences}
    counts: pd.DataFrame  # GT and predicted counts (paper Table 6 layout)
    gt_diameters: np.ndarray
    pred_diameters: np.ndarray
    unit: str  # "um" or "px"
    pixel_size_um: float | None
    pairs: list[ImagePair]
    label: str
    match_factor: float
    ignore_border: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json`` (strict JSON: NaN as null)."""
        return {
            "pooled": self.pooled.to_dict(),
            "per_image": {e.name: e.metrics.to_dict() for e in self.evaluations},
            "psd_comparison": {"unit": self.unit, "weighting": "number", "table": _json_table(self.psd)},
            "pairs": [{"key": p.key, "gt": str(p.gt_path), "pred": str(p.pred_path)} for p in self.pairs],
            "settings": {"match_factor": self.match_factor, "ignore_border": self.ignore_border,
                         "pixel_size_um": self.pixel_size_um, "label": self.label},  # fmt: skip
            "notes": self.notes,
        }

    def save(self, out: str | Path) -> list[Path]:
        """Write :data:`REPORT_FILES` into the folder ``out`` (each atomically); returns their paths."""
        from srpsa.io.atomic import atomic_open, atomic_write_text
        from srpsa.report.figures import plot_kde_comparison

        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise ParameterError("out", f"{folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "metrics.json", json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        with atomic_open(folder / "per_image.csv", "w", newline="") as fh:
            per_image_table(self.evaluations).to_csv(fh, float_format="%.6g")
        with atomic_open(folder / "psd_comparison.csv", "w", newline="") as fh:
            self.psd.to_csv(fh, float_format="%.6g")
        atomic_write_text(folder / "psd_comparison.md", to_markdown(self.psd) + "\n" + to_markdown(self.counts))
        plot_kde_comparison({"Ground truth": self.gt_diameters, self.label: self.pred_diameters}, folder / "kde.png",
                            unit=self.unit, title=f"{self.label} vs ground truth")  # fmt: skip
        return [folder / name for name in REPORT_FILES]


def evaluate_detections(
    gt: str | Path,
    pred: str | Path,
    *,
    match_factor: float = DEFAULT_MATCH_FACTOR,
    pixel_size_um: float | None = None,
    ignore_border: bool = False,
    image_size: tuple[int, int] | None = None,
    images: str | Path | None = None,
    gt_globs: tuple[str, ...] = DEFAULT_GLOBS,
    label: str = "Prediction",
) -> DetectionReport:
    """Score the circles in ``pred`` against those in ``gt`` (files or folders; pairing rules in
    :mod:`srpsa.evaluation.pairing`).

    Parameters
    ----------
    match_factor
        A match needs centre distance <= ``match_factor * r_gt``.
    pixel_size_um
        um/px for the size statistics; default: the one every ``summary.json`` agrees on, else px.
    ignore_border
        Circles cut by the image border count neither as hits nor as errors, and leave the statistics.
    image_size
        ``(width, height)`` of every image, for ``ignore_border`` when no ``summary.json`` gives it.
    images
        Folder of the images (``<key>.png/.tif/...``), read for their size with ``ignore_border``.
    gt_globs
        File patterns selecting ground-truth files in a ground-truth folder.
    label
        Name of the prediction in tables and the plot.

    Raises
    ------
    ParameterError
        A bad value, named; :class:`~srpsa.errors.InputError` for unreadable or unpaired files.
    """
    if not (math.isfinite(match_factor) and match_factor > 0):
        raise ParameterError("match_factor", f"must be a positive number, got {match_factor}")
    if pixel_size_um is not None and not is_pixel_size(pixel_size_um):
        raise ParameterError("pixel_size_um", f"must be a positive number of um per pixel, got {pixel_size_um}")
    if image_size is not None and min(image_size) < 1:
        raise ParameterError("image_size", f"needs positive WIDTH HEIGHT, got {image_size[0]} {image_size[1]}")

    pairs, notes = pair_annotations(Path(gt), Path(pred), gt_globs=gt_globs)
    shapes: dict[str, tuple[int, int]] = {}
    if ignore_border:
        for p in pairs:
            shape = p.image_shape or _shape_from_folder(images, p.key) or ((image_size[1], image_size[0]) if image_size else None)
            if shape is None:
                raise ParameterError("ignore_border", f"needs the image size of '{p.key}': pass images (a folder) or image_size")
            shapes[p.key] = shape
    pooled, evals = evaluate_many(
        ((p.key, p.gt, p.pred) for p in pairs), match_factor=match_factor, shapes=shapes, ignore_border=ignore_border
    )
    px, unit = _pixel_size(pixel_size_um, pairs)
    gt_d = _counted_diameters(pairs, shapes, "gt", px)
    pred_d = _counted_diameters(pairs, shapes, "pred", px)
    return DetectionReport(
        pooled=pooled, evaluations=evals, psd=compare_size_distributions(gt_d, {label: pred_d}),
        counts=detection_count_table({"all images": (pooled.n_gt, pooled.n_pred)}), gt_diameters=gt_d,
        pred_diameters=pred_d, unit=unit, pixel_size_um=px, pairs=pairs, label=label, match_factor=match_factor,
        ignore_border=ignore_border, notes=notes,
    )  # fmt: skip


def _shape_from_folder(folder: str | Path | None, key: str) -> tuple[int, int] | None:
    """``(H, W)`` of the image ``<folder>/<key>.<image suffix>``, read from its header; None if absent."""
    if folder is None:
        return None
    from srpsa.io import SUPPORTED_SUFFIXES, read_image_shape

    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError("images", f"{folder}: not a folder")
    # Compare names rather than glob: keys may contain glob metacharacters such as '['.
    hits = sorted(p for p in folder.iterdir() if p.stem == key and p.suffix.lower() in SUPPORTED_SUFFIXES)
    return read_image_shape(hits[0]) if hits else None


def _pixel_size(override: float | None, pairs: list[ImagePair]) -> tuple[float | None, str]:
    if override:
        return override, "um"
    known = {p.pixel_size_um for p in pairs}
    if len(known) == 1 and None not in known:
        return known.pop(), "um"
    return None, "px"


def _counted_diameters(pairs: list[ImagePair], shapes: dict[str, tuple[int, int]], side: str, px: float | None) -> np.ndarray:
    """Diameters for the size statistics: every circle, or with ``ignore_border`` (``shapes`` given) only
    those inside the frame, as ISO 13322-1 asks of a size distribution."""
    from srpsa.psd.particles import edge_flags

    out = []
    for p in pairs:
        circles = p.gt if side == "gt" else p.pred
        if p.key in shapes:
            circles = circles[~edge_flags(circles, shapes[p.key])]
        out.append(diameters_of(circles, px))
    return np.concatenate(out) if out else np.zeros(0)


def _json_table(df: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """DataFrame -> {row: {column: value}} with NaN as null (metrics.json stays strict JSON)."""
    return {
        str(idx): {str(c): (None if not math.isfinite(float(v)) else float(v)) for c, v in row.items()}
        for idx, row in df.iterrows()
    }


