"""Reading and writing circle annotations: choose the format (suffix, JSON content, file name), dispatch."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.errors import InputError
from srpsa.io.annotations import coco, csv_format, labelme, via
from srpsa.io.annotations.common import FORMATS, Malformed, as_circles, check_radii, empty
from srpsa.io.atomic import atomic_write_text
from srpsa.io.files import check_file

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
    if fmt == "csv" or (fmt == "auto" and suffix in csv_format.SUFFIXES):
        return csv_format.read(p), "csv", p
    if fmt == "auto" and suffix != ".json":
        raise InputError(f"{p}: unknown annotation suffix {p.suffix or '(none)'!r} (expected .csv or .json; "
                         "or give the format)")
    data = _load_json(p)
    fmt = _json_format(data, p) if fmt == "auto" else fmt
    reader = {"via": via.read, "labelme": labelme.read, "coco": coco.read}[fmt]
    try:
        sets = reader(data, p)
    except Malformed as exc:
        raise InputError(f"{p}: malformed {fmt} annotation file ({exc})") from exc
    for circles in sets.values():
        check_radii(circles, p)
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
        return next(iter(sets.values()), empty())
    if image_name in sets:
        return sets[image_name]
    wanted = Path(image_name).name
    matches = [name for name in sets if Path(name).name == wanted or name.rsplit("/", 1)[-1] == wanted]
    if not matches:
        raise InputError(f"{p}: no annotations for image {wanted!r}")
    return np.concatenate([sets[m] for m in matches]) if len(matches) > 1 else sets[matches[0]]


def _write_format(path: Path, fmt: str) -> str:
    fmt = _check_format(fmt)
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in csv_format.SUFFIXES:
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
    arr = as_circles(circles)
    img = Path(image_path) if image_path is not None else None
    if fmt == "csv":
        csv_format.write(out, arr)
        return
    name = img.name if img is not None else ""
    shape = _image_shape(img, image_shape)
    if fmt == "labelme":
        # LabelMe resolves imagePath relative to the JSON file's folder.
        ref = _relative_ref(img, out) if img is not None else ""
        _dump(out, labelme.document(arr, Path(ref).as_posix() if ref else "", shape))
    elif fmt == "via":
        key, entry = via.entry(name, arr, img)
        _dump(out, {key: entry})
    else:
        _dump(out, coco.document({name: arr}, {name: shape}))


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
    arrays = {str(name): as_circles(c, f"circles of {name}") for name, c in sets.items()}
    if fmt not in ("via", "coco"):
        if len(arrays) > 1:
            raise InputError(f"{out}: the {fmt} format holds one image; use via or coco for {len(arrays)} images")
        name, arr = next(iter(arrays.items()), ("", empty()))
        image = Path(image_dir) / name if image_dir is not None and name else None
        shape = (image_shapes or {}).get(name)
        write_circles(out, arr, fmt, image_path=image, image_shape=shape)
        return
    folder = Path(image_dir) if image_dir is not None else None
    shapes: dict[str, tuple[int, int] | None] = {}
    if fmt == "via":
        doc = dict(via.entry(name, arr, folder / name if folder is not None else None)
                   for name, arr in arrays.items())
        _dump(out, doc)
        return
    for name in arrays:
        given = (image_shapes or {}).get(name)
        shapes[name] = _image_shape(folder / name if folder is not None else None, given)
    _dump(out, coco.document(arrays, shapes))
