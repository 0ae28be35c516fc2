"""srpsa's shipped (simulator-trained) defaults on real third-party microscope images.

    python benchmarks/real_images.py [--data ../shared/data/real] [--weights DIR] [--write]

- AMPIS SEM powder (4 hand-labelled images, 1122 outlines; Cohn et al. 2021, MIT): SEM detector
  precision / recall / F1 (one-to-one matching, centre distance <= 0.5 r_gt, border-cut particles ignored
  on both sides) and the errors of the interior particles' mean / D50 / CV of the equivalent diameter.
  Ground-truth circles: centroid and equal-area radius of each traced polygon (`srpsa.io`, VIA reader).
- trackpy bright-field frames (latex spheres, nominal 2.12 um at 0.15192873 um/px; trackpy-examples,
  BSD-3/CC-BY): mean and median diameter vs the nominal size, CV, detections per frame, for the full
  pipeline exactly as `srpsa analyze --pipeline full` runs it by default (OM-detector size guide ->
  translate -> SEM detector; `--sr model` adds the ESRGAN stage) and the OM detector alone.
- Polymer beads (eyepiece photos, monodisperse, about 2.63 um/px as stated by the source, unverified;
  MIT): count, mean diameter and CV for both pipelines, plus figures of the translation and the
  detections (`docs/img/real_*.png`).

With ``--write`` the markdown replaces the ``real_images`` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from srpsa.evaluation import aggregate, evaluate_image
import srpsa
from srpsa.inference import defaults
from srpsa.inference.detect import Detector
from srpsa.inference.full import FullPipeline
from srpsa.io import read_image
from srpsa.io.annotations import read_circle_sets
from srpsa.psd import size_statistics

from detection import interior  # benchmarks/ is on sys.path when run as a script
from results_md import replace_section

ROOT = Path(__file__).resolve().parent
DOCS_IMG = ROOT.parent / "docs" / "img"
TRACKPY_UM_PER_PX, TRACKPY_NOMINAL_UM = 0.15192873, 2.12
BEADS_UM_PER_PX = 1000.0 / 380.0


def stats(d: np.ndarray) -> dict:
    if len(d) < 2:
        return {"n": int(len(d)), "mean": float("nan"), "d50": float("nan"), "cv": float("nan")}
    s = size_statistics(d)
    return {"n": int(len(d)), "mean": s.mean, "d50": s.d50, "cv": s.cv}


def full_detect(pipe: FullPipeline, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    res = pipe.detect(image, return_image=True)
    assert res.image is not None
    return res.circles, res.image, res.info["enhance"]


def ampis(data: Path, det_sem: Detector) -> dict:
    sets = read_circle_sets(data / "ampis_powder_sem" / "annotations" / "via_powder_particle_masks_training.json")
    evals, gt_d, pr_d = [], [], []
    t0 = time.perf_counter()
    for name, gt in sets.items():
        img = read_image(data / "ampis_powder_sem" / "images" / name).data
        pred = det_sem.detect(img).circles
        evals.append(evaluate_image(gt, pred, image_shape=img.shape, ignore_border=True, name=name))
        gt_d.append(2 * interior(gt, img.shape)[:, 2])
        pr_d.append(2 * interior(pred, img.shape)[:, 2])
    m = aggregate(evals)
    g, p = stats(np.concatenate(gt_d)), stats(np.concatenate(pr_d))
    return {"images": len(sets), "n_gt": g["n"], "n_pred": p["n"], "precision": m.precision, "recall": m.recall, "f1": m.f1,
            "radius_err_pct": None if m.radius_median_abs_rel_error is None else 100 * m.radius_median_abs_rel_error,
            "mean_err_pct": 100 * (p["mean"] / g["mean"] - 1), "d50_err_pct": 100 * (p["d50"] / g["d50"] - 1),
            "cv_gt": g["cv"], "cv_pred": p["cv"], "seconds": time.perf_counter() - t0}  # fmt: skip


def trackpy(data: Path, pipe: FullPipeline, det_om: Detector, n_frames: int) -> dict:
    frames = sorted((data / "trackpy_brightfield" / "brightfield").glob("bf_*.png"))[:n_frames]
    out = {}
    for label, fn in (("full", lambda im: full_detect(pipe, im)[0]), ("detect-only", lambda im: det_om.detect(im)[0])):
        d, counts = [], []
        t0 = time.perf_counter()
        for f in frames:
            img = read_image(f).data
            c = interior(fn(img), img.shape)
            counts.append(len(c))
            d.append(2 * c[:, 2] * TRACKPY_UM_PER_PX)
        s = stats(np.concatenate(d))
        med = float(np.median(np.concatenate(d))) if s["n"] else float("nan")
        out[label] = {"frames": len(frames), "per_frame": float(np.mean(counts)), **s, "median": med,
                      "mean_err_pct": 100 * (s["mean"] / TRACKPY_NOMINAL_UM - 1), "median_err_pct": 100 * (med / TRACKPY_NOMINAL_UM - 1),
                      "seconds_per_frame": (time.perf_counter() - t0) / len(frames)}  # fmt: skip
    return out


def beads(data: Path, pipe: FullPipeline, det_om: Detector, n_images: int, figure_path: Path | None) -> dict:
    files = sorted((data / "polymer_beads_om" / "monodisperse").glob("*.JPG"))[:n_images]
    out: dict = {"full": [], "detect-only": []}
    for k, f in enumerate(files):
        loaded = read_image(f)
        img = loaded.data
        circ_full, sem_like, plan = full_detect(pipe, img)
        circ_om = det_om.detect(img).circles
        for label, c in (("full", circ_full), ("detect-only", circ_om)):
            ci = interior(c, img.shape)
            out[label].append({"image": f.name, **stats(2 * ci[:, 2] * BEADS_UM_PER_PX), "plan": plan if label == "full" else None})
        if k == 0 and figure_path is not None:
            figure(loaded.rgb if loaded.rgb is not None else img, sem_like, plan["output_scale"], circ_full, circ_om, figure_path)
    return out


def figure(om: np.ndarray, sem_like: np.ndarray, scale: float, c_full: np.ndarray, c_om: np.ndarray, path: Path) -> None:
    """OM crop | SEM-like crop | detections (full pipeline green, OM detector red) on the OM crop."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    h, w = om.shape[:2]
    y0, x0, s = h // 2 - 200, w // 2 - 200, 400
    crop = om[y0:y0 + s, x0:x0 + s]
    sy0, sx0, ss = int(round(y0 * scale)), int(round(x0 * scale)), int(round(s * scale))
    fig = Figure(figsize=(12, 4.2), dpi=110)
    axes = fig.subplots(1, 3)
    axes[0].imshow(crop, cmap="gray" if crop.ndim == 2 else None)
    axes[0].set_title("OM input (crop)")
    axes[1].imshow(sem_like[sy0:sy0 + ss, sx0:sx0 + ss], cmap="gray")
    axes[1].set_title(f"SEM-like (x{scale:.3g})")
    axes[2].imshow(crop, cmap="gray" if crop.ndim == 2 else None)
    for c, col in ((c_om, "red"), (c_full, "lime")):
        for x, y, r in c:
            if x0 <= x < x0 + s and y0 <= y < y0 + s:
                axes[2].add_patch(Circle((x - x0, y - y0), r, fill=False, color=col, linewidth=0.9))
    axes[2].set_title("full pipeline (green) / OM detector (red)")
    for a in axes:
        a.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def render(res: dict, meta: dict) -> str:
    a, t, b = res["ampis"], res["trackpy"], res["beads"]
    lines = [f"## Real images with the shipped defaults ({meta['date']})\n",
             f"Command: `{meta['command']}` ({meta['seconds']:.0f} s). Raw numbers: `benchmarks/real_images.json`.\n\n",
             "| data | pipeline | result |\n|---|---|---|\n",
             f"| AMPIS SEM powder, {a['images']} labelled images, {a['n_gt']} interior particles | SEM detector | "
             f"P {a['precision']:.3f}, R {a['recall']:.3f}, F1 {a['f1']:.3f}; median radius error {a['radius_err_pct']:.1f} %; "
             f"mean diameter {a['mean_err_pct']:+.1f} %, D50 {a['d50_err_pct']:+.1f} %, CV {a['cv_pred']:.1f} % (GT {a['cv_gt']:.1f} %) |\n"]  # fmt: skip
    for label in ("full", "detect-only"):
        r = t[label]
        lines.append(f"| trackpy bright-field, {r['frames']} frames, nominal {TRACKPY_NOMINAL_UM} um | {label} | "
                     f"{r['per_frame']:.1f} particles/frame; mean {r['mean']:.3f} um ({r['mean_err_pct']:+.1f} %), median {r['median']:.3f} um "
                     f"({r['median_err_pct']:+.1f} %), CV {r['cv']:.1f} %; {r['seconds_per_frame']:.1f} s/frame |\n")  # fmt: skip
    for label in ("full", "detect-only"):
        rows = b[label]
        txt = "; ".join(f"{r['image']}: n {r['n']}, mean {r['mean']:.0f} um, CV {r['cv']:.1f} %" for r in rows)
        lines.append(f"| polymer beads OM (monodisperse, 2.63 um/px unverified) | {label} | {txt} |\n")
    lines.append("\nFigure: `docs/img/real_polymer_beads.png` (OM crop, SEM-like translation, detections).\n")
    return "".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "real")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--beads", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--weights", type=Path, default=None, help="weights root (default: the shipped weights)")
    ap.add_argument("--sr", choices=("none", "model"), default=defaults.ENHANCE_SR, help="the full pipeline's SR stage")
    ap.add_argument("--json", type=Path, default=ROOT / "real_images.json")
    args = ap.parse_args()
    t0 = time.time()
    # The models `srpsa analyze --pipeline full --sr SR --backend torch` runs (public API, loaded once).
    pipe = srpsa.Analyzer(pipeline="full", weights=args.weights, backend="torch", enhance_sr=args.sr).full_pipeline
    det_sem, det_om = pipe.sem_detector, pipe.om_detector
    res = {"ampis": ampis(args.data, det_sem)}
    print(json.dumps(res["ampis"]), flush=True)
    res["trackpy"] = trackpy(args.data, pipe, det_om, args.frames)
    print(json.dumps(res["trackpy"]), flush=True)
    res["beads"] = beads(args.data, pipe, det_om, args.beads, DOCS_IMG / "real_polymer_beads.png" if args.write else None)
    cmd = "python benchmarks/real_images.py" + "".join(f" {a}" for a in sys.argv[1:])
    meta = {"date": time.strftime("%Y-%m-%d"), "command": cmd, "seconds": time.time() - t0, "sr": args.sr}
    args.json.write_text(json.dumps({"meta": meta, **res}, indent=1, default=float) + "\n")
    md = render(res, meta)
    print(md)
    if args.write:
        replace_section("real_images", md)


if __name__ == "__main__":
    main()
