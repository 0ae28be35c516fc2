"""The test cases of benchmarks/generalisation.py: render2 styles and the real sets, as image files + truth.

Every case is an image file on disk (the pipeline is called on files, as `srpsa analyze` is) with either
ground-truth circles (x, y, r px) or, for trackpy, only the nominal diameter. The 2048 px ISO frames are
cropped to a centre window (written under the work folder) to bound the CPU time, the truth cut to the same
window; the bead photos are scored inside their labelled region of interest (labels/polymer_beads/README.md).
Border-cut particles are ignored on both sides, as everywhere else.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import render2  # noqa: E402
from render2.files import read_circles, write_set  # noqa: E402

TRACKPY_UM_PER_PX, TRACKPY_NOMINAL_UM = 0.15192873, 2.12
LABELS = ROOT / "labels" / "polymer_beads"
# The modality a user would give: electron images (render2 `sem`, `tem`, AMPIS) are analysed as SEM.
SEM_STYLES = ("sem", "tem")


@dataclass
class Case:
    group: str  # "render2" or "real"
    set: str  # style or real-set name (the table's row)
    path: Path
    modality: str
    gt: np.ndarray | None  # (N, 3) px, or None when only a nominal size is known
    nominal_d_px: float | None = None
    roi: tuple[float, float, float] | None = None  # (cx, cy, r) px: only particles centred inside count


def _crop(src: Path, gt: np.ndarray | None, size: int, out: Path) -> tuple[Path, np.ndarray | None]:
    """Centre ``size`` x ``size`` window of ``src`` as PNG (truth shifted; centres outside dropped)."""
    from PIL import Image

    im = Image.open(src)
    w, h = im.size
    if size >= max(w, h):
        return src, gt
    x0, y0 = max((w - size) // 2, 0), max((h - size) // 2, 0)
    cw, ch = min(size, w), min(size, h)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{src.stem}_crop{size}.png"
    if not dst.exists():
        im.crop((x0, y0, x0 + cw, y0 + ch)).save(dst)
    if gt is None:
        return dst, None
    g = gt - [x0, y0, 0]
    keep = (g[:, 0] >= -0.5) & (g[:, 0] <= cw - 0.5) & (g[:, 1] >= -0.5) & (g[:, 1] <= ch - 0.5)
    return dst, g[keep]


def render2_cases(work: Path, n: int, size: int, styles: list[str]) -> list[Case]:
    folder = work / f"render2_{size}_{n}"
    if not (folder / "manifest.json").exists():
        write_set(folder, styles, n, (size, size))
    rows = json.loads((folder / "manifest.json").read_text())
    return [Case("render2", r["style"], folder / r["image"], "sem" if r["style"] in SEM_STYLES else "om", read_circles(folder / r["circles"]))
            for r in rows if r["style"] in styles]  # fmt: skip


def ampis_cases(data: Path, n: int) -> list[Case]:
    from srpsa.io.annotations import read_circle_sets

    base = data / "ampis_powder_sem"
    sets = read_circle_sets(base / "annotations" / "via_powder_particle_masks_training.json")
    return [Case("real", "AMPIS SEM powder", base / "images" / name, "sem", gt) for name, gt in list(sets.items())[:n]]


def trackpy_cases(data: Path, n: int) -> list[Case]:
    frames = sorted((data / "trackpy_brightfield" / "brightfield").glob("bf_*.png"))[:n]
    d_px = TRACKPY_NOMINAL_UM / TRACKPY_UM_PER_PX
    return [Case("real", "trackpy latex 2.12 um", f, "om", None, d_px) for f in frames]


def iso_cases(data: Path, sizes: list[float], crop: int, work: Path) -> list[Case]:
    out = []
    for s in sizes:
        stem = data / "iso_tr19672" / f"monodisperse_n100_{s:g}px"
        gt = np.loadtxt(f"{stem}.csv", delimiter=",", skiprows=1, usecols=(0, 1, 2), ndmin=2)
        path, g = _crop(Path(f"{stem}.png"), gt, crop, work / "iso")
        out.append(Case("real", f"ISO TR 19672 {s:g} px", path, "om", g))
    return out


IDEAL_SEED = 910_000_000  # held out: no training run or threshold uses seeds >= 900,000,000


def ideal_cases(work: Path, sizes: list[float], side: int = 1024) -> list[Case]:
    """Dense ideal-disk reference images (the ISO TR 19672 idea at a packing the ISO frames lack): dark
    monodisperse disks, touching and clustered at an area fraction of 0.4, anti-aliased (render2's exact
    coverage), blurred by a 0.8 px Gaussian and with 2 % noise, as a camera would record a printed
    reference. Rendered by render2's layout and optics, never by srpsa.synth."""
    from PIL import Image
    from scipy import ndimage as ndi

    from render2.files import _atomic_bytes, circles_csv
    from render2.layout import LayoutSpec, place
    from render2.optics import coverage

    out = []
    folder = work / "ideal"
    folder.mkdir(parents=True, exist_ok=True)
    for d in sizes:
        img_path, csv_path = folder / f"ideal_{d:g}px.png", folder / f"ideal_{d:g}px.csv"
        if not (img_path.exists() and csv_path.exists()):
            rng = np.random.default_rng(IDEAL_SEED + int(round(10 * d)))
            spec = LayoutSpec(median_diameter=float(d), cv=0.01, area_fraction=0.4, cluster=0.3, d_min=1.0, d_max=1e4)
            circles = place(rng, (side, side), spec)
            cov = ndi.gaussian_filter(coverage(circles, (side, side)), 0.8)
            img = 225.0 - 190.0 * cov + rng.normal(0.0, 0.02 * 190.0, cov.shape)
            buf = io.BytesIO()
            Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).save(buf, format="PNG")
            _atomic_bytes(img_path, buf.getvalue())
            _atomic_bytes(csv_path, circles_csv(circles).encode())
        out.append(Case("render2", f"ideal disks {d:g} px", img_path, "om", read_circles(csv_path)))
    return out


def bead_cases(data: Path, n: int) -> list[Case]:
    """The hand-checked bead photos (benchmarks/labels/polymer_beads): whole photos, scored in their ROI."""
    rois = {}
    for line in (LABELS / "roi.csv").read_text().splitlines()[1:]:
        name, cx, cy, r = line.split(",")
        rois[name] = (float(cx), float(cy), float(r))
    out = []
    for csv in sorted(LABELS.glob("DSC*.csv"))[:n]:
        gt = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=(0, 1, 2), ndmin=2)
        src = data / "polymer_beads_om" / "monodisperse" / f"{csv.stem}.JPG"
        out.append(Case("real", "polymer beads (checked labels)", src, "om", gt, roi=rois[csv.stem]))
    return out


def restrict_to_roi(gt: np.ndarray, pred: np.ndarray, roi: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Don't-care outside the ROI, like the image border: truth counts if centred inside; a prediction is
    dropped if it matches truth centred outside, or is unmatched and centred outside (labels extend a band
    beyond the ROI so that a bead straddling its edge is matched, not counted twice)."""
    from srpsa.evaluation.matching import match_circles

    cx, cy, r = roi
    inside = lambda c: np.hypot(c[:, 0] - cx, c[:, 1] - cy) <= r  # noqa: E731
    m = match_circles(gt, pred)
    keep = inside(pred)
    keep[m.pred_idx] = inside(gt[m.gt_idx])
    return gt[inside(gt)], pred[keep]
