"""COCO files: many images, each particle a bounding box (read as the box's circle, written as the circle's box)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.io.annotations.common import HALF_PIXEL, LABEL, Malformed, as_list, box_to_circle, get, num, stack

def read(data: Any, path: Path) -> dict[str, np.ndarray]:
    names: dict[Any, str] = {}
    sets: dict[str, list[tuple[float, float, float]]] = {}
    for k, image in enumerate(as_list(get(data, "images", "top level"), "images")):
        image_id = get(image, "id", f"images[{k}]")
        names[image_id] = str(get(image, "file_name", f"images[{k}]"))
        sets.setdefault(names[image_id], [])
    crowd = 0
    for k, ann in enumerate(as_list(get(data, "annotations", "top level"), "annotations")):
        where = f"annotations[{k}]"
        image_id = get(ann, "image_id", where)
        if image_id not in names:
            raise Malformed(f"{where}.image_id {image_id!r} is not in images")
        if ann.get("iscrowd", 0):
            crowd += 1  # a crowd region covers many objects: not one particle
            continue
        box = as_list(get(ann, "bbox", where), f"{where}.bbox")
        if len(box) != 4:
            raise Malformed(f"{where}.bbox needs 4 numbers [x, y, w, h], got {len(box)}")
        x, y, w, h = (num(v, f"{where}.bbox") for v in box)
        sets[names[image_id]].append(box_to_circle(x, y, w, h))
    if crowd:
        warnings.warn(f"{path}: skipped {crowd} crowd annotations (iscrowd=1)", UserWarning, stacklevel=3)
    return {name: stack(rows) for name, rows in sets.items()}


def document(sets: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, int] | None]) -> dict[str, Any]:
    images, annotations = [], []
    ann_id = 0
    for image_id, (name, circles) in enumerate(sets.items(), start=1):
        shape = shapes.get(name)
        images.append({"id": image_id, "file_name": name,
                       "width": shape[1] if shape else None, "height": shape[0] if shape else None})
        for x, y, r in circles.tolist():
            ann_id += 1
            # Circle centre x (pixel-centre coords) -> box corner x + 0.5 - r in corner-origin coords.
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": 1,
                                "bbox": [x + HALF_PIXEL - r, y + HALF_PIXEL - r, 2 * r, 2 * r],
                                "area": math.pi * r * r, "iscrowd": 0})
    return {"info": {"description": "circles written by srpsa"}, "images": images,
            "annotations": annotations, "categories": [{"id": 1, "name": LABEL}]}
