"""Throughput of each shipped network per engine and tile size: ms per call and GMAC/s.

    .venv/bin/python benchmarks/network_throughput.py [--seconds 1.5] [--write]

How close each engine gets to the CPU's peak per tile size, for the tile choices of the inference chain
(docs/speed.md). Random input, 2 threads, the mean over as many calls as fit in ``--seconds`` after one
warm-up call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import replace_section  # noqa: E402
from speed import macs_per_pixel  # noqa: E402

from srpsa.inference.backend import make_runner, module_hash  # noqa: E402
from srpsa.inference.weights import DETECTOR_SEM, SUPERRES, TRANSLATOR, model_dir  # noqa: E402
from srpsa.models.release import load_generator_release  # noqa: E402
from srpsa.models.detector_release import load_weights  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--write", action="store_true", help="replace the network_throughput section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    det, _, _ = load_weights(model_dir(DETECTOR_SEM))
    tr, _ = load_generator_release(model_dir(TRANSLATOR))
    sr, _ = load_generator_release(model_dir(SUPERRES))
    cache = Path(tempfile.mkdtemp(prefix="srpsa-onnx-"))
    lines = [f"## Network throughput by engine and tile ({dt.date.today()})\n",
             f"`python benchmarks/network_throughput.py {' '.join(sys.argv[1:])}` ({platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, 2 threads; load average {os.getloadavg()[0]:.1f} before).\n",
             "| network | engine | tile | batch | kMAC / input px | ms / call | GMAC/s |", "|---|---|---:|---:|---:|---:|---:|"]
    print("\n".join(lines))
    for name, model, sizes in (("detector", det.eval(), (256, 512, 768, 1024)), ("translate", tr.eval(), (256, 512, 1024)), ("superres", sr.eval(), (96, 128, 192, 256))):
        mac = macs_per_pixel(model)
        runners = {"onnx": make_runner(model, "onnx", cache_dir=cache, weights_hash=module_hash(model), example_shape=(1, 1, 64, 64), name=name),
                   "torch": make_runner(model, "torch", cache_dir=None, weights_hash="", example_shape=(1, 1, 64, 64))}
        for s in sizes:
            x = np.random.default_rng(0).random((1, 1, s, s), dtype=np.float32)
            for engine, run in runners.items():
                run(x)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    run(x)
                    n += 1
                sec = (time.perf_counter() - t0) / n
                lines.append(f"| {name} | {engine} | {s} | 1 | {mac / 1e3:.1f} | {sec * 1e3:.1f} | {mac * s * s / sec / 1e9:.1f} |")
                print(lines[-1], flush=True)
    if args.write:
        replace_section("network_throughput", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
