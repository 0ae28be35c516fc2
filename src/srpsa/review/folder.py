"""An ``srpsa analyze`` output folder as the review page sees it: images, their circles, their pixels.

Images are addressed only by the name of their result sub-folder, looked up in the folder's own list
(never joined onto a path), so a request cannot reach a file outside the folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.report.collect import find_image_folders

SOURCES = ("auto", "added", "edited")
REVIEW_FILE = "review.json"
AUTO_COPY = "particles.auto.csv"  # the detector's table, kept on the first save


class UnknownImage(LookupError):
    """No image of that name in the folder."""


@dataclass
class ImageEntry:
    name: str
    folder: Path
    summary: dict

    @property
    def image_path(self) -> Path:
        return Path(str(self.summary.get("image", "")))

    @property
    def image_ok(self) -> bool:
        return self.image_path.is_file()

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.summary["height"]), int(self.summary["width"])

    @property
    def pixel_size_um(self) -> float | None:
        value = self.summary.get("pixel_size_um")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    @property
    def reviewed(self) -> bool:
        return (self.folder / REVIEW_FILE).is_file()


def check_analysis_folder(root: Path) -> Path:
    """``root`` resolved, or InputError (one line) when it holds no analysis result."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"review: DIR {root} is not a folder (give the --out folder of srpsa analyze)")
    if not find_image_folders(root.resolve()):
        raise InputError(f"review: no analysis results in {root} (no */summary.json); run `srpsa analyze ... --out {root}` first")
    return root.resolve()


def _read_summary(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    needed = ("image", "height", "width", "settings")
    return data if isinstance(data, dict) and all(k in data for k in needed) else None


def list_images(root: Path) -> dict[str, ImageEntry]:
    """Name -> entry for every readable result folder (in the order of summary.csv)."""
    entries = {}
    for folder in find_image_folders(root):
        summary = _read_summary(folder)
        if summary is not None and (folder / "particles.csv").is_file():
            entries[folder.name] = ImageEntry(folder.name, folder, summary)
    return entries


def get_image(root: Path, name: str) -> ImageEntry:
    """The entry of ``name``: only names in the folder's own list are accepted (one summary.json read)."""
    folder = {f.name: f for f in find_image_folders(root)}.get(name)
    summary = _read_summary(folder) if folder is not None and (folder / "particles.csv").is_file() else None
    if summary is None:
        raise UnknownImage(f"no image named {name!r} in this folder")
    return ImageEntry(name, folder, summary)


def version_of(path: Path) -> str:
    """Content hash of particles.csv: what a save must start from (a stale tab gets 409)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def read_particles(entry: ImageEntry) -> pd.DataFrame:
    table = pd.read_csv(entry.folder / "particles.csv")
    missing = [c for c in ("x_px", "y_px", "r_px", "edge") if c not in table.columns]
    if missing:
        raise InputError(f"{entry.folder / 'particles.csv'} lacks column(s) {', '.join(missing)}")
    if "source" not in table.columns:
        table["source"] = "auto"
    table["source"] = table["source"].fillna("auto").astype(str)
    if "id" not in table.columns:
        table.insert(0, "id", np.arange(1, len(table) + 1))
    return table


def _finite_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) else None


def circles_payload(table: pd.DataFrame) -> list[dict]:
    """Circles as the page gets them (score None when a person added the circle)."""
    quality = table["quality"].astype(str).tolist() if "quality" in table.columns else [None] * len(table)
    score = table["score"].tolist() if "score" in table.columns else [None] * len(table)
    return [
        {"id": int(i), "x": float(x), "y": float(y), "r": float(r), "score": _finite_or_none(s),
         "edge": bool(e), "source": src, "quality": q}
        for i, x, y, r, s, e, src, q in zip(table["id"], table["x_px"], table["y_px"], table["r_px"], score,
                                             table["edge"], table["source"], quality)
    ]


@functools.lru_cache(maxsize=8)
def _display_jpeg(path: str, mtime_ns: int, max_side: int) -> bytes:
    """The image as JPEG for the browser, long side at most ``max_side`` (0: full size)."""
    import cv2

    from srpsa.io import read_image
    from srpsa.report.figures import _to_uint8_rgb  # the overlay's own conversion (gray/RGB/uint16 -> uint8)

    loaded = read_image(path)
    data = loaded.rgb if loaded.rgb is not None else loaded.data
    h, w = data.shape[:2]
    rgb, _ = _to_uint8_rgb(data, max_side if max_side > 0 else max(h, w))
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise InputError(f"cannot encode {path} for display")
    return buf.tobytes()


def display_jpeg(entry: ImageEntry, max_side: int) -> bytes:
    path = entry.image_path
    return _display_jpeg(str(path), path.stat().st_mtime_ns, max_side)
