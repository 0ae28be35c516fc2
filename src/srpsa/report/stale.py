"""Per-image numbers that no longer match particles.csv (the table was edited after the analysis).

``summary.json`` holds the counts and statistics of the table ``analyze`` wrote. When particles.csv is
changed by hand afterwards, the report's pooled numbers (recomputed from the tables) and its per-image
rows (read from summary.json) used to disagree silently. Here the per-image numbers are compared with
the table; when they differ, the report shows numbers recomputed from particles.csv and says so.
``srpsa review`` keeps the two in step by rewriting summary.json on every save.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from srpsa.psd import size_statistics

# particles.csv holds 4 decimals: statistics of the written table agree with the summary to ~1e-5.
_REL_TOL = 1e-3
_COMPARED = ("mean", "d50")


def _differs(a: object, b: object) -> bool:
    fa = float(a) if isinstance(a, (int, float)) and math.isfinite(a) else None
    fb = float(b) if isinstance(b, (int, float)) and math.isfinite(b) else None
    if fa is None or fb is None:
        return (fa is None) != (fb is None)
    return abs(fa - fb) > _REL_TOL * max(abs(fa), abs(fb), 1e-12)


def refresh_if_stale(result) -> None:
    """Recompute ``result``'s counts/statistics from its particles.csv when summary.json disagrees.

    ``result`` is a :class:`srpsa.report.collect.ImageResult` whose ``diameters`` are already read.
    """
    if result.diameters is None:
        return
    try:
        table = pd.read_csv(result.folder / "particles.csv")
        edge = pd.to_numeric(table["edge"], errors="coerce").fillna(0).to_numpy().astype(bool)
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return  # unreadable tables are reported by collect already
    d = result.diameters
    settings = result.settings
    n_boot = settings.get("bootstrap", 1000)
    n_boot = int(n_boot) if isinstance(n_boot, int) and n_boot >= 0 else 1000
    seed = int(settings.get("seed", 0)) if isinstance(settings.get("seed", 0), int) else 0
    stats = {table_key: size_statistics(d, weighting=w, unit=result.unit, ci=n_boot > 0, n_boot=max(n_boot, 1), seed=seed).to_dict()
             for table_key, w in (("Q0", "number"), ("Q3", "volume"))}
    stale = len(table) != result.count or len(d) != result.count_used or any(
        _differs(stats[t].get(k), result.statistics(t).get(k)) for t in ("Q0", "Q3") for k in _COMPARED)
    if not stale:
        return
    old_count, old_d50 = result.count, result.statistics("Q0").get("d50")
    result.summary = {**result.summary, "count": int(len(table)), "count_used": int(len(d)),
                      "count_edge": int(np.sum(edge)), "statistics": stats}
    new_d50 = stats["Q0"].get("d50")
    shown = lambda v: f"{v:.4g}" if isinstance(v, (int, float)) else "n/a"  # noqa: E731
    result.notes.append(
        f"particles.csv does not match summary.json (count {old_count} -> {len(table)}, D50 {shown(old_d50)} -> "
        f"{shown(new_d50)} {result.unit}; edited after the analysis?): this report recomputes the image's numbers from "
        "particles.csv, while summary.json and summary.csv still hold the analysis' values (save the image in "
        "`srpsa review` or analyse it again to update them)"
    )
