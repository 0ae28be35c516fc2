"""Evidence for the self-check's thresholds (srpsa.inference.quality), from training data only.

For the appearance-randomised training renderer (srpsa.synth.styles, seeds 0..N-1, the training range)
and two simulator presets, it measures on the *true* circles, on circles with a wrong radius (x0.7,
x1.3) and on random circles (no particle under them): the share of "weak" circles (radial F below the
threshold) and the median edge ratio. The thresholds in QualityConfig sit between these populations;
held-out data (benchmarks/generalisation.py) is only used to report how well they work, never to set them.

    python benchmarks/quality_calibration.py [--styles 40]
"""

from __future__ import annotations

import argparse

import numpy as np

from srpsa.inference.quality import QualityConfig, _normalised, edge_ratio, radial_f, ring_profiles
from srpsa.synth import make_pair, preset
from srpsa.synth.styles import render_style_image


def measure(img: np.ndarray, circles: np.ndarray, cfg: QualityConfig) -> tuple[float, float]:
    p, rho = ring_profiles(_normalised(img), circles, cfg)
    f = radial_f(p)
    strong = f >= cfg.min_radial_f
    return float(np.mean(~strong)), float(np.median(edge_ratio(p[strong], rho))) if strong.any() else float("nan")


def random_circles(rng: np.random.Generator, shape: tuple[int, int], d: float, n: int = 400) -> np.ndarray:
    h, w = shape
    return np.column_stack([rng.uniform(d, w - d, n), rng.uniform(d, h - d, n), np.full(n, d / 2)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--styles", type=int, default=40, help="training-style images (seeds 0..N-1)")
    args = ap.parse_args()
    cfg = QualityConfig()
    rng = np.random.default_rng(0)
    images = []
    for seed in range(args.styles):
        st = render_style_image(seed)
        img = np.asarray(st.image, np.float32)
        images.append((f"styles/{seed}", img.mean(2) if img.ndim == 3 else img, np.asarray(st.circles)[:, :3]))
    for name in ("primary", "train"):
        pair = make_pair(preset(name), seed=7)
        om = np.asarray(pair.om, np.float32)
        images.append((f"preset/{name}", om.mean(2) if om.ndim == 3 else om, pair.gt[["x_px", "y_px", "r_px"]].to_numpy()))
    rows = {k: [] for k in ("true", "r x0.7", "r x1.3", "random")}
    for _, img, c in images:
        if len(c) < 3:
            continue
        rows["true"].append(measure(img, c, cfg))
        rows["r x0.7"].append(measure(img, c * [1, 1, 0.7], cfg))
        rows["r x1.3"].append(measure(img, c * [1, 1, 1.3], cfg))
        rows["random"].append(measure(img, random_circles(rng, img.shape, float(2 * np.median(c[:, 2]))), cfg))
    lo, hi = cfg.edge_ratio_band
    print(f"{len(rows['true'])} training images; weak = radial F < {cfg.min_radial_f:g}; edge band {lo}-{hi}\n")
    print("| circles | median weak share | images with weak >= %.2f | images with weak >= %.2f | median edge ratio | images outside band |" % (cfg.weak_doubtful, cfg.weak_failed))
    print("|---|---|---|---|---|---|")
    for k, v in rows.items():
        a = np.array(v)
        outside = np.mean((a[:, 1] < lo) | (a[:, 1] > hi) | np.isnan(a[:, 1]))
        print(f"| {k} | {np.median(a[:, 0]):.3f} | {np.mean(a[:, 0] >= cfg.weak_doubtful):.2f} | {np.mean(a[:, 0] >= cfg.weak_failed):.2f} "
              f"| {np.nanmedian(a[:, 1]):.2f} | {outside:.2f} |")


if __name__ == "__main__":
    main()
