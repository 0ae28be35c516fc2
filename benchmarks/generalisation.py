"""Generalisation benchmark (issue 13): srpsa on images it did not make, beside classical peers.

    python benchmarks/generalisation.py [--quick] [--write] [--work runs/generalisation]

Test data (never used for training, tuning or thresholds):
- render2 (benchmarks/render2, an independent renderer with a wave-optical model), every style,
  held-out seeds >= 900,000,000;
- the real sets in ../shared/data/real: AMPIS SEM powder (hand-traced outlines), trackpy bright-field
  latex (nominal 2.12 um only), ISO TR 19672 disks (exact), polymer beads (labels checked by hand,
  benchmarks/labels/polymer_beads).
Methods: the default `srpsa analyze` (full pipeline, --sr none), `--pipeline detect-only`, the paper's
chain (`--sr model`, not in --quick), and OpenCV Hough and watershed tuned on the TRAINING distribution
(srpsa.synth preset `train`, seeds 29,000,000+; params cached in benchmarks/generalisation_baselines.json),
never on a test image. Electron images (render2 sem/tem, AMPIS) run with --modality sem, where srpsa has
one path (the SEM detector), so only `default` is reported for them.
Metrics per set/style (pooled over its images; border-cut particles ignored on both sides): P, R, F1,
mean-diameter error of the interior particles, median |radius error| and median signed radius error (bias)
of matched pairs, seconds per image, and how many images the self-check (summary quality) flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generalisation_sets import (  # noqa: E402
    Case, ampis_cases, bead_cases, ideal_cases, restrict_to_roi, iso_cases, render2_cases, trackpy_cases)
from render2 import STYLES  # noqa: E402

from srpsa.evaluation import aggregate, evaluate_image  # noqa: E402
from srpsa.evaluation.matching import match_circles  # noqa: E402
from srpsa.psd.particles import edge_flags  # noqa: E402

BASELINES_JSON = ROOT / "generalisation_baselines.json"
TUNE_SEED = 29_000_000  # inside the training range (< 30,000,000): the training distribution
SRPSA_METHODS = {"default": {}, "detect-only": {"pipeline": "detect-only"}, "paper": {"enhance_sr": "model"}}


def run_srpsa(path: Path, modality: str, **overrides) -> tuple[np.ndarray, dict]:
    """The ONE call of srpsa's pipeline: the public API, as a user would call it (models are cached per
    process, so one call per image does not reload them)."""
    import srpsa

    result = srpsa.analyze(path, modality=modality, bootstrap=0, **overrides)
    return result.particles[["x_px", "y_px", "r_px"]].to_numpy(float).reshape(-1, 3), result.summary


def _quality(summary: dict, path: Path, circles: np.ndarray) -> tuple[str | None, str]:
    """The self-check's verdict: summary.json's ``quality`` when the pipeline writes one; otherwise
    srpsa.inference.quality.assess run here on the pipeline's circles (source says which)."""
    q = summary.get("quality")
    if q is not None:
        return (q.get("status") if isinstance(q, dict) else q), "summary"
    from srpsa.inference.quality import assess
    from srpsa.io import read_image

    info = {**(summary.get("enhance") or {}), **(summary.get("detect") or {})}
    return assess(read_image(path).data, circles, info).status, "assess"


def tuned_baselines(budget: float, retune: bool) -> dict:
    """Hough and watershed params per modality, tuned on srpsa.synth preset `train` (cached)."""
    from srpsa.baselines import HoughParams, WatershedParams, tune_hough, tune_watershed

    cache = json.loads(BASELINES_JSON.read_text()) if BASELINES_JSON.exists() and not retune else {}
    if not cache:
        from detection import make_image  # benchmarks/detection.py: simulator image + truth per domain

        for domain in ("om", "sem"):
            imgs = [make_image("train", TUNE_SEED + k, (512, 512), domain) for k in range(4)]
            ims, gts = [i[0] for i in imgs], [i[1] for i in imgs]
            hp, _ = tune_hough(ims, gts, time_budget_s=budget)
            wp, _ = tune_watershed(ims, gts, time_budget_s=budget)
            cache[domain] = {"hough": hp.__dict__, "watershed": wp.__dict__}
        cache["note"] = f"tuned by benchmarks/generalisation.py on srpsa.synth preset train, seeds {TUNE_SEED}..{TUNE_SEED + 3}, 512x512, budget {budget:g} s each"
        from srpsa.io.atomic import atomic_write_text

        atomic_write_text(BASELINES_JSON, json.dumps(cache, indent=1) + "\n")
    return {m: {"hough": HoughParams(**cache[m]["hough"]), "watershed": WatershedParams(**cache[m]["watershed"])} for m in ("om", "sem")}


