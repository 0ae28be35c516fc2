"""Shared grid-search machinery for the classical baselines (Hough, watershed).

A baseline is a function ``detect(image, params) -> (circles, scores)`` and a frozen params dataclass.
:func:`grid_search` scores every candidate by the **pooled F1** over the tuning images (the same matching
rule as :mod:`srpsa.evaluation`), in a seeded random order so that a run cut short by its time budget
has still sampled the whole grid evenly rather than one corner of it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR, as_circles
from srpsa.evaluation.metrics import DetectionMetrics, aggregate, evaluate_image
from srpsa.io.atomic import atomic_write_text

P = TypeVar("P")
DetectFn = Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray]]


def check_training_set(images: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate tuning inputs: same number of 2-D images and circle arrays, at least one GT circle."""
    images = [np.asarray(im, dtype=np.float32) for im in images]
    gts = [as_circles(g, "ground-truth circles") for g in gts]
    if not images:
        raise InputError("tuning needs at least one image with ground-truth circles")
    if len(images) != len(gts):
        raise InputError(f"tuning got {len(images)} images but {len(gts)} ground-truth circle sets")
    for im in images:
        if im.ndim != 2:
            raise InputError(f"tuning images must be 2-D gray arrays, got shape {im.shape}")
    if sum(len(g) for g in gts) == 0:
        raise InputError("tuning needs ground-truth circles; all given sets are empty")
    return images, gts


def radius_range(gts: Iterable[np.ndarray]) -> tuple[float, float, float]:
    """``(low, median, high)`` of the ground-truth radii: the 1st, 50th and 99th percentiles."""
    r = np.concatenate([np.asarray(g, dtype=np.float64).reshape(-1, 3)[:, 2] for g in gts])
    lo, med, hi = np.percentile(r, [1, 50, 99])
    return float(lo), float(med), float(hi)


def score(
    detect: DetectFn,
    params: Any,
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    *,
    match_factor: float = DEFAULT_MATCH_FACTOR,
) -> DetectionMetrics:
    """Pooled detection metrics of ``detect(., params)`` over the images."""
    evals = [evaluate_image(g, detect(im, params)[0], match_factor=match_factor) for im, g in zip(images, gts)]
    return aggregate(evals)


def grid_search(
    detect: DetectFn,
    candidates: Sequence[P],
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    *,
    stage: str,
    match_factor: float = DEFAULT_MATCH_FACTOR,
    n_jobs: int = 1,
    deadline: float | None = None,
    max_candidate_s: float | None = None,
    seed: int = 0,
) -> list[dict]:
    """Score candidates until done or until ``time.perf_counter()`` passes ``deadline``.

    A candidate is scored image by image; it is abandoned (``status`` "too slow", ``f1`` NaN) once it
    has spent more than ``max_candidate_s`` and images remain, or when the deadline passes. OpenCV calls
    cannot be interrupted, so the overshoot is bounded by one detector call per worker, not zero; the
    guard exists because some Hough settings take minutes on a large, edge-rich image.

    Returns one row per tried candidate: the params' fields plus ``f1, precision, recall, tp, fp, fn,
    radius_median_abs_rel_error, seconds, stage, status`` (``"ok"``, ``"too slow"``, ``"out of time"``).
    """
    order = np.random.default_rng(seed).permutation(len(candidates))
    todo = [candidates[i] for i in order]

    def run(p: P) -> dict:
        t0 = time.perf_counter()
        evals, status = [], "ok"
        for k, (im, g) in enumerate(zip(images, gts)):
            if k:
                now = time.perf_counter()
                if max_candidate_s is not None and now - t0 > max_candidate_s:
                    status = "too slow"
                    break
                if deadline is not None and now > deadline:
                    status = "out of time"
                    break
            evals.append(evaluate_image(g, detect(im, p)[0], match_factor=match_factor))
        m = aggregate(evals)
        ok = status == "ok"
        return {
            **dataclasses.asdict(p),
            "f1": m.f1 if ok else float("nan"),
            "precision": m.precision if ok else float("nan"),
            "recall": m.recall if ok else float("nan"),
            "tp": m.tp,
            "fp": m.fp,
            "fn": m.fn,
            "radius_median_abs_rel_error": m.radius_median_abs_rel_error if ok else None,
            "seconds": time.perf_counter() - t0,
            "stage": stage,
            "status": status,
        }

    rows: list[dict] = []
    # Small batches keep the deadline check frequent; the coarse stage always scores its first batch,
    # so a search returns a result on any budget.
    batch = max(1, n_jobs)
    pool = ThreadPoolExecutor(max_workers=n_jobs) if n_jobs > 1 else None
    try:
        for start in range(0, len(todo), batch):
            if deadline is not None and time.perf_counter() > deadline and (rows or stage != "coarse"):
                break
            chunk = todo[start : start + batch]
            rows.extend(pool.map(run, chunk) if pool else map(run, chunk))
    finally:
        if pool:
            pool.shutdown()
    return rows


def rank(rows: list[dict]) -> pd.DataFrame:
    """Results as a DataFrame, best first: highest F1, then smallest radius error, then scoring order.

    Timing is deliberately not a tie-breaker: it would make the choice differ between runs.
    """
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    err = df["radius_median_abs_rel_error"].astype(float).fillna(np.inf)
    # Abandoned candidates (f1 NaN) sort last and are never chosen.
    df = df.assign(_err=err).sort_values(["f1", "_err"], ascending=[False, True], kind="stable", na_position="last")
    return df.drop(columns="_err").reset_index(drop=True)


def best_params(cls: type[P], table: pd.DataFrame) -> P:
    """The params dataclass of the top row of a :func:`rank` table."""
    if table.empty or not np.isfinite(table["f1"].iloc[0]):
        raise InputError("grid search scored no candidate to the end (raise the time budget)")
    row = table.iloc[0]
    return cls(**{f.name: _plain(row[f.name]) for f in dataclasses.fields(cls)})


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def expand(grid: Mapping[str, Sequence[Any]], base: Mapping[str, Any]) -> list[dict]:
    """Cartesian product of ``grid`` values, each merged over ``base``, duplicates removed."""
    keys = list(grid)
    combos: list[dict] = [dict(base)]
    for k in keys:
        combos = [{**c, k: v} for c in combos for v in grid[k]]
    seen, out = set(), []
    for c in combos:
        key = tuple(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def save_params(path: str | Path, params: Any) -> None:
    """Write a params dataclass as JSON (with its class name, to catch loading the wrong kind)."""
    payload = {"kind": type(params).__name__, "params": dataclasses.asdict(params)}
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def load_params(path: str | Path, cls: type[P]) -> P:
    """Read params written by :func:`save_params`; unknown keys or the wrong kind raise InputError."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such parameter file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON parameter file ({exc})") from None
    if not isinstance(payload, dict) or "params" not in payload:
        raise InputError(f"{path}: expected a JSON object with 'kind' and 'params'")
    if payload.get("kind") != cls.__name__:
        raise InputError(f"{path}: holds {payload.get('kind')!r} parameters, expected {cls.__name__}")
    values = payload["params"]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{path}: unknown {cls.__name__} keys: {', '.join(unknown)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: invalid {cls.__name__}: {exc}") from None
