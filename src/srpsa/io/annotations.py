"""Circle annotations: read and write CSV, VGG Image Annotator 2, LabelMe and COCO files.

srpsa circles are ``(x, y, r)`` in pixels with pixel centres at integer coordinates (pixel (row i,
col j) covers x in [j - 0.5, j + 0.5]). VIA, LabelMe and COCO store continuous image coordinates in
which the top-left *corner* of the image is (0, 0), so pixel j covers [j, j + 1]: a centre read from
them has 0.5 subtracted, and 0.5 is added on writing. Radii need no shift. CSV files hold srpsa's own
coordinates unchanged. Shapes other than circles are reduced to circles (documented in
docs/formats.md): polygons to the area-equivalent circle at their centroid, ellipses to the
area-equivalent circle, boxes to the circle with r = (w + h) / 4.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_open, atomic_write_text
from srpsa.io.files import check_file

#: Annotation formats understood by :func:`read_circles` / :func:`write_circles`.
FORMATS: tuple[str, ...] = ("csv", "via", "labelme", "coco")

#: Offset added to srpsa coordinates to get the corner-origin coordinates of VIA, LabelMe and COCO.
HALF_PIXEL = 0.5

# Column names accepted in CSV files: the short form and srpsa's own particles.csv form.
_CSV_COLUMNS: tuple[tuple[str, str, str], ...] = (("x", "y", "r"), ("x_px", "y_px", "r_px"))
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_LABEL = "particle"


class _Malformed(Exception):
    """A structural problem inside an annotation file; turned into InputError naming the file."""


def _empty() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.float64)


def _stack(rows: list[tuple[float, float, float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _num(value: Any, where: str) -> float:
    """A finite float from a JSON value, or _Malformed naming where it was."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Malformed(f"{where} is {value!r}, not a number")
    try:
        v = float(value)
    except ValueError as exc:
        raise _Malformed(f"{where} is {value!r}, not a number") from exc
    if not math.isfinite(v):
        raise _Malformed(f"{where} is {value!r}, not a finite number")
    return v


