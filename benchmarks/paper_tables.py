"""The paper's Tables 1-6 and Fig. 9, reproduced on fresh simulator test sets, srpsa beside its peers.

    python benchmarks/paper_tables.py [--n 2] [--size 512 768] [--tune-budget 40]
        [--translate NAME=DIR ...] [--yolo-weights runs/yolo/weights/best.pt] [--write]

Test images: ``--n`` per preset (primary, secondary, tertiary: the paper's size distributions; heldout:
other optics and a bimodal distribution, never used in training), seeds 900000+ (the seeds of
``benchmarks/detection.py``, so both scripts see the same OM images). None of them is used for training
or tuning: the peers are tuned on separate images of the same preset (seeds 800000+).

- Tables 1/2 analogue (image quality): SSIM, PSNR, density and coverage (prdc, k = 5, random embedder)
  of each translate config chained with the shipped super-resolver against the simulator's SEM image of
  the same field (resampled to the enhanced image's grid), and of the bicubic-upsampled OM image.
- Tables 3-5 analogue: mean, D50, mode, StDev, CV of the number-weighted diameter distribution (um) of the
  interior particles, ground truth vs every method, with errors.
- Table 6 analogue: GT count, predicted count, % detected, plus precision / recall / F1 (one-to-one
  matching, centre distance <= 0.5 r_gt; border-cut particles ignored on both sides).
- Fig. 9 analogue: ISJ KDE of GT vs each method per preset, ``benchmarks/img/kde_<preset>.png``.

Methods: srpsa full pipeline (OM -> translate -> SR -> SEM detector) with the adaptive and the paper's
working scales, the CLI's default full pipeline (OM -> translate -> SEM detector, no SR), srpsa OM detector without SR (detect-only), OpenCV Hough and a watershed (ImageJ
"Analyze Particles" style) grid-searched in-domain, and YOLO when ``--yolo-weights`` is given (it runs in
its own environment, ``make bench-yolo``, see docs/yolo.md). With ``--write`` the markdown replaces the
section between the ``paper_tables`` markers in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from srpsa.baselines.hough import hough_detect, tune_hough
from srpsa.errors import InputError
from srpsa.baselines.watershed import tune_watershed, watershed_detect
from srpsa.evaluation import aggregate, evaluate_image
from srpsa.evaluation.compare import compare_size_distributions, to_markdown
from srpsa.evaluation.image_quality import image_quality
from srpsa.inference.detect import Detector
from srpsa.inference.enhance import EnhanceConfig, Enhancer
from srpsa.inference.full import CALIBRATION_FILE, FullPipeline, load_calibration
from srpsa.inference.pipeline import AnalyzeSettings
from srpsa.inference.weights import DETECTOR_OM, DETECTOR_SEM, SUPERRES, TRANSLATOR, model_dir, weights_hash, weights_root
from srpsa.report.figures import plot_kde_comparison
from srpsa.synth import make_pair, preset

from detection import interior  # benchmarks/ is on sys.path when run as a script
from results_md import replace_section

PRESETS = ("primary", "secondary", "tertiary", "heldout")
TEST_SEED, TUNE_SEED = 900_000, 800_000
ROOT = Path(__file__).resolve().parent


@dataclass
class TestImage:
    preset: str
    seed: int
    om: np.ndarray  # float32 gray in [0, 1], OM grid
    sem: np.ndarray  # float32 gray in [0, 1], aligned SEM (sem_scale x finer)
    gt: np.ndarray  # (N, 3) circles in OM px
    pixel_size_um: float


def make_test(name: str, seed: int, size: tuple[int, int]) -> TestImage:
    cfg = preset(name)
    cfg = replace(cfg, height=size[0], width=size[1], fiducials=replace(cfg.fiducials, count=0))
    cfg = replace(cfg, misregistration=replace(cfg.misregistration, enabled=False))
    pair = make_pair(cfg, seed)
    om = pair.om if pair.om.ndim == 2 else pair.om.mean(axis=2)
    gt = pair.gt[["x_px", "y_px", "r_px"]].to_numpy(float)
    return TestImage(name, seed, om.astype(np.float32), pair.sem.astype(np.float32), gt, pair.pixel_size_om_um)


@dataclass
class MethodResult:
    preds: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    enhanced: list[np.ndarray] = field(default_factory=list)  # full pipeline only: SEM-like images


def run_full(pipe: FullPipeline, images: list[TestImage], keep: bool, uncalibrated: MethodResult | None = None) -> MethodResult:
    """The full pipeline as `srpsa analyze --pipeline full` runs it (OM-detector guide, sizing calibration
    when the pipeline has one); ``uncalibrated`` collects the same detections with the SEM detector's own
    refinement bias."""
    res = MethodResult()
    for t in images:
        t0 = time.perf_counter()
        out = pipe.detect(t.om, return_image=keep, return_uncalibrated=uncalibrated is not None)
        res.preds.append(out.circles)
        res.seconds += time.perf_counter() - t0
        if keep:
            res.enhanced.append(out.image)
        if uncalibrated is not None:
            uncalibrated.preds.append(out.uncalibrated)
    if uncalibrated is not None:
        uncalibrated.seconds = res.seconds
    return res


def run_simple(fn, images: list[TestImage]) -> MethodResult:
    res = MethodResult()
    for t in images:
        t0 = time.perf_counter()
        res.preds.append(np.asarray(fn(t.om), float).reshape(-1, 3))
        res.seconds += time.perf_counter() - t0
    return res


def run_yolo(weights: Path, images: list[TestImage]) -> MethodResult:
    """YOLO runs in its own environment (AGPL, torchvision): write PNGs, call its predict, read CSVs."""
    py = ROOT.parent / ".venv-yolo" / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"--yolo-weights needs the YOLO environment {py} (make bench-yolo)")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "images", Path(tmp) / "pred"
        src.mkdir()
        for i, t in enumerate(images):
            cv2.imwrite(str(src / f"img{i:03d}.png"), np.clip(np.rint(t.om * 255), 0, 255).astype(np.uint8))
        t0 = time.perf_counter()
        subprocess.run([str(py), str(ROOT / "yolo_baseline.py"), "predict", "--weights", str(weights), "--images", str(src), "--out", str(dst)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        seconds = time.perf_counter() - t0
        preds = []
        for i in range(len(images)):
            df = pd.read_csv(dst / f"img{i:03d}.csv")
            preds.append(df[["x_px", "y_px", "r_px"]].to_numpy(float) if len(df) else np.zeros((0, 3)))
    return MethodResult(preds=preds, seconds=seconds)


def detection_row(method: str, res: MethodResult, images: list[TestImage]) -> dict:
    shape = images[0].om.shape
    m = aggregate([evaluate_image(t.gt, p, image_shape=shape, ignore_border=True) for t, p in zip(images, res.preds)])
    return {
        "method": method,
        "n_gt": int(sum(len(interior(t.gt, shape)) for t in images)),
        "n_pred": int(sum(len(interior(p, shape)) for p in res.preds)),
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "percent_detected": m.percent_detected,
        "radius_err_pct": None if m.radius_median_abs_rel_error is None else 100 * m.radius_median_abs_rel_error,
        "s_per_image": res.seconds / len(images),
    }


def diameters_um(circles_list: list[np.ndarray], images: list[TestImage]) -> np.ndarray:
    shape = images[0].om.shape
    return np.concatenate([2 * interior(c, shape)[:, 2] * t.pixel_size_um for c, t in zip(circles_list, images)] + [np.zeros(0)])


def quality_row(config: str, preds: list[np.ndarray], images: list[TestImage], seed: int) -> dict:
    # Target: the simulator's SEM of the same field on the generated image's grid (area-averaged).
    targets = [cv2.resize(t.sem, (p.shape[1], p.shape[0]), interpolation=cv2.INTER_AREA) for t, p in zip(images, preds)]
    try:
        q = image_quality(preds, targets, patch=64, nearest_k=5, seed=seed)
    except InputError:  # small outputs (the paper flow at 0.5x) hold too few 64 px crops for k = 5
        q = image_quality(preds, targets, patch=32, nearest_k=5, seed=seed)
    return {"config": config, "ssim": q["ssim"], "psnr": q["psnr"], "density": q["density"], "coverage": q["coverage"],
            "n_patches": q.get("n_real"), "embedder": q.get("embedder")}  # fmt: skip


def parse_translate(items: list[str]) -> dict[str, Path]:
    out = {}
    for it in items:
        name, _, path = it.partition("=")
        if not path:
            raise SystemExit(f"--translate needs NAME=DIR, got {it!r}")
        out[name] = Path(path)
    return out


def fmt_rows(rows: list[dict], cols: list[str], digits: int = 3) -> str:
    def f(v):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(f(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2, help="test images per preset")
    ap.add_argument("--size", type=int, nargs=2, default=(512, 768), metavar=("H", "W"))
    ap.add_argument("--tune-budget", type=float, default=40.0, help="seconds per peer grid search")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--translate", action="append", default=[], metavar="NAME=DIR",
                    help="extra translate weights for the Tables 1/2 ablation (chained with the shipped SR)")
    ap.add_argument("--yolo-weights", type=Path, default=None)
    ap.add_argument("--no-peers", action="store_true", help="skip Hough and watershed (quick runs)")
    ap.add_argument("--out", type=Path, default=ROOT / "paper_tables.json")
    ap.add_argument("--write", action="store_true", help="replace the paper_tables section of benchmarks/RESULTS.md")
    args = ap.parse_args()
    t_start = time.time()

    det_sem, det_om = Detector.load(model_dir(DETECTOR_SEM)), Detector.load(model_dir(DETECTOR_OM))
    sr_dir = model_dir(SUPERRES)
    shipped = "shipped translator"
    translators = {shipped: model_dir(TRANSLATOR), **parse_translate(args.translate)}
    # The sizing calibration belongs to the shipped models; ablation translators and the paper flow run
    # without one (the pipeline refuses a calibration fitted on other weights).
    cal = load_calibration(weights_root() / CALIBRATION_FILE)
    hashes = {n: weights_hash(model_dir(n)) for n in (TRANSLATOR, SUPERRES, DETECTOR_SEM, DETECTOR_OM)}
    why = cal.mismatch(hashes, "adaptive") if cal is not None else None
    if why:
        raise SystemExit(f"{CALIBRATION_FILE}: {why}; re-run scripts/calibrate_full_pipeline.py")
    pipes = {name: FullPipeline(Enhancer.load(d, sr_dir, EnhanceConfig()), det_sem, det_om, calibration=cal if name == shipped else None)
             for name, d in translators.items()}
    paper_flow = FullPipeline(Enhancer.load(translators[shipped], sr_dir, EnhanceConfig(flow="paper")), det_sem, det_om)
    # What `srpsa analyze --pipeline full` runs without options (no SR stage since session 4, docs/decisions.md).
    cli_default = FullPipeline(Enhancer.load(translators[shipped], sr_dir, EnhanceConfig(sr_mode=AnalyzeSettings().enhance_sr)), det_sem, det_om)

    det_rows, qual_rows, stat_tables, counts = [], [], {}, {}
    img_dir = ROOT / "img"
    img_dir.mkdir(exist_ok=True)
    for name in args.presets:
        images = [make_test(name, TEST_SEED + i, tuple(args.size)) for i in range(args.n)]
        print(f"[{time.time() - t_start:.0f} s] {name}: {sum(len(t.gt) for t in images)} GT particles", flush=True)
        results: dict[str, MethodResult] = {}
        for cname, pipe in pipes.items():
            label = "srpsa full" if cname == shipped else f"srpsa full, translate={cname}"
            uncal = MethodResult() if cname == shipped and cal is not None else None
            results[label] = run_full(pipe, images, keep=True, uncalibrated=uncal)
            if uncal is not None:
                results["srpsa full, no sizing calibration"] = uncal
        results["srpsa full, paper flow"] = run_full(paper_flow, images, keep=True)
        results["srpsa full, CLI default (no SR stage)"] = run_full(cli_default, images, keep=False)
        results["srpsa detect-only (OM, no SR)"] = run_simple(lambda im: det_om.detect(im)[0], images)
        if not args.no_peers:
            tune = [make_test(name, TUNE_SEED + i, tuple(args.size)) for i in range(2)]
            hp, _ = tune_hough([t.om for t in tune], [t.gt for t in tune], time_budget_s=args.tune_budget)
            results["Hough (tuned in-domain)"] = run_simple(lambda im: hough_detect(im, hp)[0], images)
            wp, _ = tune_watershed([t.om for t in tune], [t.gt for t in tune], time_budget_s=args.tune_budget)
            results["watershed (tuned in-domain)"] = run_simple(lambda im: watershed_detect(im, wp)[0], images)
        if args.yolo_weights:
            results["YOLO (from scratch, same training preset)"] = run_yolo(args.yolo_weights, images)
        print(f"[{time.time() - t_start:.0f} s] {name}: methods done", flush=True)

        for method, res in results.items():
            row = detection_row(method, res, images) | {"preset": name}
            det_rows.append(row)
            print(json.dumps(row), flush=True)
        gt_d = diameters_um([t.gt for t in images], images)
        preds_d = {m: diameters_um(r.preds, images) for m, r in results.items()}
        stat_tables[name] = compare_size_distributions(gt_d, preds_d)
        counts[name] = {m: (len(gt_d), len(d)) for m, d in preds_d.items()}
        plot_kde_comparison({"GT": gt_d, **preds_d}, img_dir / f"kde_{name}.png", unit="um", title=f"{name}: GT vs methods (ISJ KDE, Q0)")

        # Tables 1/2: image quality of every enhanced image set, and bicubic OM as the floor.
        ref = results["srpsa full"].enhanced
        bicubic = [cv2.resize(t.om, (e.shape[1], e.shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1) for t, e in zip(images, ref)]
        qual_rows.append(quality_row("bicubic OM", bicubic, images, 0) | {"preset": name})
        for method, res in results.items():
            if res.enhanced:
                qual_rows.append(quality_row(method, res.enhanced, images, 0) | {"preset": name})
        print(f"[{time.time() - t_start:.0f} s] {name}: image quality done", flush=True)

    meta = {"date": time.strftime("%Y-%m-%d"), "command": "python " + " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(), "seconds": round(time.time() - t_start, 1), "n": args.n, "size": list(args.size)}  # fmt: skip
    args.out.write_text(json.dumps({"meta": meta, "detection": det_rows, "quality": qual_rows}, indent=1, default=float) + "\n")
    md = render(meta, det_rows, qual_rows, stat_tables)
    print(md)
    if args.write:
        replace_section("paper_tables", md)


def render(meta: dict, det_rows: list[dict], qual_rows: list[dict], stat_tables: dict[str, pd.DataFrame]) -> str:
    parts = [f"## Paper tables on simulator test sets ({meta['date']})\n",
             f"Command: `{meta['command']}` ({meta['seconds']:.0f} s on this machine; {meta['n']} images of "
             f"{meta['size'][0]}x{meta['size'][1]} OM px per preset, seeds 900000+; raw rows in `benchmarks/paper_tables.json`).\n",
             "### Tables 1/2 analogue: image quality of the SEM-like images (vs the simulator's SEM of the same field)\n",
             fmt_rows(qual_rows, ["preset", "config", "ssim", "psnr", "density", "coverage"]),
             "\n### Table 6 analogue: counts and correctness (interior particles; one-to-one matching)\n",
             fmt_rows(det_rows, ["preset", "method", "n_gt", "n_pred", "percent_detected", "precision", "recall", "f1", "radius_err_pct", "s_per_image"]),
             "\n### Tables 3-5 analogue: number-weighted diameter statistics (um), GT vs each method\n"]  # fmt: skip
    for name, table in stat_tables.items():
        keep = [c for c in table.columns if not c.endswith(" diff")]
        parts.append(f"\n**{name}** (Fig. 9 analogue: [KDE plot](img/kde_{name}.png))\n\n")
        parts.append(to_markdown(table[keep].T.rename_axis("method"), digits=2))
    # Combined Table 6 row per method
    comb: dict[str, list[int]] = {}
    for r in det_rows:
        c = comb.setdefault(r["method"], [0, 0])
        c[0] += r["n_gt"]
        c[1] += r["n_pred"]
    parts.append("\n**Combined (all presets)**: " + "; ".join(f"{m}: {100 * p / max(g, 1):.1f} % detected" for m, (g, p) in comb.items()) + "\n")
    return "".join(parts)


if __name__ == "__main__":
    main()
