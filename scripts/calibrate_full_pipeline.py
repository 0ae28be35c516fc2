"""Fit the full pipeline's sizing calibration (``full-pipeline.json`` beside the weights).

The SEM detector's refinement was calibrated on simulator SEM images; the generators draw particle
edges a little differently, so sizes measured on enhanced images carry a bias of their own (+3-5 % radius
on simulator diagnostics). This script runs the shipped (or ``--weights``) translate -> super-resolve ->
SEM-detector chain, guided by the OM detector exactly as ``srpsa analyze --pipeline full`` does, on OM
images of the GANs' training distribution (``configs/synth/gan.toml``: the domain-randomised `train`
preset with 10-44 px particles; seeds far from the GAN training seeds; never the paper presets, the
held-out one or benchmark seeds),
matches the detections to the known circles and re-fits the refinement's bias terms
(:func:`srpsa.inference.refine.calibrate_bias`). The result records the sha256 of the four models; the
pipeline ignores it (with a warning) once any of them changes.

With ``--annotated DIR`` it uses a lab's own annotated OM images instead (the layout ``srpsa train
detect --data`` reads: images with a same-stem annotation file in any supported format); that is what
it is for. No calibration is shipped: on simulator images the chain's sizing bias depends on the
image style (median radius bias -11 % to +4 % across styles, docs/gans.md "Sizing calibration"), so one
simulator-fitted correction would not transfer. The simulator mode stays for experiments::

    python scripts/calibrate_full_pipeline.py --n 12 --seed 3100000
    python scripts/calibrate_full_pipeline.py --annotated my_annotated_om/ --weights my_weights/
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from srpsa.inference import weights as W
from srpsa.inference.detect import Detector
from srpsa.inference.enhance import EnhanceConfig, Enhancer
from srpsa.inference.full import CALIBRATION_FILE, FullPipeline, SizingCalibration
from srpsa.training.sizing_calibration import fit_sizing_calibration
from srpsa.io.atomic import atomic_write_text
from srpsa.synth import make_pair
from srpsa.synth.config import load_synth_config
from srpsa.training.detector_data import folder_pairs, folder_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None, help="weights root (default: the shipped weights)")
    ap.add_argument("--n", type=int, default=8, help="calibration images")
    ap.add_argument("--seed", type=int, default=3_100_000, help="first simulator seed")
    ap.add_argument("--synth-config", type=Path, default=Path("configs/synth/gan.toml"))
    ap.add_argument("--annotated", type=Path, default=None, help="folder of your own annotated OM images (replaces the simulator)")
    ap.add_argument("--flow", default="adaptive", choices=("adaptive", "paper"))
    args = ap.parse_args()

    t0 = time.time()
    root = W.weights_root(args.weights)
    dirs = {name: W.model_dir(name, root) for name in (W.TRANSLATOR, W.SUPERRES, W.DETECTOR_SEM, W.DETECTOR_OM)}
    pipe = FullPipeline(
        Enhancer.load(dirs[W.TRANSLATOR], dirs[W.SUPERRES], EnhanceConfig(flow=args.flow)),
        Detector.load(dirs[W.DETECTOR_SEM]),
        Detector.load(dirs[W.DETECTOR_OM]),
    )
    images = []
    if args.annotated is not None:
        images = [(s.image, s.circles) for s in folder_source(folder_pairs(args.annotated))]
        source = {"annotated": str(args.annotated), "command": f"python scripts/calibrate_full_pipeline.py --annotated {args.annotated}"}
    else:
        cfg = load_synth_config(args.synth_config)
        for i in range(args.n):
            pair = make_pair(cfg, args.seed + i)
            om = pair.om if pair.om.ndim == 2 else pair.om.mean(axis=2)
            images.append((om, pair.gt[["x_px", "y_px", "r_px"]].to_numpy(float)))
        source = {"command": f"python scripts/calibrate_full_pipeline.py --n {args.n} --seed {args.seed} --synth-config {args.synth_config}",
                  "synth_config": str(args.synth_config), "seeds": [args.seed, args.seed + args.n]}
    print(f"{len(images)} images, {sum(len(c) for _, c in images)} particles ({time.time() - t0:.0f} s)", flush=True)
    bias, report = fit_sizing_calibration(pipe, images, progress=lambda k, n: print(f"  image {k}/{n} ({time.time() - t0:.0f} s)", flush=True))
    cal = SizingCalibration(
        bias,
        # All four: the OM detector sets the working scale, which changes the edges the SEM detector sees.
        {name: W.weights_hash(dirs[name]) for name in (W.TRANSLATOR, W.SUPERRES, W.DETECTOR_SEM, W.DETECTOR_OM)},
        args.flow,
        {"report": report, "provenance": source},
    )
    atomic_write_text(root / CALIBRATION_FILE, json.dumps(cal.to_dict(), indent=1) + "\n")
    print(json.dumps({"bias": bias, "report": report}, indent=1))
    print(f"wrote {root / CALIBRATION_FILE} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