def _get(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise _Malformed(f"{where} is not a JSON object")
    if key not in mapping:
        raise _Malformed(f"{where} has no {key!r}")
    return mapping[key]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Malformed(f"{where} is not a list")
    return value


# ------------------------------------------------------------------------------ shape -> circle
def polygon_to_circle(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float] | None:
    """Area-equivalent circle of a simple polygon, centred on the polygon's centroid.

    Uses the shoelace formula for the area and the matching centroid formula, in the coordinates given
    (no half-pixel shift). Hand-written because ``cv2.moments`` computes the same in float32 only,
    which loses precision for coordinates of a few thousand pixels.

    Parameters
    ----------
    xs, ys
        Vertex coordinates, in order (the closing vertex may be repeated or not).

    Returns
    -------
    tuple of float or None
        ``(cx, cy, r)`` with ``pi r**2 = |area|``; None for fewer than three vertices or zero area.
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        return None
    # Work relative to the first vertex: the cross products stay small, so little cancellation.
    x0, y0 = x[0], y[0]
    x, y = x - x0, y - y0
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area2 = cross.sum()  # twice the signed area
    if area2 == 0 or not math.isfinite(area2):
        return None
    cx = ((x + xn) * cross).sum() / (3.0 * area2) + x0
    cy = ((y + yn) * cross).sum() / (3.0 * area2) + y0
    r = math.sqrt(abs(area2) / 2.0 / math.pi)
    return float(cx), float(cy), float(r)


def _box_to_circle(x: float, y: float, w: float, h: float) -> tuple[float, float, float]:
    """Corner-origin box [x, y, w, h] -> srpsa circle: centre of the box, r = mean half-side."""
    return x + w / 2.0 - HALF_PIXEL, y + h / 2.0 - HALF_PIXEL, (w + h) / 4.0


class _Skipped:
    """Counts regions that could not become circles, to warn once per file rather than per region."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def warn(self, path: Path) -> None:
        if self.counts:
            detail = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
            warnings.warn(f"{path}: skipped regions that are not circles or areas ({detail})", UserWarning,
                          stacklevel=4)


# -------------------------------------------------------------------------------------------- CSV
def _csv_separator(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    sep = _csv_separator(path)
    try:
        table = pd.read_csv(path, sep=sep, skipinitialspace=True, dtype=str, keep_default_na=False,
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from exc
    names = {str(c).strip().lower(): c for c in table.columns}
    for wanted in _CSV_COLUMNS:
        if all(n in names for n in wanted):
            cols = [names[n] for n in wanted]
            break
    else:
        raise InputError(f"{path}: CSV needs columns x,y,r or x_px,y_px,r_px (found: "
                         f"{', '.join(map(str, table.columns)) or 'none'})")
    values = np.empty((len(table), 3), dtype=np.float64)
    for j, col in enumerate(cols):
        numbers = pd.to_numeric(table[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            row = int(bad[0])
            # +2: one for the header line, one because rows count from 1 in editors.
            raise InputError(f"{path}: line {row + 2}, column {col!r}: {table[col].iloc[row]!r} is not a "
                             "finite number")
        values[:, j] = numbers
    _check_radii(values, path)
    return {"": values}


def _check_radii(circles: np.ndarray, path: Path) -> None:
    if circles.size and (circles[:, 2] < 0).any():
        i = int(np.flatnonzero(circles[:, 2] < 0)[0])
        raise InputError(f"{path}: circle {i + 1} has a negative radius ({circles[i, 2]!r})")


def _write_csv(path: Path, circles: np.ndarray) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=_csv_separator(path))
        writer.writerow(["x_px", "y_px", "r_px"])
        # csv writes floats with repr(), the shortest text that reads back to the same double.
        writer.writerows(circles.tolist())


# -------------------------------------------------------------------------------------------- VIA
def _via_region(region: Any, where: str, skipped: _Skipped) -> tuple[float, float, float] | None:
    shape = _get(region, "shape_attributes", where)
    name = _get(shape, "name", f"{where}.shape_attributes")
    w = f"{where}.shape_attributes"
    if name == "circle":
        cx, cy = _num(_get(shape, "cx", w), f"{w}.cx"), _num(_get(shape, "cy", w), f"{w}.cy")
        return cx - HALF_PIXEL, cy - HALF_PIXEL, _num(_get(shape, "r", w), f"{w}.r")
    if name == "ellipse":
        rx, ry = _num(_get(shape, "rx", w), f"{w}.rx"), _num(_get(shape, "ry", w), f"{w}.ry")
        cx, cy = _num(_get(shape, "cx", w), f"{w}.cx"), _num(_get(shape, "cy", w), f"{w}.cy")
        return cx - HALF_PIXEL, cy - HALF_PIXEL, math.sqrt(abs(rx * ry))  # area-equivalent radius
    if name == "rect":
        return _box_to_circle(*(_num(_get(shape, k, w), f"{w}.{k}") for k in ("x", "y", "width", "height")))
    if name == "polygon":
        xs = [_num(v, f"{w}.all_points_x") for v in _list(_get(shape, "all_points_x", w), f"{w}.all_points_x")]
        ys = [_num(v, f"{w}.all_points_y") for v in _list(_get(shape, "all_points_y", w), f"{w}.all_points_y")]
        if len(xs) != len(ys):
            raise _Malformed(f"{w}: all_points_x and all_points_y differ in length")
        circle = polygon_to_circle(xs, ys)
        if circle is None:
            skipped.add("degenerate polygons")
            return None
        return circle[0] - HALF_PIXEL, circle[1] - HALF_PIXEL, circle[2]
    skipped.add(f"{name} regions")
    return None


def _read_via(data: Any, path: Path) -> dict[str, np.ndarray]:
    # A VIA 2 project has the per-image annotations under "_via_img_metadata"; "Export annotations
    # (as json)" writes that mapping alone.
    entries = data["_via_img_metadata"] if isinstance(data, dict) and "_via_img_metadata" in data else data
    if not isinstance(entries, dict):
        raise _Malformed("top level is not a JSON object of images")
    skipped = _Skipped()
    sets: dict[str, list[tuple[float, float, float]]] = {}
    for key, entry in entries.items():
        where = f"image {key!r}"
        filename = str(_get(entry, "filename", where))
        rows = sets.setdefault(filename, [])
        for k, region in enumerate(_list(_get(entry, "regions", where), f"{where}.regions")):
            circle = _via_region(region, f"{where}.regions[{k}]", skipped)
            if circle is not None:
                rows.append(circle)
    skipped.warn(path)
    return {name: _stack(rows) for name, rows in sets.items()}


def _via_entry(name: str, circles: np.ndarray, image_path: Path | None) -> tuple[str, dict[str, Any]]:
    # VIA keys an image by filename + file size in bytes; -1 is VIA's own value for an unknown size.
    size = image_path.stat().st_size if image_path is not None and image_path.is_file() else -1
    regions = [{"shape_attributes": {"name": "circle", "cx": x + HALF_PIXEL, "cy": y + HALF_PIXEL, "r": r},
                "region_attributes": {}} for x, y, r in circles.tolist()]
    return f"{name}{size}", {"filename": name, "size": size, "regions": regions, "file_attributes": {}}


# ---------------------------------------------------------------------------------------- LabelMe
def _read_labelme(data: Any, path: Path) -> dict[str, np.ndarray]:
    skipped = _Skipped()
    rows: list[tuple[float, float, float]] = []
    for k, shape in enumerate(_list(_get(data, "shapes", "top level"), "shapes")):
        where = f"shapes[{k}]"
        kind = shape.get("shape_type", "polygon") if isinstance(shape, dict) else None  # LabelMe's default
        points = _list(_get(shape, "points", where), f"{where}.points")
        pts = []
        for i, p in enumerate(points):
            pair = _list(p, f"{where}.points[{i}]")
            if len(pair) != 2:
                raise _Malformed(f"{where}.points[{i}] is not an [x, y] pair")
            pts.append((_num(pair[0], f"{where}.points[{i}][0]"), _num(pair[1], f"{where}.points[{i}][1]")))
        if kind == "circle":
            if len(pts) != 2:
                raise _Malformed(f"{where}: a circle needs 2 points (centre, rim), got {len(pts)}")
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
            rows.append(_box_to_circle(min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1)))
        else:
            skipped.add(f"{kind} shapes")
    skipped.warn(path)
    image = data.get("imagePath") or ""
    return {Path(str(image)).name if image else "": _stack(rows)}


def _labelme_doc(circles: np.ndarray, image_ref: str, shape: tuple[int, int] | None) -> dict[str, Any]:
    shapes = [{"label": _LABEL, "points": [[x + HALF_PIXEL, y + HALF_PIXEL], [x + HALF_PIXEL + r, y + HALF_PIXEL]],
               "group_id": None, "description": "", "shape_type": "circle", "flags": {}}
              for x, y, r in circles.tolist()]
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_ref, "imageData": None,
            "imageHeight": shape[0] if shape else None, "imageWidth": shape[1] if shape else None}


# ------------------------------------------------------------------------------------------- COCO
def _read_coco(data: Any, path: Path) -> dict[str, np.ndarray]:
    names: dict[Any, str] = {}
    sets: dict[str, list[tuple[float, float, float]]] = {}
    for k, image in enumerate(_list(_get(data, "images", "top level"), "images")):
        image_id = _get(image, "id", f"images[{k}]")
        names[image_id] = str(_get(image, "file_name", f"images[{k}]"))
        sets.setdefault(names[image_id], [])
    crowd = 0
    for k, ann in enumerate(_list(_get(data, "annotations", "top level"), "annotations")):
        where = f"annotations[{k}]"
        image_id = _get(ann, "image_id", where)
        if image_id not in names:
            raise _Malformed(f"{where}.image_id {image_id!r} is not in images")
        if ann.get("iscrowd", 0):
            crowd += 1  # a crowd region covers many objects: not one particle
            continue
        box = _list(_get(ann, "bbox", where), f"{where}.bbox")
        if len(box) != 4:
            raise _Malformed(f"{where}.bbox needs 4 numbers [x, y, w, h], got {len(box)}")
        x, y, w, h = (_num(v, f"{where}.bbox") for v in box)
        sets[names[image_id]].append(_box_to_circle(x, y, w, h))
    if crowd:
        warnings.warn(f"{path}: skipped {crowd} crowd annotations (iscrowd=1)", UserWarning, stacklevel=3)
    return {name: _stack(rows) for name, rows in sets.items()}


def _coco_doc(sets: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, int] | None]) -> dict[str, Any]:
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
            "annotations": annotations, "categories": [{"id": 1, "name": _LABEL}]}


