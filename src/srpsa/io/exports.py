"""Interchange files for other tools: ImageJ/Fiji ROI sets and Results tables, label images, QuPath GeoJSON.

``srpsa analyze --export imagej-roi,labels,geojson,imagej-csv`` writes, next to particles.csv:

* ``<stem>_rois.zip``: one oval ROI per particle named by its id (``roifile``; Fiji's ROI Manager opens it);
* ``<stem>_labels.tif``: label image (label = particle id, 0 = background; uint16, uint32 above 65535
  particles), with ImageJ calibration (pixel size and unit) in the TIFF (``tifffile``);
* ``<stem>.geojson``: QuPath-compatible FeatureCollection, one detection per particle, the circle as a
  polygon and the particle table's numbers as ``measurements``;
* ``<stem>_results.csv``: an ImageJ "Results"-style table in um (px when uncalibrated).

ImageJ and QuPath put the origin at the top-left *corner* of the top-left pixel; srpsa puts pixel centres
at integer coordinates (docs/formats.md), so positions are shifted by +0.5 px on the way out.
Every file is written through a temporary file and renamed (srpsa.io.atomic).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_open, atomic_path, atomic_write_text

EXPORTS = ("imagej-roi", "labels", "geojson", "imagej-csv")
#: srpsa coordinates -> ImageJ/QuPath coordinates (corner origin).
CORNER_SHIFT = 0.5
_POLYGON_VERTICES = 64


def parse_exports(text: str | None) -> tuple[str, ...]:
    """``"imagej-roi,labels"`` -> ("imagej-roi", "labels"); unknown names are an error naming --export."""
    if not text:
        return ()
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in EXPORTS]
    if bad:
        raise InputError(f"--export: unknown format(s) {', '.join(bad)}; choose from {', '.join(EXPORTS)}")
    return names


def _circles(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids = table["id"].to_numpy(dtype=np.int64)
    return ids, table["x_px"].to_numpy(float), table["y_px"].to_numpy(float), table["r_px"].to_numpy(float)


def write_imagej_rois(path: Path, table: pd.DataFrame) -> Path:
    """One sub-pixel oval ROI per particle, named by particle id, in a ZIP Fiji's ROI Manager opens."""
    from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi, roiwrite

    rois = []
    for pid, x, y, r in zip(*_circles(table)):
        left, top = x - r + CORNER_SHIFT, y - r + CORNER_SHIFT
        roi = ImagejRoi(
            roitype=ROI_TYPE.OVAL, version=228, name=str(int(pid)),
            left=int(math.floor(left)), top=int(math.floor(top)),
            right=int(math.ceil(left + 2 * r)), bottom=int(math.ceil(top + 2 * r)),
            options=ROI_OPTIONS.SUB_PIXEL_RESOLUTION, xd=float(left), yd=float(top), widthd=float(2 * r), heightd=float(2 * r),
        )
        rois.append(roi)
    with atomic_path(path) as tmp:
        if rois:
            roiwrite(tmp, rois, mode="w")
        else:  # an empty but valid ZIP: no particles
            import zipfile

            zipfile.ZipFile(tmp, "w").close()
    return path


