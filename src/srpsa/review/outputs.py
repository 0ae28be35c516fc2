"""Redraw what is derived from a particle table: the image's overlay and PSD plot, the folder's
summary.csv and report.html, with the same code ``srpsa analyze`` and ``srpsa report`` use."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from srpsa.review.folder import ImageEntry

FOLDER_LOCK = ".review.lock"
LOCK_TIMEOUT_S = 120.0


def write_image_figures(entry: ImageEntry, table: pd.DataFrame, used_diameters: np.ndarray, summary: dict | None = None) -> None:
    """overlay.png and psd.png of one image from ``table``, drawn as ``Result.save`` draws them (ids,
    scale bar, field of view, CI whiskers from ``summary``'s statistics)."""
    from srpsa.io import read_image
    from srpsa.report.figures import plot_overlay, plot_psd

    summary = summary or entry.summary
    loaded = read_image(entry.image_path, pixel_size_um=entry.pixel_size_um,
                        max_pixels=int((summary.get("settings") or {}).get("max_pixels") or 178_956_970))
    circles = table[["x_px", "y_px", "r_px"]].to_numpy(dtype=np.float64)
    # A circle a person added has no detector score; it is drawn as confident (it was checked by eye).
    scores = np.nan_to_num(table["score"].to_numpy(dtype=np.float64), nan=1.0)
    plot_overlay(loaded.rgb if loaded.rgb is not None else loaded.data, circles, entry.folder / "overlay.png",
                 edge=table["edge"].to_numpy().astype(bool), scores=scores, ids=table["id"].to_numpy(),
                 pixel_size_um=entry.pixel_size_um, fov_circle=(summary.get("roi") or {}).get("circle"))
    unit = "um" if entry.pixel_size_um else "px"
    stats = summary.get("statistics") or {}
    ci = {"number": (stats.get("Q0") or {}).get("ci"), "volume": (stats.get("Q3") or {}).get("ci")}
    plot_psd(used_diameters, entry.folder / "psd.png", unit=unit, title=entry.image_path.name, ci=ci)


def refresh_folder_outputs(root: Path) -> None:
    """Rebuild summary.csv (and errors.csv) and report.html of ``root`` from its per-image files."""
    from srpsa.inference.tables import rebuild_batch_tables
    from srpsa.report.html import write_report

    with FileLock(str(Path(root) / FOLDER_LOCK), timeout=LOCK_TIMEOUT_S):
        rebuild_batch_tables(Path(root), [], [])
        write_report(root, title=_report_title(Path(root) / "report.html"))


def _report_title(path: Path) -> str | None:
    """The title of an existing report (given with `srpsa report --title`), kept when it is rebuilt."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    match = re.search(r"<title>(.*?)</title>", head, re.S)
    return html.unescape(match.group(1)).strip() or None if match else None
