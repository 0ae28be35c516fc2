"""How the cost of `srpsa analyze` grows with the image and the particle size (issue 16).

For each cell (particle diameter d px, image size in Mpx) an ideal-disk image is rendered here (its own
few lines below, not srpsa.synth: dark anti-aliased disks on a bright ground, on a jittered lattice, no
overlaps, mild noise and blur), written as PNG, and analysed by `srpsa analyze` (defaults, --bootstrap 0,
one worker) in a fresh process that reports its wall time and peak RSS (getrusage). OpenCV's Hough
transform runs on the same image in the same run (radius range from the true size +-30 %: the best case
for it). Accuracy beside time: F1 (one-to-one matching, border particles ignored) and the error of the
mean interior diameter.

    python benchmarks/scaling.py [--cells 1:5,1:7,4:7 ...] [--write]

``--write`` puts the table into benchmarks/RESULTS.md (section "scaling"), the numbers into
benchmarks/scaling.json and the log-log plot into benchmarks/img/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent
SHAPES = {1: (1024, 1024), 4: (2048, 2048), 15: (3168, 4752), 50: (6144, 8192)}
DIAMETERS = (5, 7, 10, 15, 30, 55, 90, 150)
# The default subset (< 20 min on the project's 2-core machine): every size at 1 Mpx, the cases
# (2048^2 with 7 px, 4752x3168 with 17 px) and a spread at 4, 15 and 50 Mpx.
DEFAULT_CELLS = [(1, d) for d in DIAMETERS] + [(4, 7), (4, 15), (4, 55), (15, 17), (15, 90), (50, 30)]

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from srpsa.cli import main
rc = main(sys.argv[2:])
wall = time.perf_counter() - t0
u = resource.getrusage(resource.RUSAGE_SELF)
json.dump({"rc": rc, "wall_s": wall, "cpu_s": u.ru_utime + u.ru_stime, "peak_rss_gb": u.ru_maxrss / 1024**2},
          open(sys.argv[1], "w"))
"""