def label_image(table: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Label image: each pixel whose centre lies inside a circle gets that particle's id. Larger circles
    are painted first, so a small particle on a large one stays visible."""
    ids, xs, ys, rs = _circles(table)
    dtype = np.uint16 if (len(ids) == 0 or ids.max() <= np.iinfo(np.uint16).max) else np.uint32
    labels = np.zeros(shape[:2], dtype=dtype)
    h, w = shape[:2]
    for k in np.argsort(-rs, kind="stable"):
        x, y, r = xs[k], ys[k], rs[k]
        x0, x1 = max(0, int(math.ceil(x - r))), min(w - 1, int(math.floor(x + r)))
        y0, y1 = max(0, int(math.ceil(y - r))), min(h - 1, int(math.floor(y + r)))
        if x1 < x0 or y1 < y0:
            continue
        yy, xx = np.ogrid[y0 : y1 + 1, x0 : x1 + 1]
        inside = (xx - x) ** 2 + (yy - y) ** 2 < r * r
        labels[y0 : y1 + 1, x0 : x1 + 1][inside] = ids[k]
    return labels


def write_labels(path: Path, table: pd.DataFrame, shape: tuple[int, int], pixel_size_um: float | None) -> Path:
    """The label image as an ImageJ TIFF with the pixel size (um) when calibrated."""
    import tifffile

    labels = label_image(table, shape)
    if labels.dtype == np.uint16:
        kwargs: dict = {"imagej": True, "metadata": {"axes": "YX", **({"unit": "um"} if pixel_size_um else {})}}
        if pixel_size_um:  # ImageJ reads px per unit from the TIFF resolution and the unit from its metadata
            kwargs["resolution"] = (1.0 / pixel_size_um, 1.0 / pixel_size_um)
    else:  # ImageJ files hold no 32-bit integers: a plain TIFF, calibrated in px per cm
        kwargs = {"compression": "zlib"}
        if pixel_size_um:
            kwargs.update(resolution=(1e4 / pixel_size_um, 1e4 / pixel_size_um), resolutionunit="CENTIMETER")
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels, **kwargs)
    return path


def _num(v: object) -> float | int | str | None:
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def geojson_features(table: pd.DataFrame, pixel_size_um: float | None) -> dict:
    """QuPath-style FeatureCollection: one detection per particle (polygon of the circle, in px with the
    corner origin), the table's numbers as ``measurements`` and the shape flag as classification."""
    t = np.linspace(0.0, 2.0 * np.pi, _POLYGON_VERTICES, endpoint=False)
    features = []
    numeric = [c for c in table.columns if c not in ("flag",) and pd.api.types.is_numeric_dtype(table[c])]
    for _, row in table.iterrows():
        x, y, r = row["x_px"] + CORNER_SHIFT, row["y_px"] + CORNER_SHIFT, row["r_px"]
        ring = np.column_stack([x + r * np.cos(t), y + r * np.sin(t)]).round(3).tolist()
        ring.append(ring[0])
        measurements = {c: _num(row[c]) for c in numeric}
        measurements = {k: v for k, v in measurements.items() if v is not None}
        if pixel_size_um:
            measurements["area_um2"] = float(math.pi * (r * pixel_size_um) ** 2)
        props = {"objectType": "detection", "name": f"particle {int(row['id'])}", "measurements": measurements}
        if "flag" in table.columns:
            props["classification"] = {"name": str(row["flag"])}
        features.append({"type": "Feature", "id": str(int(row["id"])), "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: Path, table: pd.DataFrame, pixel_size_um: float | None) -> Path:
    atomic_write_text(path, json.dumps(geojson_features(table, pixel_size_um), separators=(",", ":")))
    return path


def imagej_results(table: pd.DataFrame, pixel_size_um: float | None) -> pd.DataFrame:
    """ImageJ "Results"-style columns. Area, X, Y, Major, Minor are those of the circle (as ImageJ measures
    an oval ROI); Circ., AR, Round, Solidity, Feret, MinFeret come from the particle's segmented outline
    (srpsa.psd.shape) when the table has them."""
    s = pixel_size_um or 1.0
    r = table["r_px"].to_numpy(float) * s
    out = pd.DataFrame({
        " ": np.arange(1, len(table) + 1),
        "Label": table["id"].astype(int).astype(str),
        "Area": np.pi * r * r,
        "X": (table["x_px"].to_numpy(float) + CORNER_SHIFT) * s,
        "Y": (table["y_px"].to_numpy(float) + CORNER_SHIFT) * s,
        "Major": 2 * r,
        "Minor": 2 * r,
        "Angle": 0.0,
    })
    if "circularity" in table.columns:
        ar = table["aspect_ratio"].to_numpy(float)
        out["Circ."] = table["circularity"].to_numpy(float)
        out["Feret"] = table["feret_max_px"].to_numpy(float) * s
        out["MinFeret"] = table["feret_min_px"].to_numpy(float) * s
        out["AR"] = ar
        out["Round"] = 1.0 / ar
        out["Solidity"] = table["solidity"].to_numpy(float)
        out["Flag"] = table["flag"].astype(str)
    out["Edge"] = table["edge"].astype(int)
    return out


def write_imagej_csv(path: Path, table: pd.DataFrame, pixel_size_um: float | None) -> Path:
    with atomic_open(path, "w", newline="") as fh:
        imagej_results(table, pixel_size_um).to_csv(fh, index=False, float_format="%.4f")
    return path


def write_exports(folder: Path, stem: str, table: pd.DataFrame, shape: tuple[int, int], pixel_size_um: float | None,
                  formats: tuple[str, ...] | list[str]) -> list[Path]:
    """Write the requested interchange files into ``folder``; returns their paths."""
    folder = Path(folder)
    written = []
    for name in formats:
        if name == "imagej-roi":
            written.append(write_imagej_rois(folder / f"{stem}_rois.zip", table))
        elif name == "labels":
            written.append(write_labels(folder / f"{stem}_labels.tif", table, shape, pixel_size_um))
        elif name == "geojson":
            written.append(write_geojson(folder / f"{stem}.geojson", table, pixel_size_um))
        elif name == "imagej-csv":
            written.append(write_imagej_csv(folder / f"{stem}_results.csv", table, pixel_size_um))
        else:
            raise InputError(f"--export: unknown format {name}; choose from {', '.join(EXPORTS)}")
    return written
