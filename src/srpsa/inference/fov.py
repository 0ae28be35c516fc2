"""Field of view: ``srpsa analyze --roi auto|MASK.png``.

Photos taken through an eyepiece show a bright circular field inside a dark vignette; particles cut by
that field are as incomplete as particles cut by the image border, and particles in the dark margin are
not measurable. With a field of view, every particle whose disc is not wholly inside it is marked
``edge`` and so excluded from the statistics like border-cut ones (ISO 13322-1), unless --include-edge.

* ``auto``: the image is reduced to 256 px on its long side, lightly blurred and log-transformed, so the
  field's dim background between particles stands out from the near-black vignette; the lowest of
  three Otsu classes (vignette, background, particles) is outside, the largest remaining component
  (holes filled) is the field. Its outline away from the image border is fitted with a circle
  (algebraic least squares, refitted without outline points off the circle, e.g. particles bulging
  over the rim; the field may extend beyond the image), shrunk by ``SHRINK`` so the dim rim of the
  vignette is outside. A field that is not round (rms residual above 6 % of the radius) is used as the
  mask itself; no vignette (field > 97 % of the image, or outside not darker than half the field's
  darkest tenth) means the whole image, with a warning.
* ``MASK.png``: an image of the same size, non-zero = inside.

Why by hand: no library detects an eyepiece field; the pieces (OpenCV blur/resize, Otsu, labelling) are
library calls, the circle fit is three lines of linear least squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from srpsa.errors import InputError

WORK_SIZE = 256
BLUR_FRACTION = 0.008  # Gaussian sigma / long side of the reduced image (2 px at 256)
LOG_OFFSET = 0.003
MIN_FILL = 0.2  # a field smaller than this share of the image is not believed
NO_VIGNETTE = 0.97
VIGNETTE_RATIO = 0.5  # outside median / field 10th percentile must be below this
MAX_RESIDUAL = 0.06
SHRINK = 0.03
N_SAMPLES = 32  # points on each particle's outline checked against a mask


@dataclass
class FieldOfView:
    source: str  # "auto" or the mask path
    circle: tuple[float, float, float] | None  # (x, y, R) in image px when the field is a circle
    mask: np.ndarray | None  # bool (H, W) when the field is given as / found to be a mask
    fraction: float  # share of the image inside the field
    warnings: list[str]

    def to_dict(self) -> dict:
        return {"source": self.source, "circle": None if self.circle is None else [round(v, 2) for v in self.circle],
                "fraction": round(self.fraction, 4)}


def check_roi_setting(value: str | None) -> None:
    if value is None or value == "auto":
        return
    if not Path(value).is_file():
        raise InputError(f"--roi must be 'auto' or a mask image file, got '{value}' (not found)")


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Algebraic (Kasa) circle fit: (cx, cy, r, rms radial residual)."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    (p, q, s), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = p / 2.0, q / 2.0
    r = float(np.sqrt(max(s + cx * cx + cy * cy, 0.0)))
    res = float(np.sqrt(np.mean((np.hypot(x - cx, y - cy) - r) ** 2)))
    return float(cx), float(cy), r, res


def _auto(gray: np.ndarray) -> FieldOfView:
    h, w = gray.shape
    f = min(1.0, WORK_SIZE / max(h, w))
    small = cv2.resize(gray.astype(np.float32), (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
    # Log intensity: the field's background between particles (a few % of full scale) stands out from
    # the near-black vignette, while bright particles no longer dominate the histogram.
    lg = np.log(cv2.GaussianBlur(small, (0, 0), BLUR_FRACTION * max(small.shape)) + LOG_OFFSET)
    whole = FieldOfView("auto", None, None, 1.0, [])
    try:
        # three classes (vignette, background, particles); the field is everything above the lowest
        t = threshold_multiotsu(lg, 3)[0]
    except ValueError:  # (nearly) uniform image
        whole.warnings.append("--roi auto: no field of view found (uniform image); the whole image is used")
        return whole
    bright = ndimage.binary_opening(lg > t, iterations=2)
    labels, n = ndimage.label(bright)
    if n == 0:
        whole.warnings.append("--roi auto: no field of view found; the whole image is used")
        return whole
    sizes = ndimage.sum_labels(bright, labels, index=np.arange(1, n + 1))
    field = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    share = float(field.mean())
    if share > NO_VIGNETTE or share < MIN_FILL:
        why = "no vignette" if share > NO_VIGNETTE else f"the bright part covers only {100 * share:.0f} % of the image"
        whole.warnings.append(f"--roi auto: no field of view found ({why}); the whole image is used")
        return whole
    # A vignette is dark: outside well below even the darkest tenth of the field (noise or a shaded
    # background split by the threshold is not a field of view).
    outside_level, inside_level = float(np.median(small[~field])), float(np.percentile(small[field], 10))
    if not outside_level < VIGNETTE_RATIO * inside_level:
        whole.warnings.append("--roi auto: no field of view found (no dark vignette); the whole image is used")
        return whole
    outline = field & ~ndimage.binary_erosion(field)
    sh, sw = field.shape
    yy, xx = np.nonzero(outline)
    inner = (xx > 1) & (yy > 1) & (xx < sw - 2) & (yy < sh - 2)  # not the image border
    px, py = (xx[inner] + 0.5) * (w / sw) - 0.5, (yy[inner] + 0.5) * (h / sh) - 0.5
    if len(px) >= 12:
        cx, cy, r, res = fit_circle(px, py)
        # once more without the outline points off the circle (particles bulging over the rim)
        keep = np.abs(np.hypot(px - cx, py - cy) - r) <= max(2.5 * res, 1e-9)
        if keep.sum() >= 12:
            cx, cy, r, res = fit_circle(px[keep], py[keep])
        if res <= MAX_RESIDUAL * r:
            r *= 1.0 - SHRINK
            return FieldOfView("auto", (cx, cy, r), None, _disc_fraction(cx, cy, r, h, w), [])
    # Not round: the mask itself, eroded by the same margin, at full size.
    erode = max(1, round(SHRINK * np.sqrt(field.sum() / np.pi)))
    field = ndimage.binary_erosion(field, iterations=erode)
    full = cv2.resize(field.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return FieldOfView("auto", None, full, float(full.mean()), ["--roi auto: the field of view is not round; its mask is used as found"])


def _disc_fraction(cx: float, cy: float, r: float, h: int, w: int) -> float:
    yy, xx = np.ogrid[0:h:4, 0:w:4]
    return float(((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).mean())


def _from_mask(path: str, shape: tuple[int, int]) -> FieldOfView:
    from srpsa.io import read_image

    try:
        mask = read_image(path).data > 0
    except InputError as exc:
        raise InputError(f"--roi: cannot read mask {path}: {exc}") from None
    if mask.shape != tuple(shape):
        raise InputError(f"--roi: mask {path} is {mask.shape[1]}x{mask.shape[0]} px, the image {shape[1]}x{shape[0]} px")
    warnings = [] if mask.any() else [f"--roi: mask {path} is empty: every particle is outside the field of view"]
    return FieldOfView(str(path), None, mask, float(mask.mean()), warnings)


def field_of_view(gray: np.ndarray, roi: str) -> FieldOfView:
    """The field of view of a float gray image for ``--roi`` (``"auto"`` or a mask path)."""
    return _auto(gray) if roi == "auto" else _from_mask(roi, gray.shape[:2])


def outside_fov(circles: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """True where a circle (x, y, r) is not wholly inside the field of view (cut by it, or outside)."""
    c = np.asarray(circles, np.float64).reshape(-1, 3)
    if fov.circle is not None:
        cx, cy, big_r = fov.circle
        return np.hypot(c[:, 0] - cx, c[:, 1] - cy) + c[:, 2] > big_r
    if fov.mask is None or len(c) == 0:
        return np.zeros(len(c), bool)
    h, w = fov.mask.shape
    t = np.linspace(0, 2 * np.pi, N_SAMPLES, endpoint=False)
    # centre plus points just inside the outline (0.95 r, so a disc touching the mask edge stays inside)
    px = np.concatenate([c[:, :1], c[:, :1] + 0.95 * c[:, 2:3] * np.cos(t)], axis=1)
    py = np.concatenate([c[:, 1:2], c[:, 1:2] + 0.95 * c[:, 2:3] * np.sin(t)], axis=1)
    xi, yi = np.rint(px).astype(int), np.rint(py).astype(int)
    off = (xi < 0) | (yi < 0) | (xi >= w) | (yi >= h)
    inside = np.zeros_like(off)
    inside[~off] = fov.mask[yi[~off], xi[~off]]
    return ~inside.all(axis=1)


def apply_roi(table, gray: np.ndarray, roi: str | None):
    """The pipeline's hook: particles not wholly inside the field get ``edge = 1``. Returns (table,
    summary entry or None, warnings)."""
    if not roi:
        return table, None, []
    fov = field_of_view(gray, roi)
    cut = outside_fov(table[["x_px", "y_px", "r_px"]].to_numpy(), fov)
    newly = cut & (table["edge"].to_numpy() == 0)
    table = table.copy()
    table.loc[cut, "edge"] = 1
    warnings = list(fov.warnings)
    if newly.any():
        warnings.append(f"{int(newly.sum())} particles cut by or outside the field of view (--roi) are marked edge")
    return table, {**fov.to_dict(), "count_cut": int(newly.sum())}, warnings
