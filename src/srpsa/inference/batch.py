"""Run :func:`srpsa.inference.pipeline.analyze_image` over many images and write the batch tables.

Schedulers (existing engines only): in-process for one worker, a local process pool
(:class:`concurrent.futures.ProcessPoolExecutor`) by default, or a Dask cluster (``--scheduler ADDRESS``,
``--scheduler local`` starts a :class:`dask.distributed.LocalCluster`). Every path runs the same worker
function, so outputs are identical.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.inference.pipeline import AnalyzeSettings, analyze_image_safe, is_done, output_names
from srpsa.io.atomic import atomic_open

STAT_KEYS = ("mean", "d10", "d50", "d90", "mode", "std", "cv", "span", "d32", "d43")


@dataclass
class BatchResult:
    results: list[dict]  # one per input, in input order; status ok | skipped | error

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r["status"] == "error"]


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_local(jobs: list[tuple[Path, Path]], settings: AnalyzeSettings, workers: int) -> Iterator[dict]:
    if workers <= 1 or len(jobs) == 1:
        for image, out in jobs:
            yield analyze_image_safe(image, out, settings)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: forking a process that already runs torch/OpenMP threads can deadlock.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(analyze_image_safe, image, out, settings) for image, out in jobs]
        for fut in as_completed(futures):
            yield fut.result()


def _run_dask(jobs: list[tuple[Path, Path]], settings: AnalyzeSettings, scheduler: str, workers: int) -> Iterator[dict]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError as exc:  # optional dependency
        raise InputError("--scheduler needs dask.distributed: pip install 'srpsa[dask]'") from exc
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot connect to Dask scheduler '{scheduler}': {exc}") from exc
    try:
        futures = client.map(analyze_image_safe, [str(i) for i, _ in jobs], [str(o) for _, o in jobs], settings=settings, pure=False)
        for fut in dask_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_batch(
    images: list[Path],
    out_root: Path,
    settings: AnalyzeSettings,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
) -> BatchResult:
    """Analyse ``images`` into ``out_root``; skip finished ones unless ``force``; write the batch tables."""
    out_root.mkdir(parents=True, exist_ok=True)
    names = output_names(images)
    by_path: dict[str, dict] = {}
    jobs: list[tuple[Path, Path]] = []
    for image, name in zip(images, names):
        out = out_root / name
        if not force and is_done(out):
            summary = json.loads((out / "summary.json").read_text())
            by_path[str(image)] = {"path": str(image), "status": "skipped", "error": "", "summary": summary}
        else:
            jobs.append((image, out))
    total, done = len(images), 0
    for result in list(by_path.values()):
        done += 1
        if progress:
            progress(done, total, result)
    stream = _run_dask(jobs, settings, scheduler, workers) if scheduler else _run_local(jobs, settings, workers)
    for result in stream:
        by_path[result["path"]] = result
        done += 1
        if progress:
            progress(done, total, result)
    results = [by_path[str(p)] for p in images]
    write_batch_tables(results, out_root, names)
    return BatchResult(results)


def _row(name: str, summary: dict) -> dict:
    row = {
        "image": name,
        "path": summary["image"],
        "count": summary["count"],
        "count_used": summary["count_used"],
        "unit": summary["unit"],
        "pixel_size_um": summary["pixel_size_um"],
        "pixel_size_source": summary["pixel_size_source"],
    }
    for table in ("Q0", "Q3"):
        for key in STAT_KEYS:
            row[f"{table}_{key}"] = summary["statistics"][table].get(key)
    row["seconds"] = summary["seconds"]["total"]
    return row


def _pooled_row(results: list[dict], names: list[str], out_root: Path, include_edge: bool) -> dict | None:
    from srpsa.psd import size_statistics

    diam, units = [], set()
    for result, name in zip(results, names):
        if result["status"] == "error":
            continue
        table = pd.read_csv(out_root / name / "particles.csv")
        if not include_edge:
            table = table[table["edge"] == 0]
        summary = result["summary"]
        units.add(summary["unit"])
        scale = summary["pixel_size_um"] or 1.0
        diam.append(2.0 * table["r_px"].to_numpy() * scale)
    if not diam or len(units) != 1:
        return None  # pooling px with um would be meaningless
    d = np.concatenate(diam)
    row = {"image": "POOLED", "path": "", "count": int(len(d)), "count_used": int(len(d)), "unit": units.pop()}
    for table, weighting in (("Q0", "number"), ("Q3", "volume")):
        stats = size_statistics(d, weighting=weighting).to_dict()
        for key in STAT_KEYS:
            row[f"{table}_{key}"] = stats.get(key)
    return row


def write_batch_tables(results: list[dict], out_root: Path, names: list[str]) -> None:
    """``summary.csv`` (one row per image + a pooled row) and ``errors.csv`` (inputs that failed)."""
    rows = [_row(name, r["summary"]) for r, name in zip(results, names) if r["status"] != "error"]
    ok_results = [r for r in results if r["status"] != "error"]
    include_edge = bool(ok_results and ok_results[0]["summary"]["settings"]["include_edge"])
    pooled = _pooled_row(results, names, out_root, include_edge) if rows else None
    if pooled:
        rows.append(pooled)
    with atomic_open(out_root / "summary.csv", "w", newline="") as fh:
        pd.DataFrame(rows).to_csv(fh, index=False, float_format="%.5g")
    errors = [{"image": r["path"], "error": r["error"]} for r in results if r["status"] == "error"]
    with atomic_open(out_root / "errors.csv", "w", newline="") as fh:
        pd.DataFrame(errors, columns=["image", "error"]).to_csv(fh, index=False)
