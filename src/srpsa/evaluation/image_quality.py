"""Quality of generated images against targets: SSIM, PSNR, density and coverage (paper section 6.2).

Pixel-level: mean SSIM and mean PSNR over (pred, target) image pairs (``skimage.metrics``, images float
in [0, 1], ``data_range=1``, skimage's default 7 x 7 uniform SSIM window). A pred whose size differs from
its target's is resized to the target's size first (area resampling when shrinking, bicubic when
enlarging) and the result lists it in ``resized``.

Set-level: density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
Models", ICML 2020; the authors' ``prdc`` package, ``nearest_k = 5``) between the embeddings of
non-overlapping ``patch`` x ``patch`` crops of the targets (real) and of the preds (fake), embedded with a
fixed-seed random network (:mod:`srpsa.evaluation.embedder`). Density ~ 1 and coverage ~ 1 mean the
generated crops lie where the real ones do, as densely, and cover all of them. Precision and recall from
the same call are reported too. See ``docs/evaluation.md`` section 7.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from srpsa.errors import InputError
from srpsa.io.images import LUMA_WEIGHTS
from srpsa.evaluation.embedder import RANDOM_CNN_MIN_INPUT, Embedder, EmbedderKind, make_embedder
from srpsa.pixel_metrics import psnr, ssim

#: skimage's default SSIM window is 7 x 7; a smaller image has no full window.
MIN_SSIM_SIDE = 7
#: Gray conversion for colour arrays, the same BT.601 weights srpsa.io.read_image uses.
_LUMA = np.asarray(LUMA_WEIGHTS, dtype=np.float32)  # the weights of srpsa.io.to_gray
#: Patches embedded per call, so crops are cut on demand instead of all held in memory at once.
_EMBED_CHUNK = 256


def image_quality(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    patch: int = 128,
    nearest_k: int = 5,
    seed: int = 0,
    max_patches: int = 2000,
    embedder: EmbedderKind | Embedder = "auto",
) -> dict:
    """SSIM, PSNR, density and coverage of generated images ``preds`` against ``targets``.

    Parameters
    ----------
    preds, targets
        Paired gray images (H, W) (or (H, W, 3), turned to gray) with values in [0, 1]; ``preds[i]``
        is scored against ``targets[i]`` and resized to its size if they differ.
    patch
        Side of the non-overlapping square crops (a grid from the top-left corner; the remainder at the
        right and bottom edges is not used) whose embeddings form the real and fake sets.
    nearest_k
        k of the k-nearest-neighbour balls of density and coverage (the paper uses 5).
    seed
        Seed of the random embedder's weights and of the crop subsampling.
    max_patches
        At most this many crop positions are used (a seeded random subset, the same positions for real
        and fake, so both sets stay aligned); distances cost O(n^2).
    embedder
        ``"auto"``, ``"inception"``, ``"random-cnn"`` or a ready :class:`Embedder`.

    Returns
    -------
    dict
        ``ssim``, ``psnr`` (dB; ``inf`` if any pair is identical), ``psnr_finite`` (mean over the pairs
        that are not identical, None if none), ``n_identical``, ``density``, ``coverage``,
        ``precision``, ``recall``, ``n_real_zero_radius`` (real crops with an empty k-NN ball, see
        ``notes``), ``n_pairs``, ``n_real``, ``n_fake``, ``embedder``
        (``"<network>:seed=<seed>"``), ``embedder_info``, ``settings``, ``resized`` (pair indices whose
        pred was resized), ``per_pair`` and ``notes``.

    Raises
    ------
    InputError
        Unequal or empty lists, non-finite values, images too small, or fewer crops than density and
        coverage need (``nearest_k + 2``).
    """
    _check_settings(patch, nearest_k, max_patches)
    if len(preds) != len(targets):
        raise InputError(f"{len(preds)} pred image(s) but {len(targets)} target image(s); they must pair up")
    if not targets:
        raise InputError("no image pairs to evaluate")
    net = embedder if isinstance(embedder, Embedder) else make_embedder(seed, embedder)
    if net.input_size is None and patch < RANDOM_CNN_MIN_INPUT:
        raise InputError(f"patch {patch} px is below the {RANDOM_CNN_MIN_INPUT} px the {net.name} embedder needs")

    targets_g = [_as_gray(t, f"target {i}") for i, t in enumerate(targets)]
    preds_g, per_pair = _score_pairs(preds, targets_g)
    resized = [p["index"] for p in per_pair if p["pred_shape"] != p["shape"]]
    notes = [f"{len(resized)} pred image(s) resized to their target's size (area when shrinking, bicubic when enlarging)"] if resized else []
    positions = _sample_positions(_crop_positions(targets_g, patch, notes), max_patches, seed, notes)
    if len(positions) < nearest_k + 2:
        raise InputError(
            f"only {len(positions)} {patch} x {patch} crop(s) in the targets; density and coverage with "
            f"nearest_k={nearest_k} need at least {nearest_k + 2} (use smaller --patch or more images)"
        )
    real = _embed_crops(net, targets_g, positions, patch)
    fake = _embed_crops(net, preds_g, positions, patch)
    prdc = _prdc(real, fake, nearest_k)
    if prdc["n_real_zero_radius"]:
        notes.append(
            f"{prdc['n_real_zero_radius']} real crop(s) have a k-NN radius of 0 (at least {nearest_k + 1} identical "
            "crops, e.g. flat background); prdc's strict '<' counts no fake crop in their balls, which lowers "
            "density and coverage"
        )
    return {
        **_pixel_summary(per_pair),
        **prdc,
        "n_pairs": len(per_pair),
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
        "embedder": net.description,
        "embedder_info": net.info(),
        "settings": {"patch": patch, "nearest_k": nearest_k, "seed": seed, "max_patches": max_patches,
                     "ssim": "skimage structural_similarity, data_range=1, 7x7 uniform window",
                     "psnr": "10 log10(1 / MSE) (skimage peak_signal_noise_ratio with data_range=1); inf if identical"},
        "resized": resized,
        "per_pair": per_pair,
        "notes": notes,
    }


def _check_settings(patch: int, nearest_k: int, max_patches: int) -> None:
    if patch < 1:
        raise InputError(f"patch must be a positive number of pixels, got {patch}")
    if nearest_k < 1:
        raise InputError(f"nearest_k must be at least 1, got {nearest_k}")
    if max_patches < nearest_k + 2:
        raise InputError(f"max_patches ({max_patches}) must be at least nearest_k + 2 = {nearest_k + 2}")


def _as_gray(image: np.ndarray, what: str) -> np.ndarray:
    """A float32 (H, W) copy in [0, 1]; colour (H, W, 3) becomes BT.601 gray, (H, W, 1) is squeezed."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[-1] == 3:
        a = a.astype(np.float32) @ _LUMA
    if a.ndim != 2:
        raise InputError(f"{what}: expected a gray (H, W) or RGB (H, W, 3) image, got shape {a.shape}")
    if min(a.shape) < MIN_SSIM_SIDE:
        raise InputError(f"{what}: image of {a.shape[1]} x {a.shape[0]} px is smaller than the {MIN_SSIM_SIDE} px SSIM window")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise InputError(f"{what}: image contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    # A little float slack (a generator's tanh output mapped to [0, 1]) is clipped; more is a wrong scale.
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"{what}: values span [{lo:.4g}, {hi:.4g}]; expected [0, 1] (read images with srpsa.io.read_image)")
    return np.clip(a, 0.0, 1.0)


