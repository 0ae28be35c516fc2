"""Pieces every annotation format shares: the format names, the half-pixel offset, JSON value checks,
shapes reduced to circles, and the checks of circles read or to be written."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.errors import InputError

#: Annotation formats understood by :func:`read_circles` / :func:`write_circles`.
FORMATS: tuple[str, ...] = ("csv", "via", "labelme", "coco")

#: Offset added to srpsa coordinates to get the corner-origin coordinates of VIA, LabelMe and COCO.
HALF_PIXEL = 0.5

LABEL = "particle"  # class name written to LabelMe and COCO files


class Malformed(Exception):
    """A structural problem inside an annotation file; turned into InputError naming the file."""


def empty() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.float64)


def stack(rows: list[tuple[float, float, float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def num(value: Any, where: str) -> float:
    """A finite float from a JSON value, or Malformed naming where it was."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Malformed(f"{where} is {value!r}, not a number")
    try:
        v = float(value)
    except ValueError as exc:
        raise Malformed(f"{where} is {value!r}, not a number") from exc
    if not math.isfinite(v):
        raise Malformed(f"{where} is {value!r}, not a finite number")
    return v


def get(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise Malformed(f"{where} is not a JSON object")
    if key not in mapping:
        raise Malformed(f"{where} has no {key!r}")
    return mapping[key]


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{where} is not a list")
    return value


def polygon_to_circle(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float] | None:
    """Area-equivalent circle of a simple polygon, centred on the polygon's centroid.

    Uses the shoelace formula for the area and the matching centroid formula, in the coordinates given
    (no half-pixel shift). Hand-written because ``cv2.moments`` computes the same in float32 only,
    which loses precision for coordinates of a few thousand pixels.

    Parameters
    ----------
    xs, ys
        Vertex coordinates, in order (the closing vertex may be repeated or not).

    Returns
    -------
    tuple of float or None
        ``(cx, cy, r)`` with ``pi r**2 = |area|``; None for fewer than three vertices or zero area.
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        return None
    # Work relative to the first vertex: the cross products stay small, so little cancellation.
    x0, y0 = x[0], y[0]
    x, y = x - x0, y - y0
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area2 = cross.sum()  # twice the signed area
    if area2 == 0 or not math.isfinite(area2):
        return None
    cx = ((x + xn) * cross).sum() / (3.0 * area2) + x0
    cy = ((y + yn) * cross).sum() / (3.0 * area2) + y0
    r = math.sqrt(abs(area2) / 2.0 / math.pi)
    return float(cx), float(cy), float(r)


def box_to_circle(x: float, y: float, w: float, h: float) -> tuple[float, float, float]:
    """Corner-origin box [x, y, w, h] -> srpsa circle: centre of the box, r = mean half-side."""
    return x + w / 2.0 - HALF_PIXEL, y + h / 2.0 - HALF_PIXEL, (w + h) / 4.0


class Skipped:
    """Counts regions that could not become circles, to warn once per file rather than per region."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def warn(self, path: Path) -> None:
        if self.counts:
            detail = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
            warnings.warn(f"{path}: skipped regions that are not circles or areas ({detail})", UserWarning,
                          stacklevel=4)


def check_radii(circles: np.ndarray, path: Path) -> None:
    if circles.size and (circles[:, 2] < 0).any():
        i = int(np.flatnonzero(circles[:, 2] < 0)[0])
        raise InputError(f"{path}: circle {i + 1} has a negative radius ({circles[i, 2]!r})")


def as_circles(circles: Any, what: str = "circles") -> np.ndarray:
    arr = np.asarray(circles, dtype=np.float64)
    if arr.size == 0:
        return empty()
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{what} must have shape (N, 3) = [x, y, r], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if (arr[:, 2] < 0).any():
        raise ValueError(f"{what} contain a negative radius")
    return arr
