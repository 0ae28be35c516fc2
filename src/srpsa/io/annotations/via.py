"""VGG Image Annotator 2 files: a project (``_via_img_metadata``) or its exported annotations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.io.annotations.common import HALF_PIXEL, Malformed, Skipped, as_list, box_to_circle, get, num, polygon_to_circle, stack

def _region(region: Any, where: str, skipped: Skipped) -> tuple[float, float, float] | None:
    shape = get(region, "shape_attributes", where)
    name = get(shape, "name", f"{where}.shape_attributes")
    w = f"{where}.shape_attributes"
    if name == "circle":
        cx, cy = num(get(shape, "cx", w), f"{w}.cx"), num(get(shape, "cy", w), f"{w}.cy")
        return cx - HALF_PIXEL, cy - HALF_PIXEL, num(get(shape, "r", w), f"{w}.r")
    if name == "ellipse":
        rx, ry = num(get(shape, "rx", w), f"{w}.rx"), num(get(shape, "ry", w), f"{w}.ry")
        cx, cy = num(get(shape, "cx", w), f"{w}.cx"), num(get(shape, "cy", w), f"{w}.cy")
        return cx - HALF_PIXEL, cy - HALF_PIXEL, math.sqrt(abs(rx * ry))  # area-equivalent radius
    if name == "rect":
        return box_to_circle(*(num(get(shape, k, w), f"{w}.{k}") for k in ("x", "y", "width", "height")))
    if name == "polygon":
        xs = [num(v, f"{w}.all_points_x") for v in as_list(get(shape, "all_points_x", w), f"{w}.all_points_x")]
        ys = [num(v, f"{w}.all_points_y") for v in as_list(get(shape, "all_points_y", w), f"{w}.all_points_y")]
        if len(xs) != len(ys):
            raise Malformed(f"{w}: all_points_x and all_points_y differ in length")
        circle = polygon_to_circle(xs, ys)
        if circle is None:
            skipped.add("degenerate polygons")
            return None
        return circle[0] - HALF_PIXEL, circle[1] - HALF_PIXEL, circle[2]
    skipped.add(f"{name} regions")
    return None


def read(data: Any, path: Path) -> dict[str, np.ndarray]:
    # A VIA 2 project has the per-image annotations under "_via_img_metadata"; "Export annotations
    # (as json)" writes that mapping alone.
    entries = data["_via_img_metadata"] if isinstance(data, dict) and "_via_img_metadata" in data else data
    if not isinstance(entries, dict):
        raise Malformed("top level is not a JSON object of images")
    skipped = Skipped()
    sets: dict[str, list[tuple[float, float, float]]] = {}
    for key, entry in entries.items():
        where = f"image {key!r}"
        filename = str(get(entry, "filename", where))
        rows = sets.setdefault(filename, [])
        for k, region in enumerate(as_list(get(entry, "regions", where), f"{where}.regions")):
            circle = _region(region, f"{where}.regions[{k}]", skipped)
            if circle is not None:
                rows.append(circle)
    skipped.warn(path)
    return {name: stack(rows) for name, rows in sets.items()}


def entry(name: str, circles: np.ndarray, image_path: Path | None) -> tuple[str, dict[str, Any]]:
    # VIA keys an image by filename + file size in bytes; -1 is VIA's own value for an unknown size.
    size = image_path.stat().st_size if image_path is not None and image_path.is_file() else -1
    regions = [{"shape_attributes": {"name": "circle", "cx": x + HALF_PIXEL, "cy": y + HALF_PIXEL, "r": r},
                "region_attributes": {}} for x, y, r in circles.tolist()]
    return f"{name}{size}", {"filename": name, "size": size, "regions": regions, "file_attributes": {}}
