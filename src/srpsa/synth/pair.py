"""One simulated OM/SEM pair: scene, misregistration, fiducials, both renders, ground truth, files.

Coordinates follow docs/design.md: x = column, y = row, pixel centres at integer coordinates. The slide
frame is the OM pixel grid. The SEM field is the same slide seen at ``sem_scale`` times finer pixels
through a random affine (rotation, scale, shear, translation about the image centres), so

    (x_sem, y_sem, 1) = transform @ (x_om, y_om, 1).

With misregistration disabled the transform is the pure scale about the centres, which maps pixel
edges onto pixel edges: x_sem = s * (x_om + 0.5) - 0.5.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from srpsa import __version__
from srpsa.errors import InputError
from srpsa.io.atomic import atomic_write_bytes, atomic_write_text
from srpsa.synth.config import SynthConfig, resolve
from srpsa.synth.layout import Layout, make_layout
from srpsa.synth.om import render_om
from srpsa.synth.sem import render_sem

GT_COLUMNS = [
    "id", "x_px", "y_px", "r_px", "x_sem_px", "y_sem_px", "r_sem_px", "d_um", "z_um", "edge", "edge_sem", "in_sem",
]  # fmt: skip
CSV_COLUMNS = ["id", "x_px", "y_px", "r_px", "d_um", "z_um", "edge"]


@dataclass
class SynthPair:
    """A simulated OM image, the SEM image of the same field, and their exact ground truth.

    ``gt`` has one row per particle visible in the OM image (``edge`` = cut by the OM border), with
    its SEM coordinates; ``gt_sem`` the same columns for every particle visible in the SEM image
    (``edge_sem`` = cut by the SEM border). ``r_sem_px`` is the equal-area radius (r * sqrt|det A|).
    """

    om: np.ndarray
    sem: np.ndarray
    gt: pd.DataFrame
    gt_sem: pd.DataFrame
    transform: np.ndarray
    fiducials_om: np.ndarray
    fiducials_sem: np.ndarray
    pixel_size_om_um: float
    pixel_size_sem_um: float
    params: dict[str, Any] = field(default_factory=dict)


def derive_seed(seed: int, index: int) -> int:
    """Independent per-image seed from a run seed and the image index (SeedSequence spawning)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _apply(transform: np.ndarray, xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, float).reshape(-1, 2)
    return xy @ transform[:2, :2].T + transform[:2, 2]


