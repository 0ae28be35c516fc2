"""Realism check of the simulator: simple statistics of real vs simulated microscope images.

For every image (8-bit gray, as written to disk) we compute

* intensity percentiles p1 / p50 / p99;
* noise sigma: Donoho's robust wavelet estimator, median(|HH|) / 0.6745 of the finest diagonal Haar
  subband (what skimage's ``estimate_sigma`` does with Daubechies wavelets, which need PyWavelets);
  in 8-bit grey levels;
* power-spectrum slope: the log-log slope of the radially averaged power spectrum between 0.01 and
  0.25 cycles/px (natural images ~ -2; more blur = steeper, more white noise = flatter);
* edge width: the 10-90 % rise distance (px) of intensity profiles taken across the strongest edges
  (Canny edges, profile along the gradient) - label-free, so it works on the unlabelled real images;
* for the labelled SEM images (AMPIS outlines, simulator ground truth): the particle/substrate and
  rim/centre brightness ratios of the mean radial profile.

Real images come from the shared folder described in its README (AMPIS SEM powder, trackpy bright-field
spheres, polymer-bead eyepiece photos); they are read in place, never copied. Simulated sets are drawn
from the presets. Results go to ``benchmarks/realism.md`` (markdown table) and stdout.

Usage::

    python benchmarks/realism.py [--real PATH] [--n-sim 4] [--out benchmarks/realism.md]
                                 [--figures docs/img] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from srpsa.io.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from srpsa.synth import make_pair, preset  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"


# ----------------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------------


def to_u8_gray(img: np.ndarray) -> np.ndarray:
    """Float [0,1] or uint8, gray or RGB -> uint8 gray (what a detector sees after loading)."""
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return img


def noise_sigma(img: np.ndarray) -> float:
    """Robust noise std: median absolute finest-scale diagonal Haar coefficient / 0.6745.

    Edges and smooth shading barely reach the diagonal detail band; white noise fills it, so its
    median absolute value measures the noise even in busy images.
    """
    f = img.astype(np.float64)
    h, w = (f.shape[0] // 2) * 2, (f.shape[1] // 2) * 2
    f = f[:h, :w]
    hh = (f[0::2, 0::2] - f[0::2, 1::2] - f[1::2, 0::2] + f[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def psd_slope(img: np.ndarray, fmin: float = 0.01, fmax: float = 0.25) -> float:
    """Log-log slope of the radially averaged power spectrum (Hann-windowed central crop <= 1024 px)."""
    h, w = img.shape
    s = min(h, w, 1024)
    crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s].astype(np.float64)
    win = np.outer(np.hanning(s), np.hanning(s))
    spec = np.abs(np.fft.fftshift(np.fft.fft2((crop - crop.mean()) * win))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(s)), np.fft.fftshift(np.fft.fftfreq(s)), indexing="ij")
    f = np.hypot(fx, fy)
    bins = np.geomspace(fmin, fmax, 25)
    idx = np.digitize(f.ravel(), bins)
    sums = np.bincount(idx, spec.ravel(), len(bins) + 1)[1:-1]
    cnt = np.bincount(idx, minlength=len(bins) + 1)[1:-1]
    centres = np.sqrt(bins[1:] * bins[:-1])
    ok = cnt > 0
    slope = np.polyfit(np.log(centres[ok]), np.log(sums[ok] / cnt[ok] + 1e-12), 1)[0]
    return float(slope)


def edge_width(img: np.ndarray, rng: np.random.Generator, n: int = 1500, half: float = 12.0) -> float:
    """Median 10-90 % rise distance (px) across the strongest edges of the image."""
    f = img.astype(np.float32) / 255.0
    sm = cv2.GaussianBlur(f, (0, 0), 1.5)
    gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    u8 = np.clip(sm * 255, 0, 255).astype(np.uint8)
    hi = float(np.percentile(mag, 97)) * 255 / 8
    edges = cv2.Canny(u8, hi / 2, hi) > 0
    m = int(half) + 2
    edges[:m] = edges[-m:] = False
    edges[:, :m] = edges[:, -m:] = False
    ys, xs = np.nonzero(edges)
    if len(ys) < 20:
        return float("nan")
    strong = mag[ys, xs] >= np.percentile(mag[ys, xs], 50)
    ys, xs = ys[strong], xs[strong]
    pick = rng.choice(len(ys), min(n, len(ys)), replace=False)
    ys, xs = ys[pick], xs[pick]
    ux, uy = gx[ys, xs] / mag[ys, xs], gy[ys, xs] / mag[ys, xs]
    t = np.linspace(-half, half, int(8 * half) + 1)
    coords = np.stack([ys[:, None] + uy[:, None] * t[None, :], xs[:, None] + ux[:, None] * t[None, :]])
    prof = ndimage.map_coordinates(f, coords.reshape(2, -1), order=1, mode="nearest").reshape(len(ys), len(t))
    prof = ndimage.uniform_filter1d(prof, 5, axis=1)  # tame pixel noise, keep the edge
    lo = prof[:, :12].mean(1)
    hi_ = prof[:, -12:].mean(1)
    p = (prof - lo[:, None]) / np.where(np.abs(hi_ - lo) > 1e-6, hi_ - lo, np.nan)[:, None]
    widths = []
    c = len(t) // 2
    for row in p:
        if not np.isfinite(row).all():
            continue
        a10 = _crossing(row, 0.1, c, t)
        a90 = _crossing(row, 0.9, c, t)
        if a10 is not None and a90 is not None:
            widths.append(abs(a90 - a10))
    return float(np.median(widths)) if len(widths) >= 10 else float("nan")


def _crossing(row: np.ndarray, level: float, c: int, t: np.ndarray) -> float | None:
    s = np.sign(row - level)
    idx = np.flatnonzero(s[:-1] * s[1:] <= 0)
    if len(idx) == 0:
        return None
    i = idx[np.argmin(np.abs(idx - c))]
    y0, y1 = row[i], row[i + 1]
    frac = 0.0 if y1 == y0 else (level - y0) / (y1 - y0)
    return float(t[i] + frac * (t[i + 1] - t[i]))


def radial_ratios(img: np.ndarray, circles: np.ndarray, max_n: int = 400) -> tuple[float, float]:
    """(particle mean / substrate mean, rim (0.8-1.0 r) mean / centre (0-0.5 r) mean) from circles."""
    f = img.astype(np.float32)
    h, w = f.shape
    circles = circles[(circles[:, 2] >= 6)]
    inside = (circles[:, 0] - circles[:, 2] > 0) & (circles[:, 0] + circles[:, 2] < w - 1)
    inside &= (circles[:, 1] - circles[:, 2] > 0) & (circles[:, 1] + circles[:, 2] < h - 1)
    circles = circles[inside][:max_n]
    if len(circles) < 5:
        return float("nan"), float("nan")
    mask = np.zeros((h, w), np.uint8)
    centre_v, rim_v = [], []
    for x, y, r in circles:
        cv2.circle(mask, (int(round(x * 16)), int(round(y * 16))), int(round(r * 1.15 * 16)), 1, -1, cv2.LINE_8, 4)
        x0, x1 = int(max(x - r, 0)), int(min(x + r + 1, w))
        y0, y1 = int(max(y - r, 0)), int(min(y + r + 1, h))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rho = np.hypot(xx - x, yy - y) / r
        patch = f[y0:y1, x0:x1]
        centre_v.append(patch[rho < 0.5].mean())
        rim_v.append(patch[(rho >= 0.8) & (rho < 1.0)].mean())
    substrate = float(np.median(f[mask == 0])) if (mask == 0).any() else float("nan")
    particle = float(np.mean(centre_v) * 0.25 + np.mean(rim_v) * 0.75)  # area-weighted, roughly
    return particle / max(substrate, 1.0), float(np.mean(rim_v) / max(np.mean(centre_v), 1.0))


@dataclass
class Stats:
    p1: float
    p50: float
    p99: float
    noise: float
    slope: float
    edge: float
    contrast: float = float("nan")
    rim: float = float("nan")


def image_stats(img_u8: np.ndarray, rng: np.random.Generator, circles: np.ndarray | None = None) -> Stats:
    p1, p50, p99 = np.percentile(img_u8, [1, 50, 99])
    noise = noise_sigma(img_u8)
    st = Stats(float(p1), float(p50), float(p99), noise, psd_slope(img_u8), edge_width(img_u8, rng))
    if circles is not None:
        st.contrast, st.rim = radial_ratios(img_u8, circles)
    return st


# ----------------------------------------------------------------------------------------------------
# Data sets
# ----------------------------------------------------------------------------------------------------


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(path)
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return img


def ampis_circles(real: Path) -> dict[str, np.ndarray]:
    """Equal-area circles (x, y, r) of the hand-traced AMPIS particle outlines, per file name."""
    meta = json.loads((real / "ampis_powder_sem/annotations/via_powder_particle_masks_training.json").read_text())
    out = {}
    for entry in meta["_via_img_metadata"].values():
        rows = []
        for reg in entry["regions"]:
            sa = reg["shape_attributes"]
            x, y = np.asarray(sa["all_points_x"], float), np.asarray(sa["all_points_y"], float)
            area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
            if area > 0:
                rows.append((x.mean(), y.mean(), math.sqrt(area / math.pi)))
        out[entry["filename"]] = np.array(rows).reshape(-1, 3)
    return out


def real_sets(real: Path, quick: bool) -> Iterator[tuple[str, str, list[tuple[np.ndarray, np.ndarray | None]]]]:
    """(modality, name, [(image, circles or None)]) for each real data set present."""
    k = 3 if quick else 10
    sem_dir = real / "ampis_powder_sem/images"
    if sem_dir.is_dir():
        circ = ampis_circles(real)
        files = sorted(sem_dir.glob("*.png"))[:k]
        yield "SEM", "real: AMPIS powder SEM", [(_read(f), circ.get(f.name)) for f in files]
    bf = real / "trackpy_brightfield/brightfield"
    if bf.is_dir():
        files = sorted(bf.glob("bf_*.png"))[:: 5][:k]
        yield "OM", "real: trackpy bright-field spheres", [(_read(f), None) for f in files]
    beads = real / "polymer_beads_om/monodisperse"
    if beads.is_dir():
        files = sorted(beads.glob("*.JPG"))[: (3 if quick else 8)]
        yield "OM", "real: polymer beads, eyepiece photos", [(_read(f), None) for f in files]


SIM_SETS = [
    ("SEM", "primary"),
    ("SEM", "tertiary"),
    ("SEM", "heldout"),
    ("SEM", "train"),
    ("OM", "primary"),
    ("OM", "tertiary"),
    ("OM", "heldout"),
    ("OM", "heldout_eyepiece"),
    ("OM", "heldout_lowmag"),
    ("OM", "train"),
]


def sim_set(modality: str, name: str, n: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    cfg = preset(name)
    if name != "train":  # full-size fields cost seconds each; statistics need less
        cfg.height, cfg.width = 768, 1024
    out = []
    for i in range(n):
        pair = make_pair(cfg, 1000 + i)
        if modality == "SEM":
            circ = pair.gt_sem[["x_sem_px", "y_sem_px", "r_sem_px"]].to_numpy()
            out.append((to_u8_gray(pair.sem), circ))
        else:
            out.append((to_u8_gray(pair.om), None))
    return out


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------

COLS = [("p1", "p1"), ("p50", "p50"), ("p99", "p99"), ("noise", "noise sigma"), ("slope", "PSD slope"),
        ("edge", "edge 10-90 % (px)"), ("contrast", "particle/substrate"), ("rim", "rim/centre")]  # fmt: skip


def _fmt(values: list[float]) -> str:
    v = np.array([x for x in values if np.isfinite(x)])
    if len(v) == 0:
        return "-"
    if len(v) == 1 or np.ptp(v) < 1e-9:
        return f"{np.median(v):.2f}"
    return f"{np.median(v):.2f} [{v.min():.2f}, {v.max():.2f}]"


def make_figures(real: Path, outdir: Path) -> list[Path]:
    """Side-by-side 256 px crops: real vs simulated, per modality (docs/img/synth_*.png)."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []

    def crop(img: np.ndarray, cy: float, cx: float, size: int = 256) -> np.ndarray:
        h, w = img.shape[:2]
        y0 = int(np.clip(cy * h - size / 2, 0, h - size))
        x0 = int(np.clip(cx * w - size / 2, 0, w - size))
        c = img[y0 : y0 + size, x0 : x0 + size]
        if c.ndim == 2:
            c = np.repeat(c[..., None], 3, axis=2)
        return c

    def save(name: str, tiles: list[np.ndarray]) -> None:
        gap = np.full((256, 6, 3), 255, np.uint8)
        row = np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert ok
        path = outdir / f"synth_{name}.png"
        atomic_write_bytes(path, buf.tobytes())
        written.append(path)

    def u8(img: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)

    def pick(cfg, seed: int, ok) -> object:
        """The first pair from ``seed`` on that shows what the panel is about (seeded, so stable)."""
        for s in range(seed, seed + 200):
            pair = make_pair(cfg, s)
            if ok(pair):
                return pair
        return pair

    def busy(n: int):
        return lambda pr: pr.params["derived"]["n_particles_om"] >= n and pr.params["config"]["layout"]["mode"] != "sparse"

    # SEM: real AMPIS | primary | two train draws
    tiles = []
    f = real / "ampis_powder_sem/images"
    if f.is_dir():
        tiles.append(crop(_read(sorted(f.glob("*.png"))[0]), 0.5, 0.45))
    cfg_p = preset("primary")
    cfg_p.layout.mode = "dense"
    p = make_pair(cfg_p, 7)
    tiles.append(crop(u8(p.sem), 0.5, 0.5))
    cfg = preset("train")
    a = pick(cfg, 21, busy(15))
    b = pick(cfg, a.params["seed"] + 1, busy(15))
    tiles += [crop(u8(a.sem), 0.5, 0.5), crop(u8(b.sem), 0.5, 0.5)]
    save("sem_real_vs_sim", tiles)

    # OM bright-field: real trackpy | primary | heldout | train
    tiles = []
    f = real / "trackpy_brightfield/brightfield/bf_0000.png"
    if f.is_file():
        tiles.append(crop(_read(f), 0.25, 0.55))
    tiles.append(crop(u8(p.om), 0.5, 0.5))
    tiles.append(crop(u8(make_pair(preset("heldout"), 7).om), 0.5, 0.5))
    cfg_t = preset("train")
    cfg_t.om.illumination = "transmitted"
    tiles.append(crop(u8(to_u8_gray(pick(cfg_t, 40, busy(10)).om) / 255.0), 0.5, 0.5))
    save("om_real_vs_sim", tiles)

    # Eyepiece photos: real polymer beads (downscaled 2x) | heldout_eyepiece | train reflected
    tiles = []
    f = real / "polymer_beads_om/monodisperse"
    if f.is_dir():
        img = _read(sorted(f.glob("*.JPG"))[0])
        tiles.append(crop(cv2.resize(img, (800, 600), interpolation=cv2.INTER_AREA), 0.15, 0.2))
    e = make_pair(preset("heldout_eyepiece"), 7).om
    tiles.append(crop(u8(cv2.resize(e, (768, 512), interpolation=cv2.INTER_AREA)), 0.5, 0.5))
    cfg_r = preset("train")
    cfg_r.om.illumination = "reflected"
    cfg_r.om.colour = True
    cfg_r.om.field_stop_prob = 0.0
    tiles.append(crop(u8(pick(cfg_r, 24, busy(10)).om), 0.5, 0.5))
    save("eyepiece_real_vs_sim", tiles)

    # A pair: OM | SEM of the same field (aligned) with GT circles drawn on the SEM
    cfg = preset("secondary")
    cfg.height, cfg.width = 256, 256
    cfg.misregistration.enabled = False
    cfg.layout.mode = "dense"
    pr = make_pair(cfg, 5)
    om = crop(u8(pr.om), 0.5, 0.5)
    sem = cv2.resize(u8(pr.sem), (256, 256), interpolation=cv2.INTER_AREA)
    sem_gt = np.repeat(sem[..., None], 3, axis=2).copy()
    for x, y, r in pr.gt[["x_px", "y_px", "r_px"]].to_numpy():
        cv2.circle(sem_gt, (int(x * 16), int(y * 16)), int(r * 16), (255, 60, 60), 1, cv2.LINE_AA, 4)
    save("pair_om_sem_gt", [om, crop(sem, 0.5, 0.5), sem_gt])
    return written


