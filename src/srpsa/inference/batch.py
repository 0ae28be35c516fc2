"""Run :func:`srpsa.inference.pipeline.analyze_image` over many images and write the batch tables.

Schedulers (existing engines only): in-process for one worker, a local process pool
(:class:`concurrent.futures.ProcessPoolExecutor`) by default, or a Dask cluster (``--scheduler ADDRESS``,
``--scheduler local`` starts a :class:`dask.distributed.LocalCluster`). Every path runs the same worker
function, so outputs are identical.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from srpsa.errors import InputError
from srpsa.inference import preflight, resume
from srpsa.inference.pipeline import AnalyzeSettings, is_done, output_names
from srpsa.inference.tables import STAT_KEYS, rebuild_batch_tables  # noqa: F401  (STAT_KEYS: public name)
from srpsa.inference.worker import init_worker, run_one

#: errors.csv message for an image whose worker process was killed (by the kernel's OOM killer, say).
WORKER_DIED = "worker process died while analysing this image (killed by the system, e.g. out of memory; try --workers 1)"


@dataclass
class BatchResult:
    results: list[dict]  # one per input, in input order; status ok | skipped | error

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r["status"] == "error"]


def _pool(workers: int) -> ProcessPoolExecutor:
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: forking a process that already runs torch/OpenMP threads can deadlock.
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=(threads, os.getpid()))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what has not started and terminate the workers that are running.

    ``shutdown`` alone waits for running images; Python < 3.14 has no public way to terminate the
    workers (3.14 adds ``terminate_workers``), so the executor's process table is read directly.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=10)


def _error(image: Path, message: str) -> dict:
    return {"path": str(image), "status": "error", "error": message, "summary": None}


def _run_local(jobs: list[tuple[Path, Path]], settings: AnalyzeSettings, workers: int) -> Iterator[dict]:
    if workers <= 1 or len(jobs) == 1:
        for image, out in jobs:
            yield run_one(image, out, settings)
        return
    # A worker killed from outside (OOM) breaks the whole pool and fails every unfinished future. The
    # unfinished images then run again in a fresh one-worker pool (less memory, and in submission
    # order, so when that pool breaks the image it was running is known): that image goes to
    # errors.csv and the rest carry on.
    pending = list(jobs)
    n = min(workers, len(jobs))
    while pending:
        pool = _pool(n)
        futures: dict[Future, tuple[Path, Path]] = {}
        broken = False
        try:
            futures = {pool.submit(run_one, image, out, settings): (image, out) for image, out in pending}
            for fut in as_completed(futures):
                if isinstance(fut.exception(), BrokenProcessPool):
                    broken = True
                    break
                pending.remove(futures[fut])
                yield fut.result()
        except BaseException:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt by the CLI), generator closed
            _stop(pool)
            raise
        if not broken:
            pool.shutdown()
            continue
        _stop(pool)
        for fut, job in futures.items():  # finished before the break, not yet reported
            if job in pending and fut.done() and not fut.cancelled() and fut.exception() is None:
                pending.remove(job)
                yield fut.result()
        if n == 1 and pending:
            image, _ = pending.pop(0)
            yield _error(image, WORKER_DIED)
        n = 1


def _run_dask(jobs: list[tuple[Path, Path]], settings: AnalyzeSettings, scheduler: str, workers: int) -> Iterator[dict]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError as exc:  # optional dependency
        raise InputError("--scheduler needs dask.distributed: pip install 'srpsa[dask]'") from exc
    cluster = None
    if scheduler == "local":
        # Dask's INFO lines (~40 per run) are not ours to show; and its HTTP server must not take the
        # public :8787 (dashboard_address=None alone still binds it): a random port on localhost.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1", scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise InputError(f"--scheduler: cannot connect to Dask scheduler '{scheduler}': {exc}") from exc
    try:
        futures = client.map(run_one, [str(i) for i, _ in jobs], [str(o) for _, o in jobs], settings=settings, pure=False)
        for fut in dask_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def prepare(out_root: Path, settings: AnalyzeSettings, scheduler: str | None = None) -> dict[str, str]:
    """The checks made once before any image (preflight.py); returns the model hashes."""
    preflight.check_scheduler(scheduler)
    preflight.check_out_folder(out_root)
    return preflight.check_models(settings)


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
    """Analyse ``images`` into ``out_root``; skip finished ones unless ``force``; write the batch tables.

    Finished results are reused only when made with the same settings and models (resume.py);
    otherwise :class:`InputError` is raised before any work.
    """
    hashes = prepare(out_root, settings, scheduler)
    names = output_names(images)
    by_path: dict[str, dict] = {}
    jobs: list[tuple[Path, Path]] = []
    found: dict[str, tuple[dict, str]] = {}
    for image, name in zip(images, names):
        out = out_root / name
        if not force and is_done(out):
            summary = json.loads((out / "summary.json").read_text())
            found[name] = (summary, str(image))
            by_path[str(image)] = {"path": str(image), "status": "skipped", "error": "", "summary": summary}
        else:
            jobs.append((image, out))
    resume.check_resumable(found, settings, hashes, str(out_root))
    total, done = len(images), 0
    for result in list(by_path.values()):
        done += 1
        if progress:
            progress(done, total, result)
    stream = _run_dask(jobs, settings, scheduler, workers) if scheduler else _run_local(jobs, settings, workers)
    try:
        for result in stream:
            by_path[result["path"]] = result
            done += 1
            if progress:
                progress(done, total, result)
    finally:
        stream.close()  # an interrupt stops the workers now, not when the generator is collected
    results = [by_path[str(p)] for p in images]
    write_batch_tables(results, out_root, names)
    return BatchResult(results)


def write_batch_tables(results: list[dict], out_root: Path, names: list[str]) -> None:
    """``summary.csv`` (every finished image in ``out_root`` + a pooled row) and ``errors.csv`` (tables.py)."""
    rebuild_batch_tables(out_root, results, names)
