"""Pairing ground-truth and prediction annotation files (or folders) image by image.

Rules (also in ``docs/evaluation.md``):

- Each annotation file gets a **key**: its file name without the suffix and without one trailing
  ``_gt_om``, ``_gt_sem``, ``_gt``, ``_pred``, ``_particles`` or ``_circles`` tag. A file named
  ``particles.csv`` inside a sub-folder (the ``srpsa analyze`` layout ``<out>/<stem>/particles.csv``) gets
  the sub-folder's name. So ``img01.csv``, ``img01_gt_om.csv`` and ``img01/particles.csv`` all pair up.
- File vs. file: one pair, whatever the names. Folder vs. folder (or file vs. folder): files pair by key.
- A multi-image VIA or COCO file contributes one entry per image, keyed by the image file's stem, so a
  COCO ground-truth file pairs with a folder of ``srpsa analyze`` outputs (or another COCO file).
- Ground-truth folders are searched (not recursively) for files matching ``gt_glob`` (default: ``*.csv``
  and ``*.json``), plus ``*/particles.csv``. Prediction folders are looked up per ground-truth key, so
  unrelated files there (``summary.csv``, ``errors.csv``) are never read.
- A ground-truth key without a prediction is an error (a detector that found nothing still writes an
  empty table); predictions without ground truth are ignored and counted.
- ``<stem>/summary.json`` beside an ``srpsa analyze`` particles.csv supplies the image size (for border
  handling) and pixel size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srpsa.errors import InputError

TAGS = ("_gt_om", "_gt_sem", "_gt", "_pred", "_particles", "_circles")
ANALYZE_FILE = "particles.csv"
DEFAULT_GLOBS = ("*.csv", "*.json")


@dataclass(frozen=True)
class ImagePair:
    """One image's ground truth and prediction, with what is known about the image."""

    key: str
    gt_path: Path
    pred_path: Path
    gt: np.ndarray
    pred: np.ndarray
    image_shape: tuple[int, int] | None = None  # (H, W)
    pixel_size_um: float | None = None


