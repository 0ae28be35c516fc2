"""Per-stage speed and memory of `srpsa analyze` on one 4752x3168 image, torch vs onnx backend.

    .venv/bin/python benchmarks/speed.py [--repeats 3] [--backends torch onnx] [--diameter-range MIN MAX] [--write]

Test image: ``examples/om_example.tif`` (1024x768, simulated bright-field OM, 0.4 um/px, ~23 px particles)
enlarged uniformly x4.64 (bicubic) to 4752 px wide and cropped to 3168 rows, the paper's camera format.
Its particles are then ~107 px across (~56-186 px), the middle of the 8-300 px users see; the TIFF carries
the matching calibration (0.4 / 4.64 um/px). The simulator is not used: at this size it would also render
the 2x-larger paired SEM image, minutes of work for an image the benchmark throws away.

What is measured, each backend in a fresh process (so peak memory and thread pools are its own):

- *stages*: :meth:`srpsa.Analyzer.analyze` + :meth:`srpsa.Result.save`, what `srpsa analyze` runs per
  image (defaults of ``srpsa analyze --pipeline detect-only``: automatic scales, refinement, 1000
  bootstrap resamples, overlay + PSD plots); it is given a stage timer (``timer=``) that also labels a
  memory sampler, and the methods of the analyzer's detector instance are
  wrapped to split *detect* into size estimate, per pyramid scale (resize + network + decode), merge/NMS,
  refinement. Model loading (incl. the ONNX Runtime session, export already cached) is timed apart.
  Peak RSS per stage: the largest resident set sampled every 10 ms while the stage ran (psutil), i.e.
  the whole process including the image and model, not the stage's increment.
- *compute floor*: multiply-accumulates of the detector's convolutions per network-input pixel (counted
  with forward hooks on a 64x64 probe; exact for sizes that are multiples of 4) times the pixels the
  tiles actually fed to the network (overlaps included), divided by 65 GMAC/s, the best ONNX Runtime rate
  measured on this 2-core AVX2 CPU. GroupNorm/ReLU/max-pool are memory-bound and not counted.
- *whole process*: wall time of ``python -m srpsa analyze IMG --out DIR --pipeline detect-only
  [--backend B]`` from a shell, median of ``--repeats``; until the CLI has ``--backend`` the onnx run
  goes through the pipeline API in a fresh interpreter instead (the table says which).

Weights are a copy of the shipped ones in a temporary folder (``--weights``), so the ONNX export never
lands in the package. The machine may be shared with other jobs: the load average is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "om_example.tif"
SIZE = (3168, 4752)  # rows, columns: the paper's OM camera
ORT_PEAK_GMACS = 65.0  # best ONNX Runtime rate measured on this CPU (docs/speed.md)


# -- test image and weights -------------------------------------------------------------------------


def make_image(path: Path, size: tuple[int, int] = SIZE) -> dict[str, Any]:
    """Write the enlarged example (8-bit ImageJ TIFF with calibration); returns its description."""
    import cv2
    import tifffile

    from srpsa.io import read_image

    src = read_image(EXAMPLE)
    factor = size[1] / src.data.shape[1]
    rows = round(src.data.shape[0] * factor)
    if rows < size[0]:
        raise SystemExit(f"--size {size}: the example enlarged x{factor:.3f} has only {rows} rows")
    big = cv2.resize(src.data, (size[1], rows), interpolation=cv2.INTER_CUBIC)[: size[0]]
    px = src.pixel_size_um / factor
    tifffile.imwrite(path, np.clip(np.rint(big * 255), 0, 255).astype(np.uint8), imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": "um"})
    return {"source": EXAMPLE.name, "factor": factor, "shape": list(size), "pixel_size_um": px}


def copy_weights(dest: Path) -> Path:
    from srpsa.inference.weights import PACKAGE_WEIGHTS

    shutil.copytree(PACKAGE_WEIGHTS, dest, ignore=shutil.ignore_patterns("*.onnx", "detector.*.json", "generator.*.json"))
    return dest


# -- memory sampling and stage labels ---------------------------------------------------------------


class RssSampler:
    """Samples the process RSS in a thread; every label on the stack gets the peak seen while it is open.

    Heavy numpy/OpenCV/torch/ORT calls release the GIL, so the thread keeps sampling during them.
    """

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stack: list[str] = []
        self._lock = threading.Lock()
        self.peak: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss
        with self._lock:
            for label in self._stack:
                self.peak[label] = max(self.peak.get(label, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        with self._lock:
            self._stack.append(label)
        self._sample()  # short stages still get one sample
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._sample()
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
            self.cpu_seconds[label] = self.cpu_seconds.get(label, 0.0) + time.process_time() - c0
            with self._lock:
                self._stack.remove(label)


def macs_per_pixel(model: Any, probe: int = 64) -> float:
    """Conv (and transposed-conv) multiply-accumulates per network-input pixel, counted with forward
    hooks on a ``probe`` x ``probe`` input with the first convolution's channel count."""
    import torch

    total = 0
    convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)

    def hook(mod: Any, inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, torch.nn.ConvTranspose2d):  # every input pixel scatters into out_channels x k
            total += inp[0].numel() * (mod.out_channels // mod.groups) * k
        else:
            total += out.numel() * (mod.in_channels // mod.groups) * k

    modules = [m for m in model.modules() if isinstance(m, convs)]
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, modules[0].in_channels, probe, probe))
    finally:
        for h in handles:
            h.remove()
    return total / probe**2


