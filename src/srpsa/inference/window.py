"""The centred window of an image that holds at most a given number of pixels.

Several stages read a sample of a large image instead of all of it (the size guide, the SEM-side check,
the polarity decision, the two-level test): the window keeps the image's aspect ratio and sits in the
centre, where illumination and focus are usually best.
"""

from __future__ import annotations

import math


def centred_window(shape: tuple[int, ...], pixels: float) -> tuple[slice, slice]:
    """Row and column slices of the centred window of at most ``pixels`` pixels (the whole image when it
    is smaller), with the aspect ratio of ``shape`` (``(H, W, ...)``)."""
    h, w = shape[:2]
    f = min(1.0, math.sqrt(pixels / (h * w)))
    wh, ww = max(1, int(h * f)), max(1, int(w * f))
    y0, x0 = (h - wh) // 2, (w - ww) // 2
    return slice(y0, y0 + wh), slice(x0, x0 + ww)
