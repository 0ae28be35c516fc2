"""LabelMe files: one image per JSON file, circles as (centre, rim) point pairs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.io.annotations.common import HALF_PIXEL, LABEL, Malformed, Skipped, as_list, box_to_circle, get, num, polygon_to_circle, stack

def read(data: Any, path: Path) -> dict[str, np.ndarray]:
    skipped = Skipped()
    rows: list[tuple[float, float, float]] = []
    for k, shape in enumerate(as_list(get(data, "shapes", "top level"), "shapes")):
        where = f"shapes[{k}]"
        kind = shape.get("shape_type", "polygon") if isinstance(shape, dict) else None  # LabelMe's default
        points = as_list(get(shape, "points", where), f"{where}.points")
        pts = []
        for i, p in enumerate(points):
            pair = as_list(p, f"{where}.points[{i}]")
            if len(pair) != 2:
                raise Malformed(f"{where}.points[{i}] is not an [x, y] pair")
            pts.append((num(pair[0], f"{where}.points[{i}][0]"), num(pair[1], f"{where}.points[{i}][1]")))
        if kind == "circle":
            if len(pts) != 2:
                raise Malformed(f"{where}: a circle needs 2 points (centre, rim), got {len(pts)}")
            (cx, cy), (px, py) = pts
            rows.append((cx - HALF_PIXEL, cy - HALF_PIXEL, math.hypot(px - cx, py - cy)))
        elif kind == "polygon":
            circle = polygon_to_circle([p[0] for p in pts], [p[1] for p in pts])
            if circle is None:
                skipped.add("degenerate polygons")
            else:
                rows.append((circle[0] - HALF_PIXEL, circle[1] - HALF_PIXEL, circle[2]))
        elif kind == "rectangle" and len(pts) == 2:
            (x1, y1), (x2, y2) = pts
            rows.append(box_to_circle(min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1)))
        else:
            skipped.add(f"{kind} shapes")
    skipped.warn(path)
    image = data.get("imagePath") or ""
    return {Path(str(image)).name if image else "": stack(rows)}


def document(circles: np.ndarray, image_ref: str, shape: tuple[int, int] | None) -> dict[str, Any]:
    shapes = [{"label": LABEL, "points": [[x + HALF_PIXEL, y + HALF_PIXEL], [x + HALF_PIXEL + r, y + HALF_PIXEL]],
               "group_id": None, "description": "", "shape_type": "circle", "flags": {}}
              for x, y, r in circles.tolist()]
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_ref, "imageData": None,
            "imageHeight": shape[0] if shape else None, "imageWidth": shape[1] if shape else None}
