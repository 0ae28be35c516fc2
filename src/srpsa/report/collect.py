"""Read an ``srpsa analyze`` output folder back and pool its particles for the HTML report.

The folder layout is the one :mod:`srpsa.inference.batch` writes: one sub-folder per image holding
``summary.json`` (written last, so its presence means "finished") and ``particles.csv``, plus the batch
tables ``summary.csv`` (every finished image in the folder, the latest run's first; inference/tables.py) and ``errors.csv`` (inputs that failed). A single
per-image folder (``summary.json`` directly inside) is accepted too.

Pooled statistics are recomputed here from the per-particle tables rather than copied from
``summary.csv``: that table refuses to pool a px/um mix, has no confidence intervals and no warnings.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.psd import SizeStatistics, select_for_statistics, size_statistics
from srpsa.report.stale import refresh_if_stale

# (key in summary.json "statistics", weighting passed to srpsa.psd)
TABLES: tuple[tuple[str, str], ...] = (("Q0", "number"), ("Q3", "volume"))
_REQUIRED_COLUMNS = ("r_px", "edge")


@dataclass
class ImageResult:
    """One analysed image: its summary.json and the diameters that entered its statistics."""

    name: str  # output sub-folder name (the image stem, or stem + hash when stems collided)
    folder: Path
    summary: dict
    diameters: np.ndarray | None  # used particles in the image's unit; None when particles.csv is unusable
    notes: list[str] = field(default_factory=list)  # problems found while reading this folder

    @property
    def pixel_size_um(self) -> float | None:
        return summary_pixel_size(self.summary)

    @property
    def calibrated(self) -> bool:
        return self.pixel_size_um is not None

    @property
    def unit(self) -> str:
        return "um" if self.calibrated else "px"

    @property
    def include_edge(self) -> bool:
        return bool(self.settings.get("include_edge", False))

    @property
    def settings(self) -> dict:
        value = self.summary.get("settings")
        return value if isinstance(value, dict) else {}

    @property
    def count(self) -> int:
        return as_count(self.summary.get("count"))

    @property
    def count_used(self) -> int:
        return as_count(self.summary.get("count_used"))

    @property
    def count_edge_excluded(self) -> int:
        return 0 if self.include_edge else as_count(self.summary.get("count_edge"))

    def statistics(self, table: str) -> dict:
        stats = self.summary.get("statistics")
        value = stats.get(table) if isinstance(stats, dict) else None
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class FailedInput:
    """One row of errors.csv."""

    image: str
    error: str

    @property
    def name(self) -> str:
        return Path(self.image).stem or self.image


@dataclass
class Pooled:
    """The pooled sample: all used particles of the images that can share one unit."""

    unit: str
    members: list[str]  # names of the pooled images
    diameters: np.ndarray
    stats: dict[str, SizeStatistics]  # "Q0", "Q3"
    count: int
    count_edge_excluded: int
    notes: list[str]  # why some images were left out, or what the pooling assumes


@dataclass
class AnalysisFolder:
    root: Path
    images: list[ImageResult]
    failed: list[FailedInput]
    pooled: Pooled | None


def summary_pixel_size(summary: dict) -> float | None:
    """The pixel size (um/px) a summary.json records, or None when it is missing, zero or not a number."""
    value = summary.get("pixel_size_um")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def as_count(value: object) -> int:
    """A count from summary.json, 0 when absent or not a number (older or hand-edited files)."""
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def short_list(names: list[str], limit: int = 10) -> str:
    """Comma-separated names, cut after ``limit`` so a batch of hundreds keeps its warnings one line."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} is not an srpsa summary (expected a JSON object)")
    return data


def _batch_order(root: Path) -> list[str]:
    """Image names in input order, from summary.csv when it exists (POOLED row dropped)."""
    path = root / "summary.csv"
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [row["image"] for row in csv.DictReader(fh) if row.get("image") and row["image"] != "POOLED"]
    except (OSError, UnicodeDecodeError, KeyError, csv.Error):
        return []  # order is cosmetic; a damaged summary.csv must not stop the report


def find_image_folders(root: Path) -> list[Path]:
    """Per-image result folders under ``root`` in input order (summary.csv), others sorted after."""
    if (root / "summary.json").is_file():
        return [root]
    found = {p.parent.name: p.parent for p in root.glob("*/summary.json") if p.is_file()}
    ordered = [found[n] for n in _batch_order(root) if n in found]
    listed = {p.name for p in ordered}
    return ordered + [found[n] for n in sorted(found) if n not in listed]


