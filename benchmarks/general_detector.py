"""The generalist detector (configs/detector/general.toml) beside the shipped OM detector, both run
directly on the input image (`--pipeline detect-only` path: `guided_detect`), on data neither saw:
ISO TR 19672 disks, AMPIS SEM powder (hand-traced), trackpy bright-field latex (known size) and the
simulator's held-out preset. Prints one markdown table; `--json` keeps the numbers.

    python benchmarks/general_detector.py --general runs/det-general/weights [--iso 10 15 30 55 90]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from srpsa.evaluation import aggregate, evaluate_image
from srpsa.inference.detect import Detector
from srpsa.inference.guide import guided_detect
from srpsa.inference.weights import DETECTOR_OM, model_dir
from srpsa.io import read_image
from srpsa.io.annotations import read_circle_sets

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from detection import interior  # noqa: E402

TRACKPY_UM_PER_PX, TRACKPY_D_UM = 0.15192873, 2.12


def run(det: Detector, img: np.ndarray) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    c, _, _ = guided_detect(det, img)
    return c, time.perf_counter() - t


def score(gt: np.ndarray, pred: np.ndarray, shape, secs: float) -> dict:
    e = aggregate([evaluate_image(gt, pred, image_shape=shape, ignore_border=True)])
    g, p = interior(gt, shape), interior(pred, shape)
    mean_err = float(np.mean(p[:, 2]) / np.mean(g[:, 2]) - 1) if len(p) and len(g) else float("nan")
    return {"f1": e.f1, "precision": e.precision, "recall": e.recall, "mean_err": mean_err, "s": secs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--general", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "real")
    ap.add_argument("--iso", type=float, nargs="*", default=[10, 15, 30, 55, 90])
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--heldout", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    dets = {"shipped OM detector": Detector.load(model_dir(DETECTOR_OM), backend="onnx"), "general": Detector.load(a.general, backend="onnx")}
    rows: dict[str, dict[str, dict]] = {}

    def add(setname: str, name: str, res: dict) -> None:
        rows.setdefault(setname, {})[name] = res
        print(f"{setname:28s} {name:20s} " + " ".join(f"{k} {v:.3f}" for k, v in res.items()), flush=True)

    for size in a.iso:
        stem = f"monodisperse_n100_{size:g}px"
        img = read_image(a.data / "iso_tr19672" / f"{stem}.png").data
        gt = np.loadtxt(a.data / "iso_tr19672" / f"{stem}.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2))
        for name, det in dets.items():
            c, s = run(det, img)
            add(f"ISO {size:g} px", name, score(gt, c, img.shape, s))
    sets = read_circle_sets(a.data / "ampis_powder_sem" / "annotations" / "via_powder_particle_masks_training.json")
    for name, det in dets.items():
        evals, t = [], 0.0
        for fname, gt in sets.items():
            img = read_image(a.data / "ampis_powder_sem" / "images" / fname).data
            c, s = run(det, img)
            t += s
            evals.append(score(gt, c, img.shape, s))
        add("AMPIS SEM (4 images)", name, {k: float(np.mean([e[k] for e in evals])) for k in evals[0]})
    frames = sorted((a.data / "trackpy_brightfield" / "brightfield").glob("*.png"))[: a.frames]
    for name, det in dets.items():
        d, t = [], 0.0
        for f in frames:
            img = read_image(f).data
            c, s = run(det, img)
            t += s
            d.append(2 * interior(c, img.shape)[:, 2] * TRACKPY_UM_PER_PX)
        d = np.concatenate(d)
        add("trackpy latex 2.12 um", name, {"n": float(len(d)), "mean_err": float(d.mean() / TRACKPY_D_UM - 1) if len(d) else float("nan"),
                                             "cv": float(d.std() / d.mean()) if len(d) else float("nan"), "s": t / len(frames)})
    if a.heldout:
        from srpsa.synth.config import preset
        from srpsa.synth.pair import make_pair

        for pname in ("heldout", "primary"):
            for name, det in dets.items():
                evals = []
                for k in range(a.heldout):
                    pair = make_pair(preset(pname), 900_000 + k)
                    gt = pair.gt[["x_px", "y_px", "r_px"]].to_numpy()
                    img = pair.om.mean(axis=2) if pair.om.ndim == 3 else pair.om
                    c, s = run(det, img)
                    evals.append(score(gt, c, img.shape, s))
                add(f"simulator {pname}", name, {k: float(np.mean([e[k] for e in evals])) for k in evals[0]})
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
