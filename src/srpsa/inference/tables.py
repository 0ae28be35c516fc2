"""The batch tables of an ``--out`` folder, rebuilt from every finished result in it, under a lock.

``summary.csv`` has one row per finished image folder (``<name>/summary.json`` exists; it is written
last, atomically) and a ``POOLED`` row over all of them, whichever run produced them: two runs into one
folder, one after the other or at the same time, never lose each other's rows. ``errors.csv`` keeps the
failures of earlier runs that have not been analysed since, plus this run's.

The read-modify-write is serialised with :class:`filelock.FileLock` on ``OUT/.srpsa.lock`` (the
``filelock`` package is already a torch dependency); the files are still written atomically.

Row order: this run's images in input order, then the other rows in the order of the previous
``summary.csv``, then any others sorted by name (``srpsa report`` uses this order).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from srpsa.io.atomic import atomic_open

STAT_KEYS = ("mean", "d10", "d50", "d90", "mode", "std", "cv", "span", "d32", "d43")
LOCK_NAME = ".srpsa.lock"
LOCK_TIMEOUT_S = 600.0

log = logging.getLogger(__name__)


def _row(name: str, summary: dict) -> dict:
    row = {
        "image": name,
        "path": summary["image"],
        "count": summary["count"],
        "count_used": summary["count_used"],
        "unit": summary["unit"],
        "pixel_size_um": summary["pixel_size_um"],
        "pixel_size_source": summary["pixel_size_source"],
        # the self-check's verdict (inference/quality.py): a doubtful result must not look like a good one
        "quality": (summary.get("quality") or {}).get("status", ""),
        "quality_reasons": "; ".join((summary.get("quality") or {}).get("reasons", [])),
    }
    for table in ("Q0", "Q3"):
        for key in STAT_KEYS:
            row[f"{table}_{key}"] = summary["statistics"][table].get(key)
    row["seconds"] = summary["seconds"]["total"]
    return row


def _pooled_quality(finished: dict[str, dict]) -> dict:
    """The pooled row's verdict: the worst of its images', with how many images are not ok."""
    from srpsa.inference.quality import STATUSES  # ok < doubtful < failed
    status = [str((s.get("quality") or {}).get("status", "")) for s in finished.values()]
    known = [q for q in status if q in STATUSES]
    if not known:
        return {"quality": "", "quality_reasons": ""}
    worst = max(known, key=STATUSES.index)
    bad = sum(q != "ok" for q in known)
    return {"quality": worst, "quality_reasons": f"{bad} of {len(known)} images doubtful or failed" if bad else ""}


def _pooled_row(finished: dict[str, dict], out_root: Path) -> dict | None:
    """All particles of all finished images; ``count`` counts all, ``count_used`` those in statistics."""
    from srpsa.psd import size_statistics

    diam, units, n_all = [], set(), 0
    for name, summary in finished.items():
        table = pd.read_csv(out_root / name / "particles.csv")
        n_all += len(table)
        if not summary["settings"].get("include_edge", False):
            table = table[table["edge"] == 0]
        if summary["settings"].get("exclude_flagged") and "flag" in table:
            from srpsa.psd.shape import EXCLUDED_FLAGS

            table = table[~table["flag"].isin(EXCLUDED_FLAGS)]
        units.add(summary["unit"])
        scale = summary["pixel_size_um"] or 1.0
        diam.append(2.0 * table["r_px"].to_numpy() * scale)
    if not diam or len(units) != 1:
        return None  # pooling px with um would be meaningless
    d = np.concatenate(diam)
    row = {"image": "POOLED", "path": "", "count": n_all, "count_used": int(len(d)), "unit": units.pop(), **_pooled_quality(finished)}
    for table, weighting in (("Q0", "number"), ("Q3", "volume")):
        stats = size_statistics(d, weighting=weighting).to_dict()
        for key in STAT_KEYS:
            row[f"{table}_{key}"] = stats.get(key)
    return row


def finished_results(out_root: Path) -> dict[str, dict]:
    """Folder name -> summary for every finished result directly under ``out_root``."""
    found = {}
    for path in sorted(out_root.glob("*/summary.json")):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            if (path.parent / "particles.csv").is_file() and "statistics" in summary:
                found[path.parent.name] = summary
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable, left out of summary.csv (%s)", path, exc)
    return found


def _previous(path: Path, column: str) -> list[str]:
    try:
        return [str(v) for v in pd.read_csv(path, dtype=str, keep_default_na=False)[column]]
    except (OSError, ValueError, KeyError, pd.errors.ParserError):  # absent or damaged: rebuilt anyway
        return []


def _previous_errors(path: Path) -> list[dict]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        return table[["image", "error"]].to_dict("records")
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return []


def rebuild_batch_tables(out_root: Path, results: list[dict], names: list[str]) -> None:
    """Rewrite ``summary.csv`` and ``errors.csv`` of ``out_root`` (this run: ``results``/``names``)."""
    with FileLock(str(out_root / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
        finished = finished_results(out_root)
        order = [n for n in names if n in finished]
        order += [n for n in _previous(out_root / "summary.csv", "image") if n in finished and n not in order]
        order += [n for n in sorted(finished) if n not in order]
        finished = {n: finished[n] for n in order}
        rows = [_row(n, s) for n, s in finished.items()]
        pooled = _pooled_row(finished, out_root) if rows else None
        if pooled:
            rows.append(pooled)
        with atomic_open(out_root / "summary.csv", "w", newline="") as fh:
            pd.DataFrame(rows).to_csv(fh, index=False, float_format="%.5g")

        this_run = {r["path"] for r in results}
        done = {s["image"] for s in finished.values()}
        kept = [e for e in _previous_errors(out_root / "errors.csv")
                if e["image"] not in this_run and str(Path(e["image"]).resolve()) not in done]
        errors = kept + [{"image": r["path"], "error": r["error"]} for r in results if r["status"] == "error"]
        with atomic_open(out_root / "errors.csv", "w", newline="") as fh:
            pd.DataFrame(errors, columns=["image", "error"]).to_csv(fh, index=False)
