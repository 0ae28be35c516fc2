"""CSV (and TSV) circle files: columns ``x,y,r`` or ``x_px,y_px,r_px`` in srpsa's own coordinates."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_open
from srpsa.io.annotations.common import check_radii

# Column names accepted in CSV files: the short form and srpsa's own particles.csv form.
COLUMNS: tuple[tuple[str, str, str], ...] = (("x", "y", "r"), ("x_px", "y_px", "r_px"))
SUFFIXES = (".csv", ".tsv", ".txt")


def separator(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def read(path: Path) -> dict[str, np.ndarray]:
    sep = separator(path)
    try:
        table = pd.read_csv(path, sep=sep, skipinitialspace=True, dtype=str, keep_default_na=False,
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from exc
    names = {str(c).strip().lower(): c for c in table.columns}
    for wanted in COLUMNS:
        if all(n in names for n in wanted):
            cols = [names[n] for n in wanted]
            break
    else:
        raise InputError(f"{path}: CSV needs columns x,y,r or x_px,y_px,r_px (found: "
                         f"{', '.join(map(str, table.columns)) or 'none'})")
    values = np.empty((len(table), 3), dtype=np.float64)
    for j, col in enumerate(cols):
        numbers = pd.to_numeric(table[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            row = int(bad[0])
            # +2: one for the header line, one because rows count from 1 in editors.
            raise InputError(f"{path}: line {row + 2}, column {col!r}: {table[col].iloc[row]!r} is not a "
                             "finite number")
        values[:, j] = numbers
    check_radii(values, path)
    return {"": values}


def write(path: Path, circles: np.ndarray) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=separator(path))
        writer.writerow(["x_px", "y_px", "r_px"])
        # csv writes floats with repr(), the shortest text that reads back to the same double.
        writer.writerows(circles.tolist())
