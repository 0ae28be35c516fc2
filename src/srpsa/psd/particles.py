"""The per-particle table: circles -> diameters in physical units, border flags."""

from __future__ import annotations

import numpy as np
import pandas as pd

PARTICLE_COLUMNS = ["id", "x_px", "y_px", "r_px", "d_um", "score", "edge"]


def edge_flags(circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """True where a circle touches or crosses the image border.

    Pixel centres are at integer coordinates, so the image spans [-0.5, W-0.5] x [-0.5, H-0.5]; a circle
    whose disc reaches that frame is cut by it (ISO 13322-1 excludes such particles from statistics).
    """
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    h, w = shape[:2]
    x, y, r = circles[:, 0], circles[:, 1], circles[:, 2]
    return (x - r <= -0.5) | (y - r <= -0.5) | (x + r >= w - 0.5) | (y + r >= h - 0.5)


def particle_table(
    circles: np.ndarray,
    scores: np.ndarray | None,
    shape: tuple[int, int],
    pixel_size_um: float | None,
) -> pd.DataFrame:
    """Build the ``particles.csv`` table (columns :data:`PARTICLE_COLUMNS`).

    ``d_um`` is the circle diameter times the pixel size, empty (NaN) when uncalibrated.
    """
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    n = len(circles)
    score = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n)
    d_um = 2.0 * circles[:, 2] * pixel_size_um if pixel_size_um else np.full(n, np.nan)
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "x_px": circles[:, 0],
            "y_px": circles[:, 1],
            "r_px": circles[:, 2],
            "d_um": d_um,
            "score": score,
            "edge": edge_flags(circles, shape).astype(int),
        },
        columns=PARTICLE_COLUMNS,
    )
