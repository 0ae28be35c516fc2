"""Resample one image of an OM/SEM pair onto the other's pixel grid with an estimated affine.

Directions:

- ``sem-to-om`` (default): the SEM image is resampled onto the OM grid (OM field, OM pixel size); the OM
  image is kept as it is. With ``keep_resolution`` the SEM is resampled onto the OM field at ``factor``
  times finer pixels, ``factor`` being the SEM/OM scale rounded to an integer (usually 2); the OM image
  still keeps its own grid. The integer factor makes every OM pixel exactly ``factor x factor`` SEM
  pixels, which patch extraction for training (srpsa.training.prepare) relies on.
- ``om-to-sem``: the OM image is resampled onto the SEM grid (SEM field, SEM pixel size); the SEM image
  is kept as it is.

Pixel centres are at integer coordinates (docs/design.md). A pixel ``(u, v)`` of a grid ``factor``
times finer than the OM grid has OM coordinates ``((u + 0.5) / factor - 0.5, (v + 0.5) / factor - 0.5)``.
When a warp shrinks its source, the source is low-pass filtered first (Gaussian, sigma = (r - 1) / 2 for
a shrink ratio r, the rule scikit-image uses) so fine SEM detail does not alias.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from srpsa.errors import InputError

__all__ = [
    "DIRECTIONS",
    "RegisteredPair",
    "grid_matrix",
    "resolution_factor",
    "warp_affine",
    "warp_pair",
]

DIRECTIONS = ("sem-to-om", "om-to-sem")


@dataclass(frozen=True)
class RegisteredPair:
    """Both images on a common grid.

    Attributes
    ----------
    om, sem
        float32 registered images covering the same field (OM keeps its channels). ``sem`` has
        ``factor`` times as many rows and columns as ``om``.
    valid
        bool, shape of ``sem``: pixels where the resampled image is fully defined (elsewhere it is 0).
    direction
        ``"sem-to-om"`` or ``"om-to-sem"``.
    factor
        SEM output pixels per OM output pixel along each axis: 1, or the integer SEM/OM scale for
        ``sem-to-om`` with ``keep_resolution``.
    om_to_output, sem_to_output
        ``(3, 3)`` affine matrices mapping original OM / SEM pixel coordinates to the pixel
        coordinates of ``om`` / ``sem`` respectively.
    """

    om: np.ndarray
    sem: np.ndarray
    valid: np.ndarray
    direction: str
    factor: int
    om_to_output: np.ndarray
    sem_to_output: np.ndarray


def resolution_factor(matrix: np.ndarray) -> int:
    """SEM pixels per OM pixel of an OM -> SEM affine, rounded to an integer >= 1."""
    return max(1, int(round(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:2, :2]))))))


def grid_matrix(factor: int) -> np.ndarray:
    """Affine taking OM pixel coordinates to a grid ``factor`` times finer covering the same field."""
    shift = (factor - 1) / 2.0
    return np.array([[factor, 0.0, shift], [0.0, factor, shift], [0.0, 0.0, 1.0]])


def warp_affine(
    image: np.ndarray,
    out_to_src: np.ndarray,
    out_shape: tuple[int, int],
    *,
    border: str = "constant",
) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` at ``out_to_src @ (u, v, 1)`` for each output pixel ``(u, v)``.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` (C <= 4) source image.
    out_to_src
        ``(3, 3)`` affine from output pixel coordinates to source pixel coordinates.
    out_shape
        ``(rows, cols)`` of the output.
    border
        ``"constant"`` (0 outside the source) or ``"replicate"``.

    Returns
    -------
    warped : numpy.ndarray
        float32 output.
    valid : numpy.ndarray
        bool ``(rows, cols)``, True where the sample lies inside the source image.
    """
    src = np.asarray(image, np.float32)
    # Source pixels per output pixel: above 1 the warp shrinks and must be low-passed first.
    ratio = float(np.sqrt(abs(np.linalg.det(out_to_src[:2, :2]))))
    if ratio > 1.0 + 1e-6:
        src = cv2.GaussianBlur(src, (0, 0), (ratio - 1.0) / 2.0)
    size = (int(out_shape[1]), int(out_shape[0]))
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(src, out_to_src[:2].astype(np.float64), size, flags=flags, borderMode=mode, borderValue=0)
    if src.ndim == 3 and warped.ndim == 2:
        warped = warped[..., None]
    ones = np.ones(src.shape[:2], np.float32)
    coverage = cv2.warpAffine(ones, out_to_src[:2].astype(np.float64), size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    return warped, coverage > 0.999


def warp_pair(
    om: np.ndarray,
    sem: np.ndarray,
    matrix: np.ndarray,
    *,
    direction: str = "sem-to-om",
    keep_resolution: bool = False,
) -> RegisteredPair:
    """Bring an OM/SEM pair onto a common grid.

    Parameters
    ----------
    om, sem
        Source images (OM may have channels).
    matrix
        ``(3, 3)`` affine mapping OM pixels to SEM pixels.
    direction
        ``"sem-to-om"`` or ``"om-to-sem"`` (see the module docstring).
    keep_resolution
        For ``sem-to-om``: resample the SEM onto the OM field at the SEM pixel size (integer factor)
        instead of the OM pixel size.

    Returns
    -------
    RegisteredPair

    Raises
    ------
    InputError
        Unknown direction, or ``keep_resolution`` with ``om-to-sem`` (that grid already is the SEM's).
    """
    matrix = np.asarray(matrix, np.float64)
    if direction not in DIRECTIONS:
        raise InputError(f"--direction: expected one of {', '.join(DIRECTIONS)}, got {direction!r}")
    sem_h, sem_w = sem.shape[:2]
    om_h, om_w = om.shape[:2]
    if direction == "om-to-sem":
        if keep_resolution:
            raise InputError("--keep-resolution: only applies to --direction sem-to-om (om-to-sem is on the SEM grid already)")
        om_out, valid = warp_affine(om, np.linalg.inv(matrix), (sem_h, sem_w), border="constant")
        sem_out = np.asarray(sem, np.float32).copy()
        return RegisteredPair(om_out, sem_out, valid, direction, 1, matrix.copy(), np.eye(3))

    factor = resolution_factor(matrix) if keep_resolution else 1
    to_fine = grid_matrix(factor)
    sem_out, valid = warp_affine(sem, matrix @ np.linalg.inv(to_fine), (om_h * factor, om_w * factor))
    om_out = np.asarray(om, np.float32).copy()
    return RegisteredPair(om_out, sem_out, valid, direction, factor, np.eye(3), to_fine @ np.linalg.inv(matrix))