def _match_size(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``pred`` to ``shape`` (H, W): area averaging when shrinking (no aliasing), bicubic otherwise."""
    if pred.shape == shape:
        return pred
    shrinking = pred.shape[0] * pred.shape[1] > shape[0] * shape[1]
    out = cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)  # bicubic overshoots at edges


def _pixel_summary(per_pair: list[dict]) -> dict:
    psnrs = [p["psnr"] for p in per_pair]
    finite = [v for v in psnrs if math.isfinite(v)]
    return {
        "ssim": float(np.mean([p["ssim"] for p in per_pair])),
        "psnr": float(np.mean(psnrs)),  # inf as soon as one pair is identical: the honest mean
        "psnr_finite": float(np.mean(finite)) if finite else None,
        "n_identical": len(psnrs) - len(finite),
    }


def _score_pairs(preds: Sequence[np.ndarray], targets: list[np.ndarray]) -> tuple[list[np.ndarray], list[dict]]:
    """Preds as gray at their target's size, and per pair its shapes, SSIM and PSNR."""
    preds_g, per_pair = [], []
    for i, (pred, target) in enumerate(zip(preds, targets)):
        gray = _as_gray(pred, f"pred {i}")
        matched = _match_size(gray, target.shape)
        preds_g.append(matched)
        per_pair.append({"index": i, "shape": list(target.shape), "pred_shape": list(gray.shape),
                         "ssim": ssim(matched, target), "psnr": psnr(matched, target)})
    return preds_g, per_pair


def _sample_positions(positions: list, max_patches: int, seed: int, notes: list[str]) -> list:
    """At most ``max_patches`` positions, a seeded subset in grid order; used for real and fake alike."""
    if len(positions) <= max_patches:
        return positions
    keep = np.sort(np.random.default_rng(seed).choice(len(positions), max_patches, replace=False))
    notes.append(f"{max_patches} of {len(positions)} crop positions used (seeded random subset, seed={seed})")
    return [positions[j] for j in keep]


def _crop_positions(images: list[np.ndarray], patch: int, notes: list[str]) -> list[tuple[int, int, int]]:
    """(image index, y, x) of every non-overlapping ``patch`` crop on a grid from the top-left corner."""
    positions, too_small = [], 0
    for i, img in enumerate(images):
        rows, cols = img.shape[0] // patch, img.shape[1] // patch
        too_small += rows * cols == 0
        positions += [(i, r * patch, c * patch) for r in range(rows) for c in range(cols)]
    if too_small:
        notes.append(f"{too_small} target image(s) smaller than the {patch} px patch gave no crop")
    return positions


def _embed_crops(net: Embedder, images: list[np.ndarray], positions: list[tuple[int, int, int]], patch: int) -> np.ndarray:
    chunks = []
    for start in range(0, len(positions), _EMBED_CHUNK):
        crops = np.stack([images[i][y:y + patch, x:x + patch] for i, y, x in positions[start:start + _EMBED_CHUNK]])
        chunks.append(net.embed(crops))
    return np.concatenate(chunks)


def _prdc(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> dict:
    """Density, coverage, precision and recall from ``prdc.compute_prdc`` (Naeem et al. 2020), plus the
    number of real crops whose k-NN ball is empty by construction (radius 0)."""
    from prdc import compute_prdc
    from prdc.prdc import compute_nearest_neighbour_distances

    # compute_prdc prints the set sizes to stdout; keep a CLI's (or a pipe's) output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        values = compute_prdc(real_features=real, fake_features=fake, nearest_k=nearest_k)
    radii = compute_nearest_neighbour_distances(real, nearest_k)
    out = {k: float(values[k]) for k in ("density", "coverage", "precision", "recall")}
    out["n_real_zero_radius"] = int(np.count_nonzero(radii <= 0.0))
    return out


def pair_image_files(pred: Path, target: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(pred, target) file pairs from two files or two folders, and notes on how they were paired.

    Two files are one pair. Two folders: their image files (not recursive; hidden files skipped) are
    paired by file stem when both folders hold the same stems, else in sorted order when they hold the
    same number of images (a note says so), else it is an error naming unpaired stems.

    Raises
    ------
    InputError
        Missing paths, a file against a folder, an empty folder, a stem used twice in one folder, or
        folders that do not pair up.
    """
    from srpsa.io.files import check_file

    for path, flag in ((pred, "--pred"), (target, "--target")):
        if not path.exists():
            raise InputError(f"{flag} {path}: not found")
    if pred.is_file() and target.is_file():
        return [(check_file(pred, "image"), check_file(target, "image"))], []
    if not (pred.is_dir() and target.is_dir()):
        raise InputError(f"--pred {pred} and --target {target} must both be image files or both be folders")
    preds, targets = _images_by_stem(pred, "--pred"), _images_by_stem(target, "--target")
    if preds.keys() == targets.keys():
        return [(preds[k], targets[k]) for k in sorted(targets)], []
    if len(preds) == len(targets):
        pairs = [(preds[a], targets[b]) for a, b in zip(sorted(preds), sorted(targets))]
        return pairs, [f"file stems differ; {len(pairs)} pair(s) formed in sorted name order"]
    unpaired = sorted(preds.keys() ^ targets.keys())
    shown = ", ".join(unpaired[:5]) + (" ..." if len(unpaired) > 5 else "")
    raise InputError(f"cannot pair {len(preds)} pred and {len(targets)} target image(s) by stem; unpaired: {shown}")


def _images_by_stem(folder: Path, flag: str) -> dict[str, Path]:
    from srpsa.io.files import is_image_file

    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if not (f.is_file() and is_image_file(f)) or f.name.startswith("."):
            continue
        if f.stem in found:
            raise InputError(f"{flag} {folder}: two images with the stem '{f.stem}' ({found[f.stem].name}, {f.name})")
        found[f.stem] = f
    if not found:
        raise InputError(f"{flag} {folder}: folder holds no image file")
    return found
