"""Affine transform from corresponding points (OM pixels -> SEM pixels), with optional RANSAC.

The paper (section 3.1) registers each OM/SEM pair with an affine transform fitted to landmarks: fiducial
markers or points picked by a user. The fit here is a least-squares affine (scikit-image), optionally
preceded by RANSAC to drop mismatched landmarks, and it refuses results it cannot vouch for: fewer than
three pairs, (nearly) collinear points, or an RMS residual above a threshold.

Coordinates: ``(x, y)`` with ``x`` = column and ``y`` = row, pixel centres at integer coordinates, the
same convention as OpenCV's ``warpAffine`` and scikit-image's transforms. Residuals are in SEM pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
from skimage.measure import ransac as skimage_ransac
from skimage.transform import AffineTransform

from srpsa.errors import RegistrationError

__all__ = ["AffineResult", "check_spread", "fit_affine", "transform_points"]

log = logging.getLogger(__name__)

# Ratio of the smaller to the larger singular value of the centred point cloud below which the points
# are treated as lying on a line: the affine is then undetermined across that line.
MIN_SPREAD_RATIO = 1e-2


@dataclass(frozen=True)
class AffineResult:
    """An estimated affine registration.

    Attributes
    ----------
    matrix
        ``(3, 3)`` float64 matrix mapping homogeneous OM pixel coordinates ``(x, y, 1)`` to SEM pixels.
    rms_px
        Root-mean-square residual of the inliers, in SEM pixels.
    inliers
        ``(N,)`` bool mask of the landmarks used in the final fit.
    residuals
        ``(N,)`` distance between each mapped OM landmark and its SEM landmark, in SEM pixels.
    method
        How the matrix was obtained (``"least-squares"``, ``"ransac"``, with ``"+ecc"`` if refined).
    om_points, sem_points
        ``(N, 2)`` landmark pairs the fit used (OM and SEM pixels).
    info
        Extra JSON-serialisable details (e.g. refinement metrics).
    """

    matrix: np.ndarray
    rms_px: float
    inliers: np.ndarray
    residuals: np.ndarray
    method: str = "least-squares"
    om_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    sem_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    info: dict = field(default_factory=dict)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` OM points to SEM pixels."""
        return transform_points(self.matrix, points)

    @property
    def scale(self) -> float:
        """Mean linear scale, SEM pixels per OM pixel (square root of the determinant)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:2, :2]))))

    @property
    def rotation_deg(self) -> float:
        """Angle θ (degrees) of the rotation [[cos θ, -sin θ], [sin θ, cos θ]] nearest the linear part.

        With y pointing down in images, a positive angle turns clockwise on screen.
        """
        a = self.matrix[:2, :2]
        return float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))

    def with_matrix(self, matrix: np.ndarray, method: str, info: dict | None = None) -> AffineResult:
        """A copy with another matrix (e.g. refined), residuals recomputed on the same landmarks."""
        residuals = np.linalg.norm(transform_points(matrix, self.om_points) - self.sem_points, axis=1)
        rms = float(np.sqrt(np.mean(residuals[self.inliers] ** 2))) if self.inliers.any() else float("nan")
        merged = {**self.info, **(info or {})}
        return replace(self, matrix=np.asarray(matrix, np.float64), rms_px=rms, residuals=residuals, method=method, info=merged)

    def to_dict(self) -> dict:
        """JSON-serialisable summary."""
        return {
            "matrix_om_to_sem": self.matrix.tolist(),
            "rms_px": float(self.rms_px),
            "n_landmarks": int(len(self.inliers)),
            "n_inliers": int(np.count_nonzero(self.inliers)),
            "inliers": [bool(v) for v in self.inliers],
            "residuals_px": [float(v) for v in self.residuals],
            "scale": self.scale,
            "rotation_deg": self.rotation_deg,
            "method": self.method,
            "landmarks_om": self.om_points.tolist(),
            "landmarks_sem": self.sem_points.tolist(),
            **self.info,
        }


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(3, 3)`` affine matrix to ``(N, 2)`` points."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


def check_spread(points: np.ndarray, what: str = "landmarks") -> None:
    """Raise :class:`RegistrationError` unless ``points`` span a 2-D region.

    The test is scale-free: the ratio of the singular values of the centred point cloud (the square
    root of its condition number), so it flags collinear and coincident points alike.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) < 3:
        raise RegistrationError(f"{what}: an affine needs at least 3 point pairs, got {len(pts)}")
    sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
    if sv[0] <= 1e-9 or sv[1] / sv[0] < MIN_SPREAD_RATIO:
        raise RegistrationError(
            f"{what}: points are (nearly) collinear or coincident (spread ratio "
            f"{(sv[1] / sv[0]) if sv[0] > 0 else 0:.2g} < {MIN_SPREAD_RATIO}); pick points that form a triangle"
        )


