"""Cut registered OM/SEM pairs into aligned training patches, augment them and split by image.

Input folder (``PAIRS_DIR``), as written by ``srpsa register`` or by ``srpsa synth`` with the
misregistration disabled:

- ``<stem>_om.<ext>``: OM image (colour is converted to gray, paper section 5.1);
- ``<stem>_sem.<ext>``: SEM image of exactly the same field, either the same size as the OM image or
  ``k`` times larger along both axes for an integer ``k`` (SEM pixels ``k`` times finer);
- ``<stem>_mask.<ext>`` (optional): nonzero where the registered image is defined, OM- or SEM-sized;
  patches containing any undefined pixel are skipped.

``<ext>`` is any suffix :func:`srpsa.io.read_image` reads; other files (ground truth, transforms,
manifests) are ignored. Every ``*_om`` image needs its ``*_sem`` partner.

Output folder (``OUT``):

- ``split.json``: settings, seed, and the stems in each of ``train``/``val``/``test``; the split is by
  image (all patches of an image land in one split) so no field leaks between splits;
- ``patches.csv``: one row per patch pair: ``split, stem, om_file, sem_file, y, x`` (top-left corner
  in OM pixels of the source image), ``aug`` (0 = original), ``dihedral`` (0-7, see :func:`dihedral`)
  and the OM photometric parameters ``brightness, contrast, gamma, noise``;
- ``<split>/<stem>_y<Y>_x<X>_a<A>_om.png`` and ``..._sem.png``: 16-bit gray PNG patches. The OM patch
  is ``round(patch * resize)`` pixels square, the SEM patch ``k`` times that; pixel ``(i, j)`` of the OM
  patch covers SEM patch pixels ``(k*i .. k*i+k-1, k*j .. k*j+k-1)``.

Augmentation (``augment = N``): each training patch is written once as is and ``N`` more times with a
random dihedral transform (flips / 90-degree rotations, applied identically to both images, so they stay
aligned) and, on the OM input only, random brightness, contrast, gamma and Gaussian noise (the paper
attributes OM variability to illumination; the SEM target stays clean). Validation and test patches
are never augmented. Every random draw is seeded by ``(seed, stem, y, x, aug)``, so the output does not
depend on processing order and the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "SPLITS",
    "AugmentConfig",
    "PairFiles",
    "PrepareConfig",
    "PrepareSummary",
    "dihedral",
    "find_pairs",
    "iter_patches",
    "parse_split",
    "photometric",
    "prepare_dataset",
    "split_stems",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class AugmentConfig:
    """Ranges of the OM-only photometric augmentation (each drawn uniformly per augmented patch)."""

    brightness: float = 0.1  # additive offset in [-b, b]
    contrast: float = 0.2  # gain in [1 - c, 1 + c] about the patch mean
    gamma: float = 0.3  # exponent exp(u), u in [-g, g]
    noise: float = 0.02  # Gaussian noise std in [0, n]


@dataclass
class PrepareConfig:
    """Settings of :func:`prepare_dataset` (defaults match the CLI)."""

    patch: int = 256  # OM patch size before resizing, pixels
    stride: int = 256  # OM pixels between patch origins
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test fractions of the images
    augment: int = 0  # extra augmented copies per training patch
    seed: int = 0
    resize: float = 1.0  # patch resize factor (the paper cuts 1024 px and resizes to 512: 0.5)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class PairFiles:
    """The files of one registered pair."""

    stem: str
    om: Path
    sem: Path
    mask: Path | None


@dataclass(frozen=True)
class PrepareSummary:
    """What :func:`prepare_dataset` wrote."""

    splits: dict[str, list[str]]
    patches: dict[str, int]
    out_dir: Path


def parse_split(text: str) -> tuple[float, float, float]:
    """Parse ``"0.8,0.1,0.1"`` into train/val/test fractions (non-negative, summing to 1)."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise InputError(f"--split: expected three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise InputError(f"--split: expected three fractions (train,val,test), got {text!r}")
    _check_fractions(parts)
    return parts  # type: ignore[return-value]


def find_pairs(pairs_dir: str | os.PathLike[str]) -> list[PairFiles]:
    """List the registered pairs in a folder (layout in the module docstring), sorted by stem.

    Raises
    ------
    InputError
        The folder is missing, holds no ``*_om`` image, or an OM image has no SEM partner.
    """
    from srpsa.io.files import is_image_file

    root = Path(pairs_dir)
    if not root.is_dir():
        raise InputError(f"{root}: pairs folder not found")
    images: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.is_file() and not p.name.startswith(".") and is_image_file(p):
            images.setdefault(p.stem, p)
    pairs = []
    for name, om in images.items():
        if not name.endswith("_om") or len(name) <= 3:
            continue
        stem = name[:-3]
        sem = images.get(f"{stem}_sem")
        if sem is None:
            raise InputError(f"{om}: no SEM partner {stem}_sem.<ext> in {root}")
        pairs.append(PairFiles(stem, om, sem, images.get(f"{stem}_mask")))
    if not pairs:
        raise InputError(f"{root}: no registered pairs (<stem>_om.png + <stem>_sem.png) found")
    return pairs


