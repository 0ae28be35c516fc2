"""Shared synthetic test image: a few dark disks on a bright ground, quick for the detector."""

from __future__ import annotations

import numpy as np


def disk_image(seed: int, shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    """Six dark disks (r 6-9 px, value 60) on a bright background (200), uint8."""
    rng = np.random.default_rng(seed)
    img = np.full(shape, 200, np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(6):
        cy, cx, r = rng.uniform(15, shape[0] - 15), rng.uniform(15, shape[1] - 15), rng.uniform(6, 9)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 60
    return img
