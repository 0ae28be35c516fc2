"""Read and write landmark tables: corresponding points picked in the OM and the SEM image.

Format: a CSV file with a header and the columns ``om_x, om_y, sem_x, sem_y`` (pixels, ``x`` = column,
``y`` = row, pixel centres at integer coordinates; any extra columns such as a label are ignored).
One row per landmark pair.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_open

__all__ = ["LANDMARK_COLUMNS", "read_landmarks", "write_landmarks"]

LANDMARK_COLUMNS = ("om_x", "om_y", "sem_x", "sem_y")


def read_landmarks(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read landmark pairs.

    Parameters
    ----------
    path
        CSV file with columns ``om_x, om_y, sem_x, sem_y``.

    Returns
    -------
    om, sem : numpy.ndarray
        ``(N, 2)`` float64 arrays of ``(x, y)`` points in OM and SEM pixels.

    Raises
    ------
    InputError
        If the file is missing or unreadable, a column is missing, or a value is not a finite number.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: landmark file not found")
    try:
        table = pd.read_csv(p, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{p}: cannot read landmark CSV ({exc})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in LANDMARK_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{p}: missing landmark column(s) {', '.join(missing)} (need {', '.join(LANDMARK_COLUMNS)})")
    values = table[list(LANDMARK_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 2  # +1 for the header, +1 for 1-based lines
        raise InputError(f"{p}: line {row}: landmark coordinates must be finite numbers")
    return values[:, :2].copy(), values[:, 2:].copy()


def write_landmarks(path: str | os.PathLike[str], om: np.ndarray, sem: np.ndarray) -> None:
    """Write landmark pairs in the format read by :func:`read_landmarks` (atomically)."""
    om = np.asarray(om, np.float64).reshape(-1, 2)
    sem = np.asarray(sem, np.float64).reshape(-1, 2)
    if len(om) != len(sem):
        raise ValueError(f"{len(om)} OM points but {len(sem)} SEM points")
    table = pd.DataFrame(np.hstack([om, sem]), columns=list(LANDMARK_COLUMNS))
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        table.to_csv(fh, index=False, float_format="%.4f")