def run_method(method: str, case: Case, baselines: dict) -> tuple[np.ndarray, float, str | None, list[str]]:
    t0 = time.perf_counter()
    if method in SRPSA_METHODS:
        circles, summary = run_srpsa(case.path, case.modality, **SRPSA_METHODS[method])
        secs = time.perf_counter() - t0
        quality, source = _quality(summary, case.path, circles)
        return circles, secs, quality, list(summary.get("warnings", [])) + [f"quality from {source}"]
    from srpsa.baselines import hough_detect, watershed_detect
    from srpsa.io import read_image

    img = read_image(case.path).data.astype(np.float32)
    fn = hough_detect if method == "hough" else watershed_detect
    circles, _ = fn(img, baselines[case.modality][method])
    return np.asarray(circles, float).reshape(-1, 3), time.perf_counter() - t0, None, []


def score_set(records: list[dict]) -> dict:
    """Pool one (set, method)'s images into the table's numbers."""
    out: dict = {"images": len(records), "seconds_per_image": float(np.mean([r["seconds"] for r in records])),
                 "flagged": sum(r["quality"] in ("doubtful", "failed") for r in records),
                 "quality_known": sum(r["quality"] is not None for r in records)}  # fmt: skip
    pred_d = np.concatenate([r["pred_d"] for r in records])
    if records[0]["gt"] is None:  # nominal size only
        nom = records[0]["nominal_d_px"]
        out.update(n_pred=int(len(pred_d)), mean_err_pct=100 * (pred_d.mean() / nom - 1) if len(pred_d) else float("nan"),
                   cv_pct=100 * pred_d.std(ddof=1) / pred_d.mean() if len(pred_d) > 1 else float("nan"))  # fmt: skip
        return out
    m = aggregate([r["eval"] for r in records])
    gt_d = np.concatenate([r["gt_d"] for r in records])
    rel = np.concatenate([r["rel"] for r in records])
    out.update(n_gt=m.n_gt, n_pred=m.n_pred, precision=m.precision, recall=m.recall, f1=m.f1,
               mean_err_pct=100 * (pred_d.mean() / gt_d.mean() - 1) if len(pred_d) and len(gt_d) else float("nan"),
               radius_abs_err_pct=100 * float(np.median(np.abs(rel))) if len(rel) else float("nan"),
               radius_bias_pct=100 * float(np.median(rel)) if len(rel) else float("nan"))  # fmt: skip
    return out


def evaluate(case: Case, circles: np.ndarray, shape: tuple[int, int]) -> dict:
    if case.roi is not None and case.gt is not None:
        gt_roi, circles = restrict_to_roi(case.gt, circles, case.roi)
        case = replace(case, gt=gt_roi)
    interior = circles[~edge_flags(circles, shape)] if len(circles) else circles
    rec: dict = {"gt": None if case.gt is None else True, "nominal_d_px": case.nominal_d_px, "pred_d": 2 * interior[:, 2]}
    if case.gt is not None:
        g = case.gt
        rec["eval"] = evaluate_image(g, circles, image_shape=shape, ignore_border=True, name=case.path.name)
        rec["gt_d"] = 2 * g[~edge_flags(g, shape), 2] if len(g) else np.zeros(0)
        mr = match_circles(g, circles)
        rec["rel"] = circles[mr.pred_idx, 2] / g[mr.gt_idx, 2] - 1 if mr.n_matched else np.zeros(0)
        e = rec["eval"]
        rec["f1"] = 2 * e.tp / (2 * e.tp + e.fp + e.fn) if (e.tp + e.fp + e.fn) else 1.0
        ref = rec["gt_d"]
    else:
        rec["f1"], ref = None, np.array([case.nominal_d_px])
    d = rec["pred_d"]
    rec["mean_err_pct"] = 100 * (d.mean() / ref.mean() - 1) if len(d) and len(ref) else float("nan")
    return rec


SETS = ("render2", "ideal", "ampis", "trackpy", "iso", "beads")