def _image_diameters(folder: Path, summary: dict, pixel_size_um: float | None, include_edge: bool) -> tuple[np.ndarray | None, list[str]]:
    """Diameters of the particles that enter the statistics: d_um when calibrated, 2 r_px otherwise."""
    path = folder / "particles.csv"
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        return None, [f"particles.csv unreadable ({type(exc).__name__}); image left out of the pooled sample"]
    missing = [c for c in _REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        return None, [f"particles.csv lacks column(s) {', '.join(missing)}; image left out of the pooled sample"]
    r_px = pd.to_numeric(table["r_px"], errors="coerce").to_numpy(dtype=np.float64)
    edge = pd.to_numeric(table["edge"], errors="coerce").fillna(0).to_numpy()
    if pixel_size_um is None:
        d = 2.0 * r_px
    else:
        # d_um as written (4 decimals) is the documented size column; recompute only where it is empty.
        d = pd.to_numeric(table.get("d_um", pd.Series(np.nan, index=table.index)), errors="coerce").to_numpy(dtype=np.float64)
        d = np.where(np.isfinite(d), d, 2.0 * r_px * pixel_size_um)
    try:
        used = select_for_statistics(edge.astype(int), include_edge=include_edge)
    except InputError as exc:
        return None, [f"particles.csv edge column: {exc}; image left out of the pooled sample"]
    if (summary.get("settings") or {}).get("exclude_flagged") and "flag" in table:  # as the analysis did
        from srpsa.psd.shape import EXCLUDED_FLAGS

        used = used & ~table["flag"].isin(EXCLUDED_FLAGS).to_numpy()
    d = d[used]
    valid = np.isfinite(d) & (d > 0)
    notes = []
    if not valid.all():
        notes.append(f"{int((~valid).sum())} particle(s) with a missing or non-positive diameter ignored in the pooled sample")
    return d[valid], notes


def read_image_result(folder: Path) -> ImageResult:
    summary = _read_json(folder / "summary.json")
    result = ImageResult(folder.name, folder, summary, None)
    result.diameters, result.notes = _image_diameters(folder, summary, result.pixel_size_um, result.include_edge)
    refresh_if_stale(result)  # particles.csv edited by hand: per-image numbers from the table, with a note
    return result


def read_errors(root: Path) -> list[FailedInput]:
    path = root / "errors.csv"
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return [FailedInput(str(r.get("image") or "?"), str(r.get("error") or "")) for r in rows]


def _pool_members(images: list[ImageResult]) -> tuple[list[ImageResult], str, list[str]]:
    """Which images share a unit: calibrated ones in um (any pixel sizes), else all in px."""
    usable = [im for im in images if im.diameters is not None]
    calibrated = [im for im in usable if im.calibrated]
    uncalibrated = [im for im in usable if not im.calibrated]
    notes: list[str] = []
    if calibrated and uncalibrated:
        notes.append(
            f"pooled statistics use only the {len(calibrated)} calibrated image(s); {len(uncalibrated)} uncalibrated "
            f"image(s) are left out because their sizes are in px: {short_list([im.name for im in uncalibrated])}"
        )
        return calibrated, "um", notes
    if calibrated:
        sizes = sorted({im.pixel_size_um for im in calibrated})
        if len(sizes) > 1:
            shown = ", ".join(f"{s:.6g}" for s in sizes)
            notes.append(f"images have different pixel sizes ({shown} um/px); they are pooled in um")
        return calibrated, "um", notes
    if len(uncalibrated) > 1:
        notes.append("no image is calibrated: pooled sizes are in px, which is meaningful only if all images share one magnification")
    return uncalibrated, "px", notes


def _bootstrap_settings(members: list[ImageResult]) -> tuple[int, int]:
    """Resamples and seed for the pooled CIs: the analysis's own settings (first pooled image)."""
    settings = members[0].settings
    n_boot, seed = settings.get("bootstrap", 1000), settings.get("seed", 0)
    n_boot = int(n_boot) if isinstance(n_boot, int) and n_boot >= 0 else 1000
    seed = int(seed) if isinstance(seed, int) else 0
    return n_boot, seed


def pool(images: list[ImageResult]) -> Pooled | None:
    """Pooled Q0/Q3 statistics (with bootstrap CIs when the analysis computed them) or None."""
    members, unit, notes = _pool_members(images)
    if not members:
        return None
    d = np.concatenate([im.diameters for im in members])
    n_boot, seed = _bootstrap_settings(members)
    stats = {
        table: size_statistics(d, weighting=weighting, unit=unit, ci=n_boot > 0, n_boot=max(n_boot, 1), seed=seed)
        for table, weighting in TABLES
    }
    return Pooled(
        unit=unit,
        members=[im.name for im in members],
        diameters=d,
        stats=stats,
        count=sum(im.count for im in members),
        count_edge_excluded=sum(im.count_edge_excluded for im in members),
        notes=notes,
    )


def load_analysis(root: str | Path) -> AnalysisFolder:
    """Read an analyze output folder; InputError (one line) when there is nothing to report."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"report: folder {root} does not exist")
    if not root.is_dir():
        raise InputError(f"report: {root} is not a folder (give the --out folder of srpsa analyze)")
    folders = find_image_folders(root)
    failed = read_errors(root)
    if not folders and not failed:
        raise InputError(f"report: no analysis results in {root} (no */summary.json); run `srpsa analyze ... --out {root}` first")
    images = []
    for folder in folders:
        try:
            images.append(read_image_result(folder))
        except InputError as exc:  # one damaged folder is reported like a failed input, not fatal
            failed.append(FailedInput(str(folder), str(exc)))
    if not images:
        first = " ".join(failed[0].error.split())
        raise InputError(f"report: no analysed image in {root}; all {len(failed)} input(s) failed or are unreadable (first: {first})")
    return AnalysisFolder(root=root, images=images, failed=failed, pooled=pool(images))