# --------------------------------------------------------------------------------- format choice
def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc


def _json_format(data: Any, path: Path) -> str:
    if isinstance(data, dict):
        if "_via_img_metadata" in data:
            return "via"
        if "images" in data and "annotations" in data:
            return "coco"
        if "shapes" in data:
            return "labelme"
        if all(isinstance(v, dict) and "filename" in v and "regions" in v for v in data.values()):
            return "via"  # VIA's exported annotations (an empty {} too: a project with no images)
    raise InputError(f"{path}: cannot tell the annotation format (expected VIA, LabelMe or COCO JSON)")


def _check_format(fmt: str) -> str:
    f = fmt.lower()
    if f not in FORMATS and f != "auto":
        raise InputError(f"annotation format {fmt!r} is not one of: auto, {', '.join(FORMATS)}")
    return f


def _read_sets(path: str | os.PathLike[str], fmt: str) -> tuple[dict[str, np.ndarray], str, Path]:
    fmt = _check_format(fmt)
    p = check_file(path, "annotation file")
    suffix = p.suffix.lower()
    if fmt == "csv" or (fmt == "auto" and suffix in _CSV_SUFFIXES):
        return _read_csv(p), "csv", p
    if fmt == "auto" and suffix != ".json":
        raise InputError(f"{p}: unknown annotation suffix {p.suffix or '(none)'!r} (expected .csv or .json; "
                         "or give the format)")
    data = _load_json(p)
    fmt = _json_format(data, p) if fmt == "auto" else fmt
    reader = {"via": _read_via, "labelme": _read_labelme, "coco": _read_coco}[fmt]
    try:
        sets = reader(data, p)
    except _Malformed as exc:
        raise InputError(f"{p}: malformed {fmt} annotation file ({exc})") from exc
    for circles in sets.values():
        _check_radii(circles, p)
    return sets, fmt, p