def key_of(path: Path) -> str:
    """Pairing key of an annotation file (see the module docstring)."""
    if path.name == ANALYZE_FILE:
        return path.parent.name
    stem = path.name
    for suffix in (".json", ".csv"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = path.stem
    for tag in TAGS:
        if stem.lower().endswith(tag) and len(stem) > len(tag):
            return stem[: -len(tag)]
    return stem


def _gt_files(folder: Path, globs: tuple[str, ...]) -> dict[str, Path]:
    files = sorted({p for g in globs for p in folder.glob(g) if p.is_file()} | set(folder.glob(f"*/{ANALYZE_FILE}")))
    out: dict[str, Path] = {}
    for p in files:
        k = key_of(p)
        if k in out:
            raise InputError(f"{folder}: two ground-truth files share the key '{k}' ({out[k].name}, {p.relative_to(folder)}); select one kind with --gt-glob")
        out[k] = p
    return out


def _pred_file(folder: Path, key: str) -> Path | None:
    found = [folder / f"{key}{tag}{ext}" for tag in ("", *TAGS) for ext in (".csv", ".json")]
    # A key from an annotation file's image name ("..", "." or "") must not name a folder outside --pred.
    if key.strip(".") and "/" not in key and "\\" not in key:
        found.insert(0, folder / key / ANALYZE_FILE)
    hits = [p for p in found if p.is_file()]
    if len(hits) > 1:
        raise InputError(f"{folder}: several predictions for '{key}': {', '.join(str(h.relative_to(folder)) for h in hits)}")
    return hits[0] if hits else None


def _analyze_summary(pred_path: Path) -> tuple[tuple[int, int] | None, float | None]:
    """Image size and pixel size from ``summary.json`` next to an ``srpsa analyze`` particles.csv."""
    summary = pred_path.parent / "summary.json"
    if pred_path.name != ANALYZE_FILE or not summary.is_file():
        return None, None
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{summary}: unreadable summary ({exc})") from None
    shape = (int(data["height"]), int(data["width"])) if "height" in data and "width" in data else None
    px = data.get("pixel_size_um")
    return shape, float(px) if px else None


def read_sets(path: Path) -> dict[str, np.ndarray]:
    """Circle sets of an annotation file keyed for pairing.

    A file with one image (CSV, LabelMe, single-image VIA/COCO) gives ``{key_of(path): circles}``; a
    multi-image VIA or COCO file gives one entry per image, keyed by the image file's stem.
    """
    from srpsa.io import read_circle_sets

    sets = read_circle_sets(path)
    if len(sets) <= 1:
        circles = next(iter(sets.values()), np.zeros((0, 3)))
        return {key_of(path): np.asarray(circles, dtype=np.float64).reshape(-1, 3)}
    out: dict[str, np.ndarray] = {}
    for name, circles in sets.items():
        k = Path(name.replace("\\", "/")).stem
        if k in out:
            raise InputError(f"{path}: two images share the name stem '{k}'")
        out[k] = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    return out


def _gt_sets(gt: Path, globs: tuple[str, ...]) -> dict[str, tuple[Path, np.ndarray]]:
    if gt.is_file():
        return {k: (gt, c) for k, c in read_sets(gt).items()}
    out: dict[str, tuple[Path, np.ndarray]] = {}
    for k, path in _gt_files(gt, globs).items():
        for kk, c in read_sets(path).items():
            if kk in out:
                raise InputError(f"{gt}: ground truth for '{kk}' appears in both {out[kk][0].name} and {path.name}")
            out[kk] = (path, c)
    if not out:
        raise InputError(f"--gt {gt}: no annotation files matching {', '.join(globs)} or */{ANALYZE_FILE}")
    return out


def pair_annotations(gt: Path, pred: Path, *, gt_globs: tuple[str, ...] = DEFAULT_GLOBS) -> tuple[list[ImagePair], list[str]]:
    """Read and pair annotations (rules in the module docstring).

    Returns
    -------
    pairs : list of ImagePair, sorted by key
    notes : list of str
        Human-readable notes (e.g. predictions without ground truth that were ignored).
    """
    gt, pred = Path(gt), Path(pred)
    for p, what in ((gt, "--gt"), (pred, "--pred")):
        if not p.exists():
            raise InputError(f"{what} {p}: no such file or folder")
    notes: list[str] = []
    gts = _gt_sets(gt, gt_globs)

    preds: dict[str, tuple[Path, np.ndarray]] = {}
    missing: list[str] = []
    if pred.is_file():
        sets = read_sets(pred)
        if len(sets) == 1 and len(gts) == 1:  # file vs file: pair whatever the names
            preds[next(iter(gts))] = (pred, next(iter(sets.values())))
        else:
            for k in gts:
                if k in sets:
                    preds[k] = (pred, sets[k])
                else:
                    missing.append(k)
            if extra := set(sets) - set(gts):
                notes.append(f"{len(extra)} prediction set(s) without ground truth ignored")
    else:
        for k in gts:
            hit = _pred_file(pred, k)
            if hit is None:
                missing.append(k)
                continue
            sets = read_sets(hit)
            if k in sets:
                preds[k] = (hit, sets[k])
            elif len(sets) == 1:  # e.g. <key>/particles.csv, whose set is keyed by the folder anyway
                preds[k] = (hit, next(iter(sets.values())))
            else:
                raise InputError(f"{hit}: holds several images but none named '{k}'")
        extra = {key_of(p) for p in pred.glob(f"*/{ANALYZE_FILE}")} - set(gts)
        if extra:
            notes.append(f"{len(extra)} prediction(s) without ground truth ignored")
    if missing:
        shown = ", ".join(sorted(missing)[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(
            f"--pred {pred}: no prediction for {len(missing)} ground-truth image(s): {shown} "
            f"(looked for <key>.csv/.json and <key>/{ANALYZE_FILE})"
        )

    pairs = []
    for k in sorted(gts):
        g_path, g = gts[k]
        p_path, p = preds[k]
        shape, px = _analyze_summary(p_path)
        pairs.append(ImagePair(key=k, gt_path=g_path, pred_path=p_path, gt=g, pred=p, image_shape=shape, pixel_size_um=px))
    return pairs, notes
