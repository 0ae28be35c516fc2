"""Overlay annotations: particle ids at the circle centres and a scale bar, drawn with OpenCV.

By hand because the overlay is an OpenCV canvas (figures.py: matplotlib patches are too slow for
thousands of circles), and matplotlib-scalebar draws on matplotlib axes only.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Above this many particles ids are not drawn (they would cover the particles).
MAX_IDS = 1500
MIN_ID_RADIUS_PX = 7.0  # circles smaller than this on the canvas get no id


def _text(canvas: np.ndarray, text: str, org: tuple[int, int], scale: float, thickness: int = 1) -> None:
    # Dark outline under light text: readable on bright SEM and dark OM backgrounds alike.
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def draw_ids(canvas: np.ndarray, centres: np.ndarray, radii: np.ndarray, ids: np.ndarray) -> int:
    """Write each id centred on its circle (canvas px); returns how many were drawn."""
    if len(ids) > MAX_IDS:
        return 0
    drawn = 0
    for (x, y), r, pid in zip(np.asarray(centres, float), np.asarray(radii, float), np.asarray(ids)):
        if r < MIN_ID_RADIUS_PX:
            continue
        text = str(int(pid))
        scale = float(np.clip(r / 30.0, 0.3, 1.2))
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        _text(canvas, text, (int(round(x - w / 2)), int(round(y + h / 2))), scale)
        drawn += 1
    return drawn


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``target`` (> 0)."""
    k = math.floor(math.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * 10**k <= target:
            return m * 10**k
    return 10 ** (k - 1) * 5.0


def draw_scale_bar(canvas: np.ndarray, um_per_px: float, unit_text: str = "um") -> float:
    """A bar of a round length (about a fifth of the width) at the bottom right; returns its length in um."""
    h, w = canvas.shape[:2]
    length_um = nice_length(0.2 * w * um_per_px)
    length_px = length_um / um_per_px
    thick = max(3, round(h / 150))
    margin = max(10, round(w / 60))
    x1, y = w - margin, h - margin
    x0 = int(round(x1 - length_px))
    cv2.rectangle(canvas, (x0 - 1, y - thick - 1), (x1 + 1, y + 1), (0, 0, 0), -1)
    cv2.rectangle(canvas, (x0, y - thick), (x1, y), (255, 255, 255), -1)
    label = f"{length_um:g} {unit_text}"
    scale = max(0.4, w / 2400)
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    _text(canvas, label, (int(round((x0 + x1) / 2 - tw / 2)), y - thick - max(4, th // 2)), scale)
    return length_um