def build_cases(a: argparse.Namespace) -> list[Case]:
    q, cases = a.quick, []
    if "render2" in a.sets:
        cases += render2_cases(a.work, 1 if q else a.n, 384 if q else a.size, a.styles)
    if "ideal" in a.sets:
        cases += ideal_cases(a.work, [10, 40] if q else [7, 10, 20, 40, 90])
    if "ampis" in a.sets:
        cases += ampis_cases(a.data, 1 if q else 4)
    if "trackpy" in a.sets:
        cases += trackpy_cases(a.data, 2 if q else a.frames)
    if "iso" in a.sets:
        cases += iso_cases(a.data, [10, 30, 90] if q else [7, 10, 15, 30, 55, 90], 512 if q else a.iso_crop, a.work)
    if "beads" in a.sets:
        cases += bead_cases(a.data, 1 if q else 99)
    return cases


def render_md(results: dict, meta: dict) -> str:
    from generalisation_md import table

    return table(results, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sanity run: 1 small image per style and per real set, no paper chain")
    ap.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data" / "real")
    ap.add_argument("--work", type=Path, default=ROOT.parent / "runs" / "generalisation")
    ap.add_argument("--styles", nargs="*", default=list(STYLES))
    ap.add_argument("--n", type=int, default=3, help="render2 images per style")
    ap.add_argument("--size", type=int, default=768, help="render2 image side, px")
    ap.add_argument("--frames", type=int, default=10, help="trackpy frames")
    ap.add_argument("--iso-crop", type=int, default=1024, help="centre window of the 2048 px ISO frames")
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    ap.add_argument("--merge", action="store_true", help="keep the other sets' results already in --json")
    ap.add_argument("--methods", nargs="*", default=None, help="default detect-only paper hough watershed")
    ap.add_argument("--tune-budget", type=float, default=120.0, help="seconds per baseline tuning (cached)")
    ap.add_argument("--retune", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "generalisation.json")
    ap.add_argument("--write", action="store_true", help="replace the generalisation section of benchmarks/RESULTS.md")
    a = ap.parse_args()
    bad = [s for s in a.styles if s not in STYLES]
    if bad:
        sys.exit(f"error: --styles: unknown style '{bad[0]}'")
    methods = a.methods or (["default", "detect-only", "hough", "watershed"] + ([] if a.quick else ["paper"]))
    t_start = time.time()
    baselines = tuned_baselines(a.tune_budget, a.retune)
    cases = build_cases(a)
    from srpsa.io import read_image

    per: dict[tuple[str, str], list[dict]] = {}
    results: dict = {}
    old = json.loads(a.json.read_text()) if a.merge and a.json.exists() else {"results": {}, "images": {}}
    ran = {c.set for c in cases}
    results.update({k: v for k, v in old["results"].items() if k not in ran})
    old_images = {k: v for k, v in old["images"].items() if k.split("|")[0] not in ran}
    for case in cases:
        shape = read_image(case.path).data.shape
        for method in methods:
            if case.modality == "sem" and method in ("detect-only", "paper"):
                continue  # one SEM path: same as default
            circles, secs, quality, warnings = run_method(method, case, baselines)
            rec = evaluate(case, circles, shape) | {"seconds": secs, "quality": quality, "image": case.path.name, "warnings": warnings}
            per.setdefault((case.set, method), []).append(rec)
            results.setdefault(case.set, {"group": case.group, "modality": case.modality})[method] = score_set(per[(case.set, method)])
            print(f"{case.set:32s} {case.path.name:34s} {method:11s} {secs:6.1f} s  quality {quality}  "
                  + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results[case.set][method].items()}), flush=True)
            images = old_images | {f"{s}|{m}": [{k: r[k] for k in ("image", "seconds", "quality", "f1", "mean_err_pct", "warnings")} for r in recs]
                      for (s, m), recs in per.items()}
            meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": (old.get("meta", {}).get("command", "") + " + " if a.merge else "") + "python benchmarks/generalisation.py" + "".join(f" {x}" for x in sys.argv[1:]),
                    "machine": f"{platform.machine()} {os.cpu_count()} CPUs ({platform.processor() or platform.system()}), load {os.getloadavg()[0]:.1f}",
                    "seconds": time.time() - t_start, "quick": a.quick, "methods": methods, "baselines": BASELINES_JSON.name}  # fmt: skip
            a.json.write_text(json.dumps({"meta": meta, "results": results, "images": images}, indent=1, default=float) + "\n")
    md = render_md(results, meta)
    print(md)
    if a.write:
        from results_md import replace_section

        replace_section("generalisation", md)


if __name__ == "__main__":
    main()