def split_stems(stems: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Assign whole images to train/val/test.

    The stems are sorted, shuffled with ``seed`` and cut at the rounded cumulative fractions, so the
    assignment depends only on the set of stems, the fractions and the seed.
    """
    _check_fractions(fractions)
    order = sorted(set(stems))
    perm = np.random.default_rng(seed).permutation(len(order))
    shuffled = [order[i] for i in perm]
    cuts = np.round(np.cumsum(fractions) * len(order)).astype(int)
    cuts[-1] = len(order)
    bounds = [0, *cuts.tolist()]
    out = {name: sorted(shuffled[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLITS)}
    for name, frac in zip(SPLITS, fractions):
        if frac > 0 and not out[name]:
            log.warning("split %s is empty: %d image(s) are too few for fraction %g", name, len(order), frac)
    return out


def dihedral(image: np.ndarray, op: int) -> np.ndarray:
    """One of the 8 flips/rotations of the square: ``op = 4 * flip + k`` rotates by ``k * 90`` degrees
    (counter-clockwise, :func:`numpy.rot90`) after an optional left-right flip."""
    out = image[:, ::-1] if op >= 4 else image
    return np.ascontiguousarray(np.rot90(out, op % 4))


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> tuple[np.ndarray, dict[str, float]]:
    """Random brightness, contrast, gamma and Gaussian noise for an OM patch in [0, 1] (clipped)."""
    params = {
        "brightness": float(rng.uniform(-cfg.brightness, cfg.brightness)),
        "contrast": float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)),
        "gamma": float(np.exp(rng.uniform(-cfg.gamma, cfg.gamma))),
        "noise": float(rng.uniform(0.0, cfg.noise)),
    }
    out = np.clip(image.astype(np.float32), 0.0, 1.0) ** params["gamma"]
    out = (out - out.mean()) * params["contrast"] + out.mean() + params["brightness"]
    out = out + rng.normal(0.0, params["noise"], out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32), params


def iter_patches(
    om: np.ndarray, sem: np.ndarray, patch: int, stride: int, valid: np.ndarray | None = None
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(y, x, om_patch, sem_patch)`` on a regular grid (origins every ``stride`` OM pixels).

    ``sem`` is ``k`` times the size of ``om``; ``valid`` (OM- or SEM-sized bool) excludes patches with
    any undefined pixel. Patches that would cross the bottom/right border are not produced.
    """
    k = sem.shape[0] // om.shape[0]
    h, w = om.shape[:2]
    for y in range(0, h - patch + 1, stride):
        for x in range(0, w - patch + 1, stride):
            if valid is not None:
                f = valid.shape[0] // h
                if not valid[f * y : f * (y + patch), f * x : f * (x + patch)].all():
                    continue
            yield y, x, om[y : y + patch, x : x + patch], sem[k * y : k * (y + patch), k * x : k * (x + patch)]


def prepare_dataset(
    pairs_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], cfg: PrepareConfig | None = None
) -> PrepareSummary:
    """Build a patch dataset from registered pairs (layouts in the module docstring).

    Parameters
    ----------
    pairs_dir
        Folder of registered pairs.
    out_dir
        Output folder (created). Files of an earlier run listed in its ``patches.csv`` are replaced.
    cfg
        Settings; defaults to :class:`PrepareConfig`.

    Returns
    -------
    PrepareSummary

    Raises
    ------
    InputError
        Invalid settings, unreadable images, or an SEM image that is not an integer multiple of its OM.
    """
    from srpsa.io.images import read_image

    cfg = cfg or PrepareConfig()
    _check_config(cfg)
    pairs = find_pairs(pairs_dir)
    splits = split_stems([p.stem for p in pairs], cfg.split, cfg.seed)
    split_of = {stem: name for name, stems in splits.items() for stem in stems}
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    _remove_previous(out)

    rows: list[dict] = []
    counts = dict.fromkeys(SPLITS, 0)
    size = max(1, round(cfg.patch * cfg.resize))
    for pair in pairs:
        split = split_of[pair.stem]
        om = read_image(pair.om).data
        sem = read_image(pair.sem).data
        k = _factor(pair, om.shape, sem.shape)
        valid = _read_mask(pair, om.shape, sem.shape) if pair.mask is not None else None
        n_aug = cfg.augment if split == "train" else 0
        n_before = counts[split]
        for y, x, om_p, sem_p in iter_patches(om, sem, cfg.patch, cfg.stride, valid):
            if cfg.resize != 1.0:
                om_p, sem_p = _resize(om_p, size), _resize(sem_p, size * k)
            for a in range(n_aug + 1):
                rows.append(_write_patch(out, split, pair.stem, y, x, a, om_p, sem_p, cfg))
                counts[split] += 1
        if counts[split] == n_before:
            log.warning("%s: no complete %d px patch fits (image %dx%d)", pair.om, cfg.patch, om.shape[1], om.shape[0])

    _write_index(out, rows)
    meta = {
        "seed": cfg.seed,
        "fractions": dict(zip(SPLITS, cfg.split)),
        **splits,
        "patches": counts,
        "settings": {k: v for k, v in asdict(cfg).items() if k not in ("split", "seed")},
        "source": str(Path(pairs_dir)),
    }
    atomic_write_text(out / "split.json", json.dumps(meta, indent=2) + "\n")
    return PrepareSummary(splits, counts, out)


