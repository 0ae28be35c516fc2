"""Size-distribution comparison of predictions against ground truth (the paper's Tables 3-5).

The paper compares mean, D50, mode, StDev and CV of the diameter distributions of the manual annotations
and of each detector. :func:`compare_size_distributions` computes them with
:func:`srpsa.psd.size_statistics` (mode from the ISJ kernel density estimate) and adds, for each
prediction, the difference to ground truth in the statistic's unit and relative to the ground-truth value
in percent. (For CV, itself a percentage, the absolute difference is in percentage points.)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from srpsa.errors import InputError

__all__ = [
    "GT_LABEL",
    "STATISTICS",
    "compare_size_distributions",
    "detection_count_table",
    "diameters_of",
    "paper_layout",
    "to_markdown",
]

# (row label in the table, attribute of srpsa.psd.SizeStatistics), in the paper's column order.
STATISTICS: tuple[tuple[str, str], ...] = (
    ("Mean", "mean"),
    ("D50", "d50"),
    ("Mode", "mode"),
    ("StDev", "std"),
    ("CV", "cv"),
)
GT_LABEL = "Ground truth"


def _statistics(diameters: np.ndarray, weighting: str) -> dict[str, float]:
    from srpsa.psd import size_statistics

    d = np.asarray(diameters, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        return {label: float("nan") for label, _ in STATISTICS}
    stats = size_statistics(d, weighting=weighting)
    return {label: float(getattr(stats, attr)) for label, attr in STATISTICS}


def compare_size_distributions(
    gt_diameters: np.ndarray,
    predictions: Mapping[str, np.ndarray] | np.ndarray,
    *,
    weighting: str = "number",
) -> pd.DataFrame:
    """Table of distribution statistics for ground truth and each prediction, with differences.

    Parameters
    ----------
    gt_diameters : array of float
        Ground-truth diameters (any unit; the table keeps it).
    predictions : mapping label -> diameters, or one array (labelled ``"Prediction"``)
        Predicted diameters per method, e.g. ``{"SR-PSA": d1, "Hough": d2}``.
    weighting : {"number", "volume"}
        Passed to :func:`srpsa.psd.size_statistics` (Q0 or Q3 distribution).

    Returns
    -------
    pandas.DataFrame
        Index: ``Mean, D50, Mode, StDev, CV``. Columns: ``Ground truth``, then per method ``<label>``,
        ``<label> diff`` (method - GT) and ``<label> diff %`` (100 * diff / GT). A statistic that cannot
        be computed (fewer than two diameters) is NaN, so the table still prints.
    """
    if not isinstance(predictions, Mapping):
        predictions = {"Prediction": predictions}
    if GT_LABEL in predictions:
        raise InputError(f"a prediction cannot be labelled {GT_LABEL!r}")
    gt = _statistics(gt_diameters, weighting)
    index = [label for label, _ in STATISTICS]
    table = pd.DataFrame({GT_LABEL: [gt[k] for k in index]}, index=index)
    for name, diam in predictions.items():
        st = _statistics(diam, weighting)
        values = np.array([st[k] for k in index])
        ref = table[GT_LABEL].to_numpy()
        diff = values - ref
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(ref != 0, 100.0 * diff / ref, np.nan)
        table[name] = values
        table[f"{name} diff"] = diff
        table[f"{name} diff %"] = rel
    table.index.name = "statistic"
    return table


def paper_layout(table: pd.DataFrame) -> pd.DataFrame:
    """Rows = experiments, columns = Mean, D50, Mode, StDev, CV: the layout of the paper's Tables 3-5."""
    keep = [c for c in table.columns if not c.endswith(" diff") and not c.endswith(" diff %")]
    return table[keep].T.rename_axis("experiment")


def to_markdown(table: pd.DataFrame, *, digits: int = 2) -> str:
    """Render a DataFrame as a GitHub markdown table (no optional dependency such as ``tabulate``)."""

    def fmt(v: object) -> str:
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return "-" if not np.isfinite(v) else f"{float(v):.{digits}f}"
        if v is None:
            return "-"
        return str(v)

    head = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([" --- "] + [" ---: "] * len(table.columns)) + "|"]
    # itertuples keeps each column's dtype (iterrows would turn integer counts into floats).
    for idx, *values in table.itertuples(index=True, name=None):
        lines.append("| " + " | ".join([str(idx), *(fmt(v) for v in values)]) + " |")
    return "\n".join(lines) + "\n"


def detection_count_table(counts: Mapping[str, tuple[int, int]]) -> pd.DataFrame:
    """The paper's Table 6: ground-truth count, predicted count and "% detected" per data set.

    ``counts`` maps a data-set name to ``(n_gt, n_pred)``; a final ``Combined`` row pools them.
    """
    rows = []
    for name, (n_gt, n_pred) in counts.items():
        rows.append((name, int(n_gt), int(n_pred)))
    if len(rows) > 1:
        rows.append(("Combined", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    df = pd.DataFrame(rows, columns=["dataset", "GT", "predicted"]).set_index("dataset")
    with np.errstate(divide="ignore", invalid="ignore"):
        df["% detected"] = np.where(df["GT"] > 0, 100.0 * df["predicted"] / df["GT"].clip(lower=1), np.nan)
    return df


def diameters_of(circles: np.ndarray, pixel_size_um: float | None = None) -> np.ndarray:
    """Diameters ``2 r`` of ``(N, 3)`` circles, in um when a pixel size is given, else in pixels."""
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    return 2.0 * circles[:, 2] * (pixel_size_um or 1.0)