def render_disks(shape: tuple[int, int], d: float, seed: int, fraction: float = 0.3, style: str = "ideal") -> tuple[np.ndarray, np.ndarray]:
    """uint8 image of dark disks of diameter ``d`` px on a bright ground, and the circles ``(N, 3)``.

    ``style="om"`` gives each disk a bright centre (a lens spot, 0.4 r) and a faint bright halo ring
    (1.35 r) and blurs more, as a transmitted-light micrograph: such images fail the two-level test
    (src/srpsa/inference/binary.py) and measure the network route's cost, which ideal disks no longer do.

    One disk per lattice cell (cell side ``a`` from the area fraction), jittered inside its cell so that
    disks never overlap; 10 % of the cells are left empty. Coverage anti-aliasing: intensity follows the
    signed distance to the edge over one pixel. Rendered row band by row band (bounded memory).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    r = d / 2.0
    a = max(d * np.sqrt(np.pi / (4 * fraction)), d + 3.0)
    ny, nx = int(np.ceil(h / a)), int(np.ceil(w / a))
    slack = max((a - d) / 2.0 - 1.0, 0.0)
    cx = (np.arange(nx)[None, :] + 0.5) * a + rng.uniform(-slack, slack, (ny, nx))
    cy = (np.arange(ny)[:, None] + 0.5) * a + rng.uniform(-slack, slack, (ny, nx))
    present = rng.random((ny, nx)) >= 0.1
    img = np.empty((h, w), np.uint8)
    xs = np.arange(w, dtype=np.float64)
    j = np.minimum((xs // a).astype(int), nx - 1)
    band = max(1, int(4_000_000 // w))
    for y0 in range(0, h, band):
        ys = np.arange(y0, min(h, y0 + band), dtype=np.float64)
        i = np.minimum((ys // a).astype(int), ny - 1)
        dx = xs[None, :] - cx[i][:, j]
        dy = ys[:, None] - cy[i][:, j]
        rho = np.sqrt(dx * dx + dy * dy)
        cover = np.clip(r - rho + 0.5, 0.0, 1.0) * present[i][:, j]
        level = 220.0 - 170.0 * cover
        if style == "om":
            spot = np.clip(0.4 * r - rho + 0.5, 0.0, 1.0)
            halo = np.exp(-(((rho - 1.35 * r) / (0.15 * r + 1.0)) ** 2))
            level = level + (120.0 * spot + 30.0 * halo) * present[i][:, j]
        img[y0:y0 + len(ys)] = np.clip(np.rint(level + rng.normal(0, 4.0, cover.shape)), 0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 1.2 if style == "om" else 0.7)
    keep = present & (cx < w - 0.5) & (cy < h - 0.5)
    gt = np.column_stack([cx[keep], cy[keep], np.full(int(keep.sum()), r)])
    return img, gt


def accuracy(gt: np.ndarray, pred: np.ndarray, shape) -> dict[str, float]:
    from srpsa.evaluation import aggregate, evaluate_image

    e = aggregate([evaluate_image(gt, pred, image_shape=shape, ignore_border=True)])
    h, w = shape

    def interior(c: np.ndarray) -> np.ndarray:
        c = np.asarray(c).reshape(-1, 3)
        return c[(c[:, 0] - c[:, 2] > 0) & (c[:, 1] - c[:, 2] > 0) & (c[:, 0] + c[:, 2] < w - 1) & (c[:, 1] + c[:, 2] < h - 1)]

    g, p = interior(gt), interior(pred)
    mean_err = float(np.mean(p[:, 2]) / np.mean(g[:, 2]) - 1.0) if len(p) and len(g) else float("nan")
    return {"f1": float(e.f1), "mean_err": mean_err}


ISO = ROOT.parent.parent / "shared" / "data" / "real" / "iso_tr19672"


def run_cell(mpx: int, d: float, work: Path, seed: int, iso: Path | None = None, style: str = "ideal") -> dict:
    """One cell; ``iso`` (a folder): the ISO TR 19672 frame of ``d`` px instead of a rendered image;
    ``style``: see :func:`render_disks`."""
    from srpsa.baselines.hough import HoughParams, hough_detect

    if iso is not None:
        src = iso / f"monodisperse_n100_{d:g}px.png"
        img = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
        gt = np.loadtxt(src.with_suffix(".csv"), delimiter=",", skiprows=1, usecols=(0, 1, 2)).reshape(-1, 3)
        shape = img.shape
    else:
        shape = SHAPES[mpx]
        img, gt = render_disks(shape, d, seed, style=style)
        src = work / f"{style}_disks_{mpx}mpx_{d:g}px.png"
        cv2.imwrite(str(src), img)
    out = work / f"out_{style}_{mpx}_{d:g}"
    stats = work / f"stats_{style}_{mpx}_{d:g}.json"
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-c", CHILD, str(stats), "analyze", str(src), "--out", str(out), "--bootstrap", "0",
           "--workers", "1", "--force"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row: dict = {"set": "ISO TR 19672" if iso is not None else ("disks" if style == "ideal" else "OM-like disks"), "mpx": shape[0] * shape[1] / 1e6, "shape": list(shape),
                 "d_px": d, "n_gt": len(gt), "load_before": load}
    if not stats.is_file():
        row.update(srpsa_error=(proc.stderr.strip().splitlines() or ["no output"])[-1])
        return row
    row.update(json.loads(stats.read_text()))
    row["s_per_mpx"] = row["wall_s"] / row["mpx"]
    summ = out / src.stem / "summary.json"
    if summ.is_file():
        import pandas as pd

        s = json.loads(summ.read_text())
        table = pd.read_csv(out / src.stem / "particles.csv")
        pred = table[["x_px", "y_px", "r_px"]].to_numpy()
        row.update({f"srpsa_{k}": v for k, v in accuracy(gt, pred, shape).items()})
        enhance = s.get("enhance")
        default_route = "detect" if enhance is None else enhance.get("route", "gans")
        row["route"] = (s.get("detect") or {}).get("route") or default_route
        row["stages_s"] = s.get("seconds")
        row["estimate"] = s.get("cost_estimate")
    else:
        row["srpsa_error"] = (proc.stderr.strip().splitlines() or ["no summary"])[-1]
    r = d / 2.0
    params = HoughParams(min_radius_px=max(1, int(np.floor(0.7 * r))), max_radius_px=max(2, int(np.ceil(1.3 * r))) + 1,
                         expected_radius_px=r, blur_sigma=min(1.0, r / 4))
    gray = img.astype(np.float32) / 255.0
    t0 = time.perf_counter()
    hc, _ = hough_detect(gray, params)
    row["hough_s"] = time.perf_counter() - t0
    row.update({f"hough_{k}": v for k, v in accuracy(gt, hc, shape).items()})
    return row


def markdown(rows: list[dict], command: str, wall: float) -> str:
    cpu = f"{platform.machine()}, {os.cpu_count()} cores"
    lines = [
        f"## Scaling with image and particle size ({date.today().isoformat()})",
        "",
        f"`{command}` ({cpu}, {wall / 60:.1f} min; the machine is shared: `load` is the 1-min load average "
        "before each cell). Ideal dark disks on a bright ground rendered by the benchmark itself; `srpsa analyze` "
        "defaults in a fresh process (wall includes start-up and model loading; peak RSS of that process). "
        "Hough: `cv2.HoughCircles` with the true radius +-30 %, same image, same run. F1 / mean = F1 and "
        "mean-diameter error. Plot: `benchmarks/img/scaling.png`.",
        "",
        "| set | Mpx | d px | route | wall s | CPU s | CPU s/Mpx | peak RSS GB | est. GB | F1 / mean | Hough s | Hough F1 / mean | load |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        if "wall_s" not in r:
            lines.append(f"| {r['set']} | {r['mpx']:.1f} | {r['d_px']:g} | failed: {r.get('srpsa_error', '')} | | | | | | | | | |")
            continue
        acc = f"{r.get('srpsa_f1', float('nan')):.3f} / {100 * r.get('srpsa_mean_err', float('nan')):+.1f} %"
        hacc = f"{r['hough_f1']:.3f} / {100 * r['hough_mean_err']:+.1f} %"
        est = (r.get("estimate") or {}).get("peak_memory_gb", float("nan"))
        lines.append(f"| {r['set']} | {r['mpx']:.1f} | {r['d_px']:g} | {r.get('route', '?')} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['cpu_s'] / r['mpx']:.2f} | "
                     f"{r['peak_rss_gb']:.2f} | {est:.2f} | {acc} | {r['hough_s']:.2f} | {hacc} | {r['load_before']:.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for d in sorted({r["d_px"] for r in rows}):
        rs = sorted((r for r in rows if r["d_px"] == d and "wall_s" in r and r["set"] == "disks"), key=lambda r: r["mpx"])
        if not rs:
            continue
        mp = [r["mpx"] for r in rs]
        axes[0].plot(mp, [r["wall_s"] for r in rs], "o-", label=f"{d:g} px")
        axes[1].plot(mp, [r["peak_rss_gb"] for r in rs], "o-", label=f"{d:g} px")
    for ax, name in zip(axes, ("wall time (s)", "peak RSS (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("image size (Mpx)")
        ax.set_ylabel(name)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].axhline(4.0, color="k", ls="--", lw=0.8)
    axes[0].legend(fontsize=7, title="disk diameter")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="*", default=None, help="MPX:D pairs (default: the 20-min subset)")
    ap.add_argument("--seed", type=int, default=1600)
    ap.add_argument("--iso", type=float, nargs="*", default=[], help="also the ISO TR 19672 frames of these sizes (px)")
    ap.add_argument("--om-cells", nargs="*", default=[], help="MPX:D pairs rendered as OM-like disks (network route)")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    def parse(cell: str) -> tuple[int, float]:  # "MPX:D"
        mpx, d = cell.split(":")
        return int(mpx), float(d)

    cells = DEFAULT_CELLS if a.cells is None else [parse(c) for c in a.cells]
    cells = [(0, d, "ideal") for d in a.iso] + [(m, d, "ideal") for m, d in cells]
    cells += [(*parse(c), "om") for c in a.om_cells]
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="srpsa-scaling-") as tmp:
        for k, (mpx, d, style) in enumerate(cells):
            row = run_cell(mpx, d, Path(tmp), a.seed + k, ISO if mpx == 0 else None, style)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "stages_s"}), flush=True)
    command = ("python benchmarks/scaling.py" + ("" if a.cells is None else " --cells " + " ".join(a.cells))
               + (" --iso " + " ".join(f"{d:g}" for d in a.iso) if a.iso else "")
               + (" --om-cells " + " ".join(a.om_cells) if a.om_cells else ""))
    md = markdown(rows, command, time.perf_counter() - t0)
    print(md)
    if a.write:
        sys.path.insert(0, str(ROOT))
        from results_md import replace_section

        from srpsa.io.atomic import atomic_write_text

        atomic_write_text(ROOT / "scaling.json", json.dumps(rows, indent=1))
        plot(rows, ROOT / "img" / "scaling.png")
        replace_section("scaling", md)


if __name__ == "__main__":
    main()