def sample_transform(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float], tuple[int, int]]:
    """Draw the OM->SEM affine of a resolved config. Returns (3x3, the drawn values, SEM shape)."""
    s = float(cfg.sem.sem_scale)
    h, w = cfg.height, cfg.width
    hs, ws = int(round(h * s)), int(round(w * s))
    mis = cfg.misregistration
    if mis.enabled:
        rot = rng.uniform(-1, 1) * float(mis.rotation_deg)
        scale = 1.0 + rng.uniform(-1, 1) * float(mis.scale)
        shear = rng.uniform(-1, 1) * float(mis.shear)
        tx, ty = rng.uniform(-1, 1, 2) * float(mis.translation) * np.array([ws, hs])
    else:
        rot, scale, shear, tx, ty = 0.0, 1.0, 0.0, 0.0, 0.0
    c, si = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    a = s * scale * np.array([[c, -si], [si, c]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    c_om = np.array([(w - 1) / 2, (h - 1) / 2])
    c_sem = np.array([(ws - 1) / 2, (hs - 1) / 2])
    t = c_sem + np.array([tx, ty]) - a @ c_om
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = a, t
    drawn = {"rotation_deg": rot, "scale": scale, "shear": shear, "translation_x_px": tx, "translation_y_px": ty}
    return m, drawn, (hs, ws)


def place_fiducials(
    cfg: SynthConfig, transform: np.ndarray, sem_shape: tuple[int, int], arm: float, width: float
) -> np.ndarray:
    """Cross centres (OM px) near the corners (then edge midpoints), inside both fields.

    Each starts ``inset`` in from its corner (at least one arm plus a width) and is walked towards the
    image centre until the whole cross lies inside the SEM field too.
    """
    n = int(cfg.fiducials.count)
    if n <= 0 or cfg.fiducials.prob <= 0:
        return np.zeros((0, 2))
    h, w = cfg.height, cfg.width
    d = max(float(cfg.fiducials.inset) * min(h, w), arm + width + 2)
    spots = [(d, d), (w - 1 - d, d), (w - 1 - d, h - 1 - d), (d, h - 1 - d),
             ((w - 1) / 2, d), (w - 1 - d, (h - 1) / 2), ((w - 1) / 2, h - 1 - d), (d, (h - 1) / 2)]  # fmt: skip
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    k = math.sqrt(abs(np.linalg.det(transform[:2, :2])))
    hs, ws = sem_shape
    out = []
    for p in spots[:n]:
        p = np.array(p, float)
        for _ in range(50):
            q = _apply(transform, p)[0]
            margin = (arm + width) * k * 1.5
            if margin <= q[0] <= ws - 1 - margin and margin <= q[1] <= hs - 1 - margin:
                break
            p = p + 0.05 * (centre - p)
        out.append(p)
    return np.array(out)


def _visible(xy: np.ndarray, r: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(disc intersects the image, disc is cut by the image border) for an image of h x w pixels."""
    lo, hx, hy = -0.5, w - 0.5, h - 0.5
    nx = np.clip(xy[:, 0], lo, hx)
    ny = np.clip(xy[:, 1], lo, hy)
    inside = np.hypot(xy[:, 0] - nx, xy[:, 1] - ny) < r
    cut = (xy[:, 0] - r < lo) | (xy[:, 0] + r > hx) | (xy[:, 1] - r < lo) | (xy[:, 1] + r > hy)
    return inside, cut


def _ground_truth(layout: Layout, transform: np.ndarray, om_shape: tuple[int, int], sem_shape: tuple[int, int]) -> pd.DataFrame:
    k = math.sqrt(abs(np.linalg.det(transform[:2, :2])))
    xs = _apply(transform, layout.xy)
    in_om, edge = _visible(layout.xy, layout.r_px, *om_shape)
    in_sem, edge_sem = _visible(xs, layout.r_px * k, *sem_shape)
    df = pd.DataFrame(
        {
            "id": np.arange(len(layout), dtype=np.int64),
            "x_px": layout.xy[:, 0],
            "y_px": layout.xy[:, 1],
            "r_px": layout.r_px,
            "x_sem_px": xs[:, 0],
            "y_sem_px": xs[:, 1],
            "r_sem_px": layout.r_px * k,
            "d_um": layout.d_um,
            "z_um": layout.z_um,
            "edge": edge.astype(np.int64),
            "edge_sem": edge_sem.astype(np.int64),
            "in_sem": in_sem.astype(np.int64),
        }
    )
    df["_in_om"] = in_om
    return df


def _as_rng(seed: int | np.random.Generator) -> tuple[np.random.Generator, int | None]:
    if isinstance(seed, np.random.Generator):
        return seed, None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed)), int(seed)
    raise InputError(f"seed must be a non-negative integer, got {seed!r}")


def make_pair(cfg: SynthConfig, seed: int | np.random.Generator) -> SynthPair:
    """Simulate one OM/SEM pair from ``cfg`` (ranges and choices are drawn here). Same seed, same pair."""
    rng, seed_int = _as_rng(seed)
    r = resolve(cfg, rng)
    if float(r.size.mean_px) > 0:
        if float(r.om.samples_per_resolution) > 0:
            # A camera matched to the optics: the pixel is a fixed fraction of the resolution
            # lambda / NA; the particles' physical size then follows from their size in pixels.
            r.om.pixel_size_um = float(r.om.wavelength_um) / (float(r.om.samples_per_resolution) * float(r.om.na))
            r.size.mean_um = float(r.size.mean_px) * r.om.pixel_size_um
        else:  # magnification chosen so that the mean particle spans mean_px
            r.om.pixel_size_um = float(r.size.mean_um) / float(r.size.mean_px)
    pix = float(r.om.pixel_size_um)
    h, w = r.height, r.width
    transform, drawn, sem_shape = sample_transform(r, rng)
    k = math.sqrt(abs(np.linalg.det(transform[:2, :2])))

    mean_d_px = float(r.size.mean_um) / pix
    arm = float(r.fiducials.arm_um) / pix if float(r.fiducials.arm_um) > 0 else 3.0 * mean_d_px
    arm = min(arm, 0.12 * min(h, w))
    width = float(r.fiducials.width_um) / pix if float(r.fiducials.width_um) > 0 else 0.6 * mean_d_px
    width = float(np.clip(width, 3.0, max(arm / 2.5, 3.0)))
    if float(r.fiducials.prob) < 1.0 and rng.random() >= float(r.fiducials.prob):
        r.fiducials.count = 0  # recorded in params: this image has no markers
    fid_om = place_fiducials(r, transform, sem_shape, arm, width)
    boxes = np.array([b for c in fid_om for b in ((c[0], c[1], arm, width / 2), (c[0], c[1], width / 2, arm))])

    # Scene region: the OM field and the part of the slide the SEM sees, plus a margin of about one
    # large particle so that border-cut particles are as dense as interior ones.
    inv = np.linalg.inv(transform)
    hs, ws = sem_shape
    corners_sem = _apply(inv, [[-0.5, -0.5], [ws - 0.5, -0.5], [ws - 0.5, hs - 0.5], [-0.5, hs - 0.5]])
    pts = np.vstack([corners_sem, [[-0.5, -0.5], [w - 0.5, h - 0.5]]])
    big = float(r.size.mode2_ratio) if r.size.distribution == "bimodal" else 1.0
    margin = 0.5 * mean_d_px * big * (1.0 + 2.0 * float(r.size.cv_percent) / 100.0)
    bounds = (pts[:, 0].min() - margin, pts[:, 1].min() - margin, pts[:, 0].max() + margin, pts[:, 1].max() + margin)
    layout = make_layout(r.size, r.layout, pix, bounds, rng, exclusions=boxes)

    df = _ground_truth(layout, transform, (h, w), sem_shape)
    visible = df["_in_om"].to_numpy() | df["in_sem"].to_numpy().astype(bool)
    layout = layout.subset(visible)  # particles outside both images cannot matter
    df = df[visible].reset_index(drop=True)
    df["id"] = np.arange(len(df), dtype=np.int64)

    ref_r_um = float(r.size.mean_um) / 2.0
    om_img, om_derived = render_om(
        layout, r.om, (h, w), rng, fid_om, arm, width, float(r.fiducials.om_transmission), ref_r_um
    )
    sem_img = render_sem(
        layout, r.sem, pix, transform, sem_shape, rng, fid_om, arm, width, float(r.fiducials.sem_level), ref_r_um / pix
    )

    in_om = df.pop("_in_om").to_numpy()
    gt = df[in_om].reset_index(drop=True)
    gt_sem = df[df["in_sem"] == 1].reset_index(drop=True)
    params: dict[str, Any] = {
        "seed": seed_int,
        "config": r.to_dict(),
        "preset_config": cfg.to_dict(),
        "derived": {
            "pixel_size_om_um": pix,
            "pixel_size_sem_um": pix / k,
            "om_shape": [h, w],
            "sem_shape": list(sem_shape),
            "misregistration": drawn,
            "fiducial_arm_px": arm,
            "fiducial_width_px": width,
            "n_particles_om": int(len(gt)),
            "n_particles_sem": int(len(gt_sem)),
            "area_fraction_om": float(np.sum(np.pi * gt["r_px"] ** 2) / (h * w)),
            **om_derived,
        },
    }
    return SynthPair(
        om=om_img,
        sem=sem_img,
        gt=gt,
        gt_sem=gt_sem,
        transform=transform,
        fiducials_om=fid_om.reshape(-1, 2),
        fiducials_sem=_apply(transform, fid_om).reshape(-1, 2),
        pixel_size_om_um=pix,
        pixel_size_sem_um=pix / k,
        params=_jsonable(params),
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _png_bytes(img: np.ndarray) -> bytes:
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if u8.ndim == 3:
        u8 = np.ascontiguousarray(u8[..., ::-1])  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", u8, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def write_pair(pair: SynthPair, outdir: str | Path, stem: str) -> dict[str, str]:
    """Write the pair's images and tables and append (or replace) its entry in ``manifest.json``.

    Files: ``<stem>_om.png`` (8-bit gray or RGB), ``<stem>_sem.png``, ``<stem>_gt_om.csv`` and
    ``<stem>_gt_sem.csv`` (id, x_px, y_px, r_px, d_um, z_um, edge in that image's pixels),
    ``<stem>_transform.json``, ``<stem>_fiducials.csv``. Returns {kind: file name}.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "om": f"{stem}_om.png",
        "sem": f"{stem}_sem.png",
        "gt_om": f"{stem}_gt_om.csv",
        "gt_sem": f"{stem}_gt_sem.csv",
        "transform": f"{stem}_transform.json",
        "fiducials": f"{stem}_fiducials.csv",
    }
    atomic_write_bytes(out / files["om"], _png_bytes(pair.om))
    atomic_write_bytes(out / files["sem"], _png_bytes(pair.sem))
    atomic_write_text(out / files["gt_om"], _csv(pair.gt[CSV_COLUMNS]))
    sem_tab = pair.gt_sem[["id", "x_sem_px", "y_sem_px", "r_sem_px", "d_um", "z_um", "edge_sem"]]
    atomic_write_text(out / files["gt_sem"], _csv(sem_tab.set_axis(CSV_COLUMNS, axis=1)))
    tr = {
        "matrix": pair.transform.tolist(),
        "maps": "OM pixel (x, y, 1) -> SEM pixel (x, y, 1); x = column, y = row, pixel centres at integers",
        "om_shape": list(pair.om.shape[:2]),
        "sem_shape": list(pair.sem.shape[:2]),
        "pixel_size_om_um": pair.pixel_size_om_um,
        "pixel_size_sem_um": pair.pixel_size_sem_um,
        **pair.params.get("derived", {}).get("misregistration", {}),
    }
    atomic_write_text(out / files["transform"], json.dumps(_jsonable(tr), indent=1) + "\n")
    fid = pd.DataFrame(
        {
            "id": np.arange(len(pair.fiducials_om)),
            "x_om_px": pair.fiducials_om[:, 0],
            "y_om_px": pair.fiducials_om[:, 1],
            "x_sem_px": pair.fiducials_sem[:, 0],
            "y_sem_px": pair.fiducials_sem[:, 1],
        }
    )
    atomic_write_text(out / files["fiducials"], _csv(fid))

    manifest_path = out / "manifest.json"
    manifest: dict[str, Any] = {"generator": "srpsa.synth", "version": __version__, "pairs": []}
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest.get("pairs"), list):
                raise ValueError("no 'pairs' list")
        except (ValueError, OSError) as exc:
            raise InputError(f"existing {manifest_path} is not a srpsa synth manifest ({exc}); use another folder") from None
    manifest["pairs"] = [p for p in manifest["pairs"] if p.get("stem") != stem]
    manifest["pairs"].append({"stem": stem, "files": files, "params": pair.params})
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    return files
