"""Register one OM/SEM image pair from files and write the registered pair (used by ``srpsa register``).

Outputs in the output folder, for a pair stem ``S`` (the OM file name without suffix and without a
trailing ``_om``, unless given):

- ``S_om.png``, ``S_sem.png``: the registered images, same field, 16-bit PNG (OM in colour if it was);
  the SEM image has the OM size, or an integer multiple of it with ``--keep-resolution``;
- ``S_mask.png``: 8-bit, SEM-sized, 255 where the resampled image is fully defined, 0 outside its field;
- ``S_transform.json``: the OM -> SEM affine, residuals, landmarks, refinement metrics, the matrices
  from each original image to the output grid and the pixel sizes;
- ``S_landmarks.csv``: the landmark pairs used (the detected marker centres with ``--auto``), in the
  ``--landmarks`` format, so a doubtful automatic result can be corrected by hand and re-run.

This is the layout ``srpsa prepare`` reads (see :mod:`srpsa.training.prepare`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_write_bytes, atomic_write_text
from srpsa.registration.estimate import AffineResult, fit_affine
from srpsa.registration.fiducials import register_fiducials
from srpsa.registration.landmarks import read_landmarks, write_landmarks
from srpsa.registration.refine import refine_ecc
from srpsa.registration.warp import RegisteredPair, warp_pair

if TYPE_CHECKING:
    from srpsa.io.images import LoadedImage

__all__ = ["RegistrationOutput", "pair_stem", "register_files", "write_png"]

log = logging.getLogger(__name__)

CONVENTION = "x = column, y = row, pixel centres at integer coordinates; matrices act on (x, y, 1)"


@dataclass(frozen=True)
class RegistrationOutput:
    """What :func:`register_files` computed and wrote."""

    result: AffineResult
    pair: RegisteredPair
    files: dict[str, Path]
    summary: dict


def pair_stem(om_path: str | os.PathLike[str]) -> str:
    """Default pair name: the OM file stem without a trailing ``_om``."""
    stem = Path(om_path).stem
    return stem[:-3] if stem.lower().endswith("_om") and len(stem) > 3 else stem


def register_files(
    om_path: str | os.PathLike[str],
    sem_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    landmarks: str | os.PathLike[str] | None = None,
    auto: bool = False,
    ransac: bool = False,
    ransac_threshold: float = 3.0,
    refine: bool = False,
    max_rms: float | None = 3.0,
    direction: str = "sem-to-om",
    keep_resolution: bool = False,
    markers: int = 4,
    stem: str | None = None,
    seed: int = 0,
) -> RegistrationOutput:
    """Register an OM/SEM pair and write the registered images and the transform.

    Parameters
    ----------
    om_path, sem_path
        Image files (anything :func:`srpsa.io.read_image` reads).
    out_dir
        Output folder (created).
    landmarks
        Landmark CSV (``om_x, om_y, sem_x, sem_y``). Exactly one of ``landmarks`` and ``auto``.
    auto
        Detect the fiducial crosses and pair them automatically.
    ransac, ransac_threshold
        Reject inconsistent landmarks (threshold in SEM pixels).
    refine
        Intensity-based (ECC) refinement, kept only if it improves the match.
    max_rms
        Fail when the landmark RMS residual exceeds this (SEM pixels); None: no limit.
    direction, keep_resolution
        Output grid (see :mod:`srpsa.registration.warp`).
    markers
        Number of fiducial markers to look for with ``auto``.
    stem
        Output name prefix (default :func:`pair_stem` of the OM file).
    seed
        RANSAC seed.

    Returns
    -------
    RegistrationOutput

    Raises
    ------
    InputError
        Bad files or arguments.
    RegistrationError
        The transform cannot be estimated or is not trustworthy.
    """
    from srpsa.io.images import read_image

    if (landmarks is None) == (not auto):
        raise InputError("register: give exactly one of --landmarks CSV or --auto")
    if max_rms is not None and not max_rms > 0:
        raise InputError(f"--max-rms: must be > 0, got {max_rms}")
    if not ransac_threshold > 0:
        raise InputError(f"--ransac-threshold: must be > 0, got {ransac_threshold}")
    om_img = read_image(om_path)
    sem_img = read_image(sem_path)

    if landmarks is not None:
        om_pts, sem_pts = read_landmarks(landmarks)
        result = fit_affine(
            om_pts, sem_pts, ransac=ransac, ransac_threshold=ransac_threshold, max_rms=max_rms, seed=seed,
            what=str(landmarks),
        )
    else:
        result = register_fiducials(
            om_img.data, sem_img.data, max_markers=markers, ransac=ransac, ransac_threshold=ransac_threshold,
            max_rms=max_rms, seed=seed,
        )
    if refine:
        result = refine_ecc(om_img.data, sem_img.data, result).result

    om_source = om_img.rgb if om_img.rgb is not None else om_img.data
    pair = warp_pair(om_source, sem_img.data, result.matrix, direction=direction, keep_resolution=keep_resolution)

    name = stem or pair_stem(om_path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    files = {
        "om": out / f"{name}_om.png",
        "sem": out / f"{name}_sem.png",
        "mask": out / f"{name}_mask.png",
        "transform": out / f"{name}_transform.json",
        "landmarks": out / f"{name}_landmarks.csv",
    }
    summary = _summary(result, pair, om_img, sem_img, direction, keep_resolution)
    write_png(files["om"], pair.om)
    write_png(files["sem"], pair.sem)
    write_png(files["mask"], pair.valid.astype(np.uint8) * 255)
    write_landmarks(files["landmarks"], result.om_points, result.sem_points)
    atomic_write_text(files["transform"], json.dumps(summary, indent=2) + "\n")
    return RegistrationOutput(result, pair, files, summary)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an image atomically as PNG: uint8 as is, floats in [0, 1] as 16-bit, RGB as colour."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.round(np.clip(arr, 0.0, 1.0) * 65535.0).astype(np.uint16)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)  # OpenCV stores BGR
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise InputError(f"{path}: cannot encode image of shape {arr.shape} as PNG")
    atomic_write_bytes(path, buf.tobytes())


def _summary(
    result: AffineResult,
    pair: RegisteredPair,
    om_img: LoadedImage,
    sem_img: LoadedImage,
    direction: str,
    keep_resolution: bool,
) -> dict:
    om_px, sem_px = om_img.pixel_size_um, sem_img.pixel_size_um
    if om_px is not None and sem_px is None:
        sem_px = om_px / result.scale
    if direction == "om-to-sem":
        om_out_px = sem_out_px = sem_px
    else:
        om_out_px = om_px
        sem_out_px = om_px / pair.factor if om_px is not None else None
    return {
        "om_image": str(om_img.path),
        "sem_image": str(sem_img.path),
        "om_shape": list(om_img.shape),
        "sem_shape": list(sem_img.shape),
        "direction": direction,
        "keep_resolution": keep_resolution,
        "factor": pair.factor,
        "output_om_shape": list(pair.om.shape[:2]),
        "output_sem_shape": list(pair.sem.shape[:2]),
        "convention": CONVENTION,
        **result.to_dict(),
        "matrix_om_to_output_om": pair.om_to_output.tolist(),
        "matrix_sem_to_output_sem": pair.sem_to_output.tolist(),
        "pixel_size_om_um": om_px,
        "pixel_size_sem_um": sem_px,
        "pixel_size_output_om_um": om_out_px,
        "pixel_size_output_sem_um": sem_out_px,
        "valid_fraction": float(pair.valid.mean()),
    }
