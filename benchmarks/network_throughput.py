"""Throughput of each shipped network per engine and tile size: ms per call and GMAC/s.

    .venv/bin/python benchmarks/network_throughput.py [--seconds 1.5]

The tile sizes of the inference chain (docs/speed.md) were chosen from this table: ONNX Runtime's rate
depends on the tile (cache and threading), and a larger tile also wastes less on overlaps. Random input,
2 threads, median-free (mean over as many calls as fit in ``--seconds``) after one warm-up call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import macs_per_pixel  # noqa: E402

from srpsa.inference.backend import make_runner, module_hash  # noqa: E402
from srpsa.inference.weights import DETECTOR_SEM, SUPERRES, TRANSLATOR, model_dir  # noqa: E402
from srpsa.models.release import load_generator_release  # noqa: E402
from srpsa.training.checkpoint import load_weights  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    det, _, _ = load_weights(model_dir(DETECTOR_SEM))
    tr, _ = load_generator_release(model_dir(TRANSLATOR))
    sr, _ = load_generator_release(model_dir(SUPERRES))
    cache = Path(tempfile.mkdtemp(prefix="srpsa-onnx-"))
    print("| network | engine | tile | batch | kMAC / input px | ms / call | GMAC/s |\n|---|---|---:|---:|---:|---:|---:|")
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
                dt = (time.perf_counter() - t0) / n
                print(f"| {name} | {engine} | {s} | 1 | {mac / 1e3:.1f} | {dt * 1e3:.1f} | {mac * s * s / dt / 1e9:.1f} |", flush=True)


if __name__ == "__main__":
    main()