def _write_patch(
    out: Path, split: str, stem: str, y: int, x: int, a: int, om_p: np.ndarray, sem_p: np.ndarray, cfg: PrepareConfig
) -> dict:
    params = {"dihedral": 0, "brightness": 0.0, "contrast": 1.0, "gamma": 1.0, "noise": 0.0}
    if a > 0:
        # Seeded by the patch identity, not by a running stream: order-independent and reproducible.
        rng = np.random.default_rng([cfg.seed, zlib.crc32(stem.encode()), y, x, a])
        op = int(rng.integers(8))
        om_p, sem_p = dihedral(om_p, op), dihedral(sem_p, op)
        om_p, photo = photometric(om_p, rng, cfg.augmentation)
        params = {"dihedral": op, **photo}
    base = f"{stem}_y{y}_x{x}_a{a}"
    om_file, sem_file = f"{split}/{base}_om.png", f"{split}/{base}_sem.png"
    _write_png16(out / om_file, om_p)
    _write_png16(out / sem_file, sem_p)
    return {"split": split, "stem": stem, "om_file": om_file, "sem_file": sem_file, "y": y, "x": x, "aug": a, **params}


def _write_png16(path: Path, image: np.ndarray) -> None:
    arr = np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint16 array
        raise InputError(f"{path}: cannot encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def _write_index(out: Path, rows: list[dict]) -> None:
    columns = ["split", "stem", "om_file", "sem_file", "y", "x", "aug", "dihedral", "brightness", "contrast", "gamma", "noise"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(out / "patches.csv", buf.getvalue())


def _remove_previous(out: Path) -> None:
    """Delete the patch files an earlier run listed, so a re-run leaves no stale patches behind."""
    index = out / "patches.csv"
    if not index.is_file():
        return
    with open(index, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            for key in ("om_file", "sem_file"):
                rel = row.get(key) or ""
                target = (out / rel).resolve()
                # Only files inside our split folders: never follow a tampered index elsewhere.
                if rel and target.parent.name in SPLITS and target.parent.parent == out.resolve():
                    target.unlink(missing_ok=True)


def _factor(pair: PairFiles, om_shape: tuple[int, ...], sem_shape: tuple[int, ...]) -> int:
    (h, w), (hs, ws) = om_shape[:2], sem_shape[:2]
    k = hs // h
    if k < 1 or hs != k * h or ws != k * w:
        raise InputError(
            f"{pair.sem}: size {ws}x{hs} is not an integer multiple of the OM size {w}x{h} "
            "(register with srpsa register, optionally --keep-resolution)"
        )
    return k


def _read_mask(pair: PairFiles, om_shape: tuple[int, ...], sem_shape: tuple[int, ...]) -> np.ndarray:
    from srpsa.io.images import read_image

    mask = read_image(pair.mask).data > 0
    if mask.shape not in (tuple(om_shape[:2]), tuple(sem_shape[:2])):
        raise InputError(f"{pair.mask}: mask size {mask.shape[1]}x{mask.shape[0]} matches neither the OM nor the SEM image")
    return mask


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def _check_fractions(fractions: tuple[float, ...]) -> None:
    if len(fractions) != 3 or any(not (f >= 0) for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"--split: three non-negative fractions summing to 1 expected, got {','.join(map(str, fractions))}")


def _check_config(cfg: PrepareConfig) -> None:
    if cfg.patch < 1:
        raise InputError(f"--patch: must be >= 1, got {cfg.patch}")
    if cfg.stride < 1:
        raise InputError(f"--stride: must be >= 1, got {cfg.stride}")
    if cfg.augment < 0:
        raise InputError(f"--augment: must be >= 0, got {cfg.augment}")
    if not 0 < cfg.resize <= 1 or round(cfg.patch * cfg.resize) < 1:
        raise InputError(f"--resize: must be in (0, 1] and leave at least one pixel, got {cfg.resize}")
    _check_fractions(tuple(cfg.split))