def read_circle_sets(path: str | os.PathLike[str], fmt: str = "auto") -> dict[str, np.ndarray]:
    """Read the circles of every image in an annotation file.

    Parameters
    ----------
    path
        CSV, VIA 2, LabelMe or COCO file.
    fmt
        ``"auto"`` (by suffix, then by JSON content), ``"csv"``, ``"via"``, ``"labelme"`` or ``"coco"``.

    Returns
    -------
    dict
        Image file name (as stored in the file; LabelMe: the base name of ``imagePath``; CSV: ``""``)
        -> float64 array (N, 3) of ``[x, y, r]`` in srpsa pixel-centre coordinates. COCO images without
        annotations are present with shape (0, 3).

    Raises
    ------
    InputError
        Missing/empty file, unknown format, invalid JSON/CSV, missing keys or non-numeric values.

    Warns
    -----
    UserWarning
        When regions that cannot be reduced to a circle (points, lines, degenerate polygons, COCO crowd
        regions) are skipped.
    """
    return _read_sets(path, fmt)[0]


def read_circles(path: str | os.PathLike[str], fmt: str = "auto", image_name: str | None = None) -> np.ndarray:
    """Read the circles of one image from an annotation file.

    Parameters
    ----------
    path
        CSV, VIA 2, LabelMe or COCO file.
    fmt
        ``"auto"``, ``"csv"``, ``"via"``, ``"labelme"`` or ``"coco"``.
    image_name
        Which image of a multi-image file (VIA, COCO) to return, matched on the file name (a path is
        reduced to its name when no stored name matches it exactly). Ignored for CSV and LabelMe, which
        hold one image. Needed when the file holds more than one image.

    Returns
    -------
    numpy.ndarray
        float64 (N, 3) ``[x, y, r]`` in srpsa pixel-centre coordinates.

    Raises
    ------
    InputError
        As :func:`read_circle_sets`, plus: several images and no ``image_name``, or ``image_name`` not found.
    """
    sets, fmt, p = _read_sets(path, fmt)
    if fmt in ("csv", "labelme"):
        return next(iter(sets.values()))
    if image_name is None:
        if len(sets) > 1:
            listed = ", ".join(list(sets)[:5]) + (", ..." if len(sets) > 5 else "")
            raise InputError(f"{p}: holds annotations for {len(sets)} images ({listed}); name the image")
        return next(iter(sets.values()), _empty())
    if image_name in sets:
        return sets[image_name]
    wanted = Path(image_name).name
    matches = [name for name in sets if Path(name).name == wanted or name.rsplit("/", 1)[-1] == wanted]
    if not matches:
        raise InputError(f"{p}: no annotations for image {wanted!r}")
    return np.concatenate([sets[m] for m in matches]) if len(matches) > 1 else sets[matches[0]]


# ------------------------------------------------------------------------------------------ write
def _as_circles(circles: Any, what: str = "circles") -> np.ndarray:
    arr = np.asarray(circles, dtype=np.float64)
    if arr.size == 0:
        return _empty()
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{what} must have shape (N, 3) = [x, y, r], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if (arr[:, 2] < 0).any():
        raise ValueError(f"{what} contain a negative radius")
    return arr


def _write_format(path: Path, fmt: str) -> str:
    fmt = _check_format(fmt)
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix == ".json":
        # JSON does not say which format; a format name in the file name does ("*_coco.json").
        stem = path.stem.lower()
        hits = [f for f in ("via", "labelme", "coco") if f in stem]
        if len(hits) == 1:
            return hits[0]
        raise InputError(f"{path}: cannot choose the JSON annotation format from the name; give one of "
                         "via, labelme, coco")
    raise InputError(f"{path}: unknown annotation suffix {path.suffix or '(none)'!r} (expected .csv or .json)")


