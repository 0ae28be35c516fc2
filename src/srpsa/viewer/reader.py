"""napari reader: an ``srpsa analyze`` output folder -> the image plus its particles as a Shapes layer.

A folder with ``summary.json`` and ``particles.csv`` (one image's results) gives two layers: the analysed
image (read again from the path in summary.json; the overlay.png when that file is gone, with a
warning in the layer's metadata) and one ellipse per particle with the particle table as ``features``
(so napari's feature table and colouring by ``flag`` work). A batch ``--out`` folder gives these for
each finished image. Coordinates need no shift: napari, like srpsa, puts pixel centres at integer
positions. Calibrated results are scaled to um.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

FLAG_COLOURS = {"ok": "lime", "non_round": "yellow", "agglomerate": "orange", "occluded": "magenta", "low_contrast": "cyan", "small": "white"}


def _result_folders(path: Path) -> list[Path]:
    if (path / "summary.json").is_file() and (path / "particles.csv").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/summary.json") if (p.parent / "particles.csv").is_file())


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader hook: a reader when ``path`` is an analysis folder, else None (napari tries others)."""
    if isinstance(path, list):
        path = path[0] if len(path) == 1 else ""
    p = Path(path) if path else None
    if p is None or not p.is_dir() or not _result_folders(p):
        return None
    return read_analysis


def ellipses(table: pd.DataFrame) -> list[np.ndarray]:
    """napari ellipse data (4 bounding-box corners, (row, col)) of each circle."""
    x, y, r = (table[c].to_numpy(float) for c in ("x_px", "y_px", "r_px"))
    return [np.array([[yi - ri, xi - ri], [yi - ri, xi + ri], [yi + ri, xi + ri], [yi + ri, xi - ri]]) for xi, yi, ri in zip(x, y, r)]


def particle_layer(table: pd.DataFrame, name: str, scale: tuple[float, float]) -> tuple:
    """LayerDataTuple of a Shapes layer with one ellipse per particle, coloured by shape flag."""
    if "flag" in table.columns:
        colours = [FLAG_COLOURS.get(str(f), "lime") for f in table["flag"]]
    else:
        colours = ["magenta" if e else "lime" for e in table["edge"]]
    meta = {"shape_type": "ellipse", "edge_color": colours or "lime", "face_color": "transparent", "edge_width": 1.5,
            "features": table.reset_index(drop=True), "name": name, "scale": scale}
    return (ellipses(table), meta, "shapes")


def _image_layer(folder: Path, summary: dict, scale: tuple[float, float]) -> tuple:
    from srpsa.errors import InputError
    from srpsa.io import read_image

    source = Path(str(summary.get("image", "")))
    meta = {"name": folder.name, "scale": scale, "metadata": {"srpsa_summary": summary}}
    try:
        loaded = read_image(source)
        data = loaded.rgb if loaded.rgb is not None else loaded.data
        meta["rgb"] = loaded.rgb is not None
    except (InputError, OSError):
        import imageio.v3 as iio

        data = iio.imread(folder / "overlay.png")
        meta["rgb"] = True
        meta["metadata"]["srpsa_warning"] = f"original image {source} not readable; showing overlay.png"
        # the overlay may be downscaled: stretch it over the analysed image's extent
        h, w = int(summary.get("height", data.shape[0])), int(summary.get("width", data.shape[1]))
        meta["scale"] = (scale[0] * h / data.shape[0], scale[1] * w / data.shape[1])
    return (data, meta, "image")


def read_analysis(path: str | list[str]) -> list[tuple]:
    """All layers of an analysis folder (see the module docstring)."""
    path = Path(path[0] if isinstance(path, list) else path)
    layers = []
    for folder in _result_folders(path):
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        px = summary.get("pixel_size_um") or 1.0
        scale = (float(px), float(px))
        table = pd.read_csv(folder / "particles.csv")
        layers.append(_image_layer(folder, summary, scale))
        layers.append(particle_layer(table, f"{folder.name} particles", scale))
    return layers