def fit_affine(
    om: np.ndarray,
    sem: np.ndarray,
    *,
    ransac: bool = False,
    ransac_threshold: float = 3.0,
    max_trials: int = 2000,
    max_rms: float | None = None,
    seed: int | np.random.Generator = 0,
    what: str = "landmarks",
) -> AffineResult:
    """Fit an affine transform mapping OM points onto SEM points.

    Parameters
    ----------
    om, sem
        ``(N, 2)`` corresponding points ``(x, y)`` in OM and SEM pixels, ``N >= 3``.
    ransac
        Run RANSAC first (inlier threshold ``ransac_threshold`` SEM pixels) and fit the inliers only.
    ransac_threshold
        Maximum residual (SEM pixels) for a landmark to count as an inlier.
    max_trials
        RANSAC iterations.
    max_rms
        If given, raise when the RMS residual of the inliers (SEM pixels) exceeds it.
    seed
        Seed or generator for RANSAC's sampling.
    what
        Name of the point source used in error messages (e.g. the landmark file).

    Returns
    -------
    AffineResult

    Raises
    ------
    RegistrationError
        Fewer than 3 pairs, mismatched counts, collinear points, too few RANSAC inliers, or an RMS
        residual above ``max_rms``.
    """
    src = np.asarray(om, np.float64).reshape(-1, 2)
    dst = np.asarray(sem, np.float64).reshape(-1, 2)
    if len(src) != len(dst):
        raise RegistrationError(f"{what}: {len(src)} OM points but {len(dst)} SEM points")
    check_spread(src, f"{what} (OM)")
    check_spread(dst, f"{what} (SEM)")

    inliers = np.ones(len(src), bool)
    method = "least-squares"
    if ransac and len(src) > 3:
        inliers = _ransac_inliers(src, dst, ransac_threshold, max_trials, seed, what)
        method = "ransac"
        check_spread(src[inliers], f"{what} (RANSAC inliers)")
    if len(src) == 3:
        log.warning("%s: 3 point pairs determine an affine exactly, so its residual cannot reveal a bad pick", what)

    model = AffineTransform.from_estimate(src[inliers], dst[inliers])
    if not model:
        raise RegistrationError(f"{what}: affine estimation failed ({model})")
    matrix = np.array(model.params, np.float64)
    residuals = np.linalg.norm(transform_points(matrix, src) - dst, axis=1)
    rms = float(np.sqrt(np.mean(residuals[inliers] ** 2)))
    if max_rms is not None and rms > max_rms:
        worst = int(np.argmax(np.where(inliers, residuals, -1)))
        raise RegistrationError(
            f"{what}: RMS residual {rms:.2f} px exceeds the limit {max_rms:g} px "
            f"(worst: landmark {worst + 1} at {residuals[worst]:.2f} px); check the points or use RANSAC"
        )
    return AffineResult(
        matrix=matrix, rms_px=rms, inliers=inliers, residuals=residuals, method=method, om_points=src, sem_points=dst
    )


def _ransac_inliers(
    src: np.ndarray, dst: np.ndarray, threshold: float, max_trials: int, seed: int | np.random.Generator, what: str
) -> np.ndarray:
    def sample_ok(s: np.ndarray, d: np.ndarray) -> bool:
        # Skip degenerate (collinear) minimal samples instead of fitting nonsense to them.
        for pts in (s, d):
            sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
            if sv[0] <= 1e-9 or sv[1] / sv[0] < MIN_SPREAD_RATIO:
                return False
        return True

    model, inliers = skimage_ransac(
        (src, dst),
        AffineTransform,
        min_samples=3,
        residual_threshold=threshold,
        max_trials=max_trials,
        is_data_valid=sample_ok,
        rng=seed,
    )
    if not model or inliers is None or np.count_nonzero(inliers) < 3:
        raise RegistrationError(
            f"{what}: RANSAC found fewer than 3 consistent point pairs within {threshold:g} px"
        )
    return np.asarray(inliers, bool)