def _image_shape(image_path: Path | None, image_shape: Sequence[int] | None) -> tuple[int, int] | None:
    if image_shape is not None:
        return int(image_shape[0]), int(image_shape[1])
    if image_path is not None and image_path.is_file():
        from srpsa.io.images import read_image_shape  # local: images is heavier and not needed for CSV

        return read_image_shape(image_path)
    return None


def _relative_ref(image: Path, annotation: Path) -> str:
    try:
        return os.path.relpath(image.resolve(), annotation.resolve().parent)
    except ValueError:  # Windows: image and annotation on different drives
        return str(image.resolve())


def _dump(path: Path, doc: Any) -> None:
    # json writes floats with repr(), so every coordinate reads back exactly.
    atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def write_circles(path: str | os.PathLike[str], circles: Any, fmt: str = "auto",
                  image_path: str | os.PathLike[str] | None = None,
                  image_shape: Sequence[int] | None = None) -> None:
    """Write the circles of one image.

    Parameters
    ----------
    path
        Output file (written atomically).
    circles
        Array-like (N, 3) ``[x, y, r]`` in srpsa pixel-centre coordinates.
    fmt
        ``"auto"`` (``.csv``/``.tsv``/``.txt`` -> CSV; ``.json`` -> the format named in the file name,
        e.g. ``*_coco.json``), ``"csv"``, ``"via"``, ``"labelme"`` or ``"coco"``.
    image_path
        The annotated image: its name is stored (LabelMe: the path relative to the JSON file) and, when
        it exists, its size (VIA) and shape (LabelMe, COCO). None stores an empty image name.
    image_shape
        ``(H, W)`` of the image, if known without reading it.

    Raises
    ------
    InputError
        Unknown format or suffix.
    ValueError
        If ``circles`` is not a finite (N, 3) array with non-negative radii.
    """
    out = Path(path)
    fmt = _write_format(out, fmt)
    arr = _as_circles(circles)
    img = Path(image_path) if image_path is not None else None
    if fmt == "csv":
        _write_csv(out, arr)
        return
    name = img.name if img is not None else ""
    shape = _image_shape(img, image_shape)
    if fmt == "labelme":
        # LabelMe resolves imagePath relative to the JSON file's folder.
        ref = _relative_ref(img, out) if img is not None else ""
        _dump(out, _labelme_doc(arr, Path(ref).as_posix() if ref else "", shape))
    elif fmt == "via":
        key, entry = _via_entry(name, arr, img)
        _dump(out, {key: entry})
    else:
        _dump(out, _coco_doc({name: arr}, {name: shape}))


def write_circle_sets(path: str | os.PathLike[str], sets: Mapping[str, Any], fmt: str = "auto",
                      image_dir: str | os.PathLike[str] | None = None,
                      image_shapes: Mapping[str, Sequence[int]] | None = None) -> None:
    """Write circles of several images into one VIA or COCO file.

    Parameters
    ----------
    path
        Output ``.json`` file (written atomically).
    sets
        Image file name -> array-like (N, 3) ``[x, y, r]`` in srpsa pixel-centre coordinates.
    fmt
        ``"auto"`` (from the file name), ``"via"`` or ``"coco"``.
    image_dir
        Folder holding the images, used to record their sizes (VIA) and shapes (COCO) when they exist.
    image_shapes
        Image file name -> ``(H, W)``, overriding what ``image_dir`` would give.

    Raises
    ------
    InputError
        Unknown format, or a single-image format (CSV, LabelMe) with several images.
    """
    out = Path(path)
    fmt = _write_format(out, fmt)
    arrays = {str(name): _as_circles(c, f"circles of {name}") for name, c in sets.items()}
    if fmt not in ("via", "coco"):
        if len(arrays) > 1:
            raise InputError(f"{out}: the {fmt} format holds one image; use via or coco for {len(arrays)} images")
        name, arr = next(iter(arrays.items()), ("", _empty()))
        image = Path(image_dir) / name if image_dir is not None and name else None
        shape = (image_shapes or {}).get(name)
        write_circles(out, arr, fmt, image_path=image, image_shape=shape)
        return
    folder = Path(image_dir) if image_dir is not None else None
    shapes: dict[str, tuple[int, int] | None] = {}
    if fmt == "via":
        doc = dict(_via_entry(name, arr, folder / name if folder is not None else None)
                   for name, arr in arrays.items())
        _dump(out, doc)
        return
    for name in arrays:
        given = (image_shapes or {}).get(name)
        shapes[name] = _image_shape(folder / name if folder is not None else None, given)
    _dump(out, _coco_doc(arrays, shapes))