def time_pairs(name: str = "primary", n: int = 3) -> tuple[float, float, float]:
    """(first, median of the next n) wall seconds and median CPU seconds of full-size make_pair."""
    cfg = preset(name)
    walls, cpus = [], []
    for i in range(n + 1):
        t, c = time.perf_counter(), time.process_time()
        make_pair(cfg, 500 + i)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return walls[0], float(np.median(walls[1:])), float(np.median(cpus[1:]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of the shared real images")
    ap.add_argument("--n-sim", type=int, default=4, help="simulated images per preset (train: 10x, 512 px)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "realism.md")
    ap.add_argument("--figures", type=Path, default=None, help="also write side-by-side crops here")
    ap.add_argument("--quick", action="store_true", help="fewer images (smoke test)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    rows = []
    for modality, name, items in real_sets(args.real, args.quick):
        stats = [image_stats(img if img.ndim == 2 else to_u8_gray(img), rng, c) for img, c in items]
        rows.append((modality, name, len(items), stats))
        print(f"{name}: {len(items)} images", flush=True)
    n = 1 if args.quick else args.n_sim
    for modality, name in SIM_SETS:
        items = sim_set(modality, name, 10 * n if name == "train" else n)
        stats = [image_stats(img, rng, c) for img, c in items]
        rows.append((modality, f"sim: {name}", len(items), stats))
        print(f"sim {modality} {name}: {len(items)} images", flush=True)
    lines = [
        "# Simulator realism: real vs simulated image statistics",
        "",
        "Generated by `python benchmarks/realism.py` (seeded; see docs/simulator.md for how to read it).",
        "Values: median [min, max] over images; intensities and noise in 8-bit grey levels; edge width in",
        "pixels of each image's own grid. Real sources: AMPIS (Cohn et al., JOM 2021, MIT), trackpy-examples",
        "(BSD-3/CC-BY), separation-of-overlapping-particles (Dominik2812, MIT).",
        "",
        "| modality | data set | n | " + " | ".join(c[1] for c in COLS) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in COLS) + " |",
    ]
    for modality, name, count, stats in sorted(rows, key=lambda r: (r[0] != "SEM", not r[1].startswith("real"))):
        cells = [_fmt([getattr(s, key) for s in stats]) for key, _ in COLS]
        lines.append(f"| {modality} | {name} | {count} | " + " | ".join(cells) + " |")
    first, wall, cpu = time_pairs()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += [
        "",
        f"Timing, preset primary at full size (1536x1024 OM + 3072x2048 SEM): first pair in a process "
        f"{first:.2f} s, then {wall:.2f} s wall / {cpu:.2f} s CPU per pair (median of 3; {os.cpu_count()} "
        f"cores, load average {load:.1f} while measuring).",
        "",
        f"Runtime: {time.perf_counter() - t0:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)
    if args.figures:
        for p in make_figures(args.real, args.figures):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
