"""Accuracy of the full pipeline's configurations side by side, on the paper_tables test images.

    .venv/bin/python benchmarks/full_configs.py [--n 2] [--size 512 768] [--write]
    .venv/bin/python benchmarks/full_configs.py --translator NAME=RELEASE_DIR ... [--superres RELEASE_DIR]

The second form compares candidate translators (release folders of `srpsa train translate`, e.g. the GPU
runs of scripts/gpu_train_gans.sh) in the default configuration, and with ``--superres`` also through that
super-resolver; it writes ``full_configs_candidates.json`` and the RESULTS section ``full_candidates``.

Same fresh simulator test images as ``paper_tables.py`` (seeds 900000+, never used in training or
tuning), the four presets including the held-out optics. For each configuration: F1, mean-diameter error
and median per-particle radius error (particles not cut by the border), and seconds per image on this CPU
(ONNX Runtime). Its speed on a 4752x3168 image is measured by ``speed_methods.py``; the two together choose
the default (docs/decisions.md, "Full pipeline without the SR stage by default").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection import interior  # noqa: E402
from paper_tables import PRESETS, TEST_SEED, make_test  # noqa: E402
from results_md import replace_section  # noqa: E402

from srpsa.evaluation import aggregate, evaluate_image  # noqa: E402
from srpsa.inference.detect import Detector  # noqa: E402
from srpsa.inference.enhance import EnhanceConfig, Enhancer  # noqa: E402
from srpsa.inference.full import FullPipeline  # noqa: E402
from srpsa.inference.guide import GuideConfig  # noqa: E402
from srpsa.inference.weights import DETECTOR_OM, DETECTOR_SEM, SUPERRES, TRANSLATOR, model_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent

# name -> (EnhanceConfig changes, GuideConfig changes); None: the OM detector alone (detect-only)
CONFIGS: dict[str, tuple[dict, dict] | None] = {
    "translate -> ESRGAN -> detect, range median/3..x3 (session 3)": ({"sr_mode": "model"}, {"tail_quantile": 0.0}),
    "translate -> ESRGAN -> detect, range from guide tails": ({"sr_mode": "model"}, {}),
    "translate -> detect, range from guide tails (default)": ({"sr_mode": "none"}, {}),
    "detect-only (OM detector, no GANs)": None,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 768))
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--translator", action="append", default=[], metavar="NAME=DIR", help="candidate translator release folder")
    ap.add_argument("--superres", default=None, metavar="DIR", help="with --translator: also run each through this super-resolver")
    args = ap.parse_args()
    candidates = dict(t.split("=", 1) for t in args.translator)
    t_start = time.time()
    det_sem = Detector.load(model_dir(DETECTOR_SEM), backend="onnx")
    det_om = Detector.load(model_dir(DETECTOR_OM), backend="onnx")
    images = {p: [make_test(p, TEST_SEED + i, tuple(args.size)) for i in range(args.n)] for p in args.presets}
    rows = []
    # name -> (translator dir, superres dir, EnhanceConfig changes, GuideConfig changes) or None (detect-only)
    plan: dict[str, tuple | None] = {n: None if c is None else (model_dir(TRANSLATOR), model_dir(SUPERRES), *c) for n, c in CONFIGS.items()}
    if candidates:
        plan = {}
        for cname, folder in candidates.items():
            plan[f"{cname}: translate -> detect"] = (Path(folder), model_dir(SUPERRES), {"sr_mode": "none"}, {})
            if args.superres:
                plan[f"{cname}: translate -> ESRGAN -> detect"] = (Path(folder), Path(args.superres), {"sr_mode": "model"}, {})
    for name, spec in plan.items():
        if spec is None:
            run = lambda om: det_om.detect(om)[0]  # noqa: E731
        else:
            ecfg, gcfg = replace(EnhanceConfig(), **spec[2]), replace(GuideConfig(), **spec[3])
            pipe = FullPipeline(Enhancer.load(spec[0], spec[1], ecfg, backend="onnx"), det_sem, det_om, guide=gcfg)
            run = lambda om, pipe=pipe: pipe.detect(om).circles  # noqa: E731
        for p, ims in images.items():
            t0 = time.perf_counter()
            preds = [run(t.om) for t in ims]
            sec = (time.perf_counter() - t0) / len(ims)
            shape = ims[0].om.shape
            m = aggregate([evaluate_image(t.gt, q, image_shape=shape, ignore_border=True) for t, q in zip(ims, preds)])
            dg = np.concatenate([2 * interior(t.gt, shape)[:, 2] for t in ims])
            dp = np.concatenate([2 * interior(q, shape)[:, 2] for q in preds])
            rows.append({"config": name, "preset": p, "f1": m.f1, "precision": m.precision, "recall": m.recall,
                         "mean_err_pct": 100 * (dp.mean() / dg.mean() - 1), "radius_err_pct": 100 * m.radius_median_abs_rel_error, "s_per_image": sec})
            print(f"[{time.time() - t_start:.0f} s] {json.dumps(rows[-1])}", flush=True)
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "n": args.n, "size": list(args.size), "seconds": round(time.time() - t_start),
            "command": "python benchmarks/full_configs.py " + " ".join(sys.argv[1:])}
    stem = "full_configs_candidates" if candidates else "full_configs"
    (ROOT / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    text = render(meta, rows, candidates=bool(candidates))
    print(text)
    if args.write:
        replace_section("full_candidates" if candidates else "full_configs", text)


def render(meta: dict, rows: list[dict], candidates: bool = False) -> str:
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    title = "Candidate translators in the full pipeline" if candidates else "Full-pipeline configurations side by side"
    lines = [f"## {title} ({meta['date'][:10]})\n",
             f"`{meta['command']}` ({meta['machine']}, {meta['seconds']} s): {meta['n']} test images per preset, "
             f"{meta['size'][0]}x{meta['size'][1]} OM px, seeds 900000+ (the paper_tables images). Cells: F1 / "
             "mean-diameter error / median radius error; s = seconds per image (ONNX Runtime).\n",
             "| config | " + " | ".join(presets) + " | s/image |", "|---|" + "---|" * len(presets) + "---:|"]
    for name in dict.fromkeys(r["config"] for r in rows):
        rs = {r["preset"]: r for r in rows if r["config"] == name}
        cells = [f"{rs[p]['f1']:.3f} / {rs[p]['mean_err_pct']:+.1f} % / {rs[p]['radius_err_pct']:.1f} %" for p in presets]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean([r['s_per_image'] for r in rs.values()]):.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