def instrument(det: Any, sampler: RssSampler) -> dict[str, dict[str, float]]:
    """Wrap the detector's steps (instance attributes shadow the methods); returns the per-scale record."""
    import srpsa.inference.detect as detect_mod

    per_scale: dict[str, dict[str, float]] = {}
    current: list[str] = []
    runner, scale_fn, resolve, merge = det.runner, det._scale_detections, det.plan_scales, det.merge
    refine = detect_mod.refine_circles

    def timed_runner(x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = runner(x)
        rec = per_scale[current[-1]]
        rec["network_s"] += time.perf_counter() - t0
        rec["tile_px"] += x.shape[0] * x.shape[2] * x.shape[3]
        return out

    def timed_scale(img: np.ndarray, s: float, stats: Any) -> Any:
        key = f"{s:.4g}"
        h, w = img.shape
        per_scale[key] = {"scale": s, "height": max(1, round(h * s)), "width": max(1, round(w * s)), "network_s": 0.0, "tile_px": 0}
        current.append(key)
        try:
            with sampler.stage(f"scale {key}"):
                return scale_fn(img, s, stats)
        finally:
            current.pop()

    def timed(label: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with sampler.stage(label):
                return fn(*args, **kwargs)

        return call

    det.runner = timed_runner
    det._scale_detections = timed_scale
    det.plan_scales = timed("size estimate", resolve)
    det.merge = timed("merge/NMS", merge)
    detect_mod.refine_circles = timed("refine", refine)
    return per_scale


# -- one backend, in-process (run in a child process) -----------------------------------------------


def worker(backend: str, image: Path, weights: Path, out: Path, diameter_range: tuple[float, float] | None) -> dict[str, Any]:
    """Run Analyzer.analyze + Result.save once with every stage timed; returns a JSON-able record."""
    import srpsa
    from srpsa.inference.pipeline import StageTimer

    with RssSampler() as sampler:

        class LabelledTimer(StageTimer):
            def __call__(self, name: str) -> Any:
                inner = super().__call__(name)

                @contextlib.contextmanager
                def both() -> Iterator[None]:
                    with sampler.stage(name), inner:
                        yield

                return both()

        with sampler.stage("model load"):
            analyzer = srpsa.Analyzer(pipeline="detect-only", weights=weights, backend=backend, diameter_range=diameter_range)
        det = analyzer.detector
        per_scale = instrument(det, sampler)
        t0 = time.perf_counter()
        result = analyzer.analyze(image, timer=LabelledTimer())
        with sampler.stage("write"):
            result.save(out)
        total = time.perf_counter() - t0
        summary = result.summary
    mpp = macs_per_pixel(det.model)
    return {
        "backend": backend,
        "seconds": sampler.seconds,
        "cpu_seconds": sampler.cpu_seconds,
        "peak_rss": sampler.peak,
        "analyze_total_s": total,
        "per_scale": per_scale,
        "macs_per_px": mpp,
        "count": summary["count"],
        "scales": summary["detect"].get("scales"),
        "detect_info": {k: v for k, v in summary["detect"].items() if k != "scales"},
        "threads": _threads(),
    }


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def run_worker(backend: str, image: Path, weights: Path, out: Path, diameter_range: tuple[float, float] | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", backend, "--image", str(image), "--weights", str(weights), "--out", str(out)]
    if diameter_range:
        cmd += ["--diameter-range", *map(str, diameter_range)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"worker {backend} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- whole process ----------------------------------------------------------------------------------

_API_SCRIPT = """
import json, sys
import srpsa
image, out, weights, backend, dr = sys.argv[1:6]
dr = json.loads(dr)
srpsa.Analyzer(pipeline="detect-only", weights=weights, backend=backend, diameter_range=tuple(dr) if dr else None).analyze(image).save(out)
"""


def cli_has_backend() -> bool:
    proc = subprocess.run([sys.executable, "-m", "srpsa", "analyze", "--help"], capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "200"})
    return "--backend" in proc.stdout


def whole_process(
    backend: str, image: Path, weights: Path, work: Path, repeats: int, use_cli: bool, diameter_range: tuple[float, float] | None
) -> dict[str, Any]:
    """Median wall time of a fresh process analysing the image (a new --out each time: no resume skip)."""
    times, cpu = [], []
    for i in range(repeats):
        out = work / f"cli-{backend}-{i}"
        if use_cli:
            cmd = [sys.executable, "-m", "srpsa", "analyze", str(image), "--out", str(out), "--pipeline", "detect-only",
                   "--weights", str(weights), "--backend", backend]
            cmd += ["--diameter-range", *map(str, diameter_range)] if diameter_range else []
        else:
            cmd = [sys.executable, "-c", _API_SCRIPT, str(image), str(out), str(weights), backend, json.dumps(diameter_range)]
        t0, c0 = time.perf_counter(), _children_cpu()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - c0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr[-3000:]}")
    return {"median_s": statistics.median(times), "runs": times, "median_cpu_s": statistics.median(cpu),
            "via": "CLI --backend" if use_cli else "pipeline API (no --backend yet)"}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- report -----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    import onnxruntime
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "date": dt.datetime.now().astimezone().isoformat(timespec="minutes")}


def _mib(n: int | None) -> str:
    return f"{n / 2**20:.0f}" if n else "-"


def _s(x: float | None) -> str:
    return f"{x:.2f}" if x is not None else "-"


def render(meta: dict[str, Any], runs: dict[str, dict[str, Any]], whole: dict[str, dict[str, Any]]) -> str:
    backends = list(runs)
    first = runs[backends[0]]
    lines = [
        "# Speed: `srpsa analyze` on one 4752x3168 image",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores; Python {meta['machine']['python']}, "
        f"torch {meta['machine']['torch']}, onnxruntime {meta['machine']['onnxruntime']}; {meta['machine']['date']}.  ",
        f"Shared machine: load average {meta['load_before']:.1f} before, {meta['load_after']:.1f} after "
        "(other jobs were running: absolute times are pessimistic, compare the backends within this run).  ",
        f"Image: `{meta['image']['source']}` enlarged x{meta['image']['factor']:.3f} (bicubic) and cropped to "
        f"{meta['image']['shape'][1]}x{meta['image']['shape'][0]} px, {meta['image']['pixel_size_um']:.4f} um/px; "
        f"{first['count']} particles found. Pyramid scales (automatic): {', '.join(f'{s:.3g}' for s in first['scales'])}"
        + (f"; --diameter-range {meta['diameter_range'][0]:g} {meta['diameter_range'][1]:g} px." if meta["diameter_range"] else "."),
        "",
        "## Stages (one run per backend, each in a fresh process)",
        "",
        "Wall s = elapsed; CPU s = process CPU time (user + system, all threads): less affected by other jobs, but "
        "includes threads spin-waiting for work.",
        "",
        "| stage | " + " | ".join(f"{b} wall s | {b} CPU s | {b} peak RSS MiB" for b in backends) + " |",
        "| --- | " + " | ".join("---: | ---: | ---:" for _ in backends) + " |",
    ]
    for label, key in _stage_rows(first):
        cells = []
        for b in backends:
            r = runs[b]
            cells += [_s(r["seconds"].get(key)), _s(r["cpu_seconds"].get(key)), _mib(r["peak_rss"].get(key))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    total = [f"**{runs[b]['analyze_total_s'] + runs[b]['seconds']['model load']:.2f}** | | {_mib(max(runs[b]['peak_rss'].values()))}" for b in backends]
    lines.append("| **total (model load + analyze_image)** | " + " | ".join(total) + " |")
    lines += ["", "## Network time vs compute floor", "",
              f"Detector: {first['macs_per_px'] / 1e3:.1f} kMAC per network-input pixel. Floor = conv MACs of the tiles run / "
              f"{ORT_PEAK_GMACS:g} GMAC/s.", "",
              "| scale | network input | tiles fed (Mpx) | GMAC | floor s | " + " | ".join(f"{b} network s | {b} GMAC/s" for b in backends) + " |",
              "| --- | --- | ---: | ---: | ---: | " + " | ".join("---: | ---:" for _ in backends) + " |"]
    sums = {b: 0.0 for b in backends}
    gmac_total = 0.0
    for key, rec in first["per_scale"].items():
        gmac = rec["tile_px"] * first["macs_per_px"] / 1e9
        gmac_total += gmac
        cells = []
        for b in backends:
            net = runs[b]["per_scale"].get(key, {}).get("network_s")
            sums[b] += net or 0.0
            cells += [_s(net), f"{gmac / net:.1f}" if net else "-"]
        lines.append(f"| {rec['scale']:.3g} | {rec['width']}x{rec['height']} | {rec['tile_px'] / 1e6:.1f} | {gmac:.0f} | "
                     f"{gmac / ORT_PEAK_GMACS:.2f} | " + " | ".join(cells) + " |")
    lines.append(f"| **all** | | | **{gmac_total:.0f}** | **{gmac_total / ORT_PEAK_GMACS:.2f}** | "
                 + " | ".join(f"**{sums[b]:.2f}** | {gmac_total / sums[b]:.1f}" for b in backends) + " |")
    if whole:
        lines += ["", f"## Whole process, median of {meta['repeats']} (`python -m srpsa analyze IMG --out DIR --pipeline detect-only --backend B`)", "",
                  "| backend | median wall s | runs wall s | median CPU s | via |", "| --- | ---: | --- | ---: | --- |"]
        for b, w in whole.items():
            lines.append(f"| {b} | {w['median_s']:.2f} | {', '.join(f'{t:.1f}' for t in w['runs'])} | {w['median_cpu_s']:.1f} | {w['via']} |")
    lines += ["", f"Threads: {first['threads']} (torch intra-op; ONNX Runtime uses the same number)."]
    return "\n".join(lines) + "\n"


def _stage_rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("model load (incl. ORT session)", "model load"), ("load image", "load"), ("detect", "detect"),
            ("&nbsp;&nbsp;size estimate", "size estimate")]
    rows += [(f"&nbsp;&nbsp;scale {k}: resize + network + decode", f"scale {k}") for k in run["per_scale"]]
    rows += [("&nbsp;&nbsp;merge/NMS", "merge/NMS"), ("&nbsp;&nbsp;refine", "refine"), ("statistics (1000 bootstrap)", "statistics"),
             ("write (csv, overlay.png, psd.png)", "write")]
    return rows


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    ap.add_argument("--repeats", type=int, default=3, help="whole-process runs per backend (median); 0 skips them")
    ap.add_argument("--diameter-range", nargs=2, type=float, default=None, metavar=("MIN", "MAX"))
    ap.add_argument("--size", nargs=2, type=int, default=list(SIZE), metavar=("ROWS", "COLS"), help="test image size (for a quick trial)")
    ap.add_argument("--write", action="store_true", help="also write benchmarks/speed.md")
    # Internal: one backend in this process, JSON on the last stdout line.
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    dr = tuple(args.diameter_range) if args.diameter_range else None

    if args.worker:
        print(json.dumps(worker(args.worker, args.image, args.weights, args.out, dr)))
        return

    with tempfile.TemporaryDirectory(prefix="srpsa-speed-") as tmp:
        work = Path(tmp)
        image = work / "om_4752x3168.tif"
        meta = {"command": "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv), "machine": machine(),
                "image": make_image(image, tuple(args.size)), "diameter_range": dr, "repeats": args.repeats, "load_before": os.getloadavg()[0]}
        weights = copy_weights(work / "weights")
        if "onnx" in args.backends:  # export once up front: the runs below measure the cached case
            from srpsa.inference.detect import Detector

            Detector.load(weights / "detector-om", backend="onnx")
        runs = {b: run_worker(b, image, weights, work / f"stages-{b}", dr) for b in args.backends}
        use_cli = cli_has_backend()
        whole = {b: whole_process(b, image, weights, work, args.repeats, use_cli, dr) for b in args.backends} if args.repeats else {}
        meta["load_after"] = os.getloadavg()[0]
    text = render(meta, runs, whole)
    sys.stdout.write(text)
    if args.write:
        (ROOT / "benchmarks" / "speed.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
