"""Detect plus-shaped fiducial markers and pair them between the OM and the SEM image.

Markers (see docs/design.md): K opaque metal crosses near the corners of the OM field, dark in OM and
bright in SEM, several particle diameters long, with no particles under them. Detection needs no size
prior, so it works on both grids (the SEM grid is about twice as fine) and at any rotation:

1. the image is flipped so markers are bright, and thresholded at a few levels between the background
   (median) and the marker level (a high percentile);
2. each connected component is scored as a cross: it must be clearly non-convex (solidity), have no
   hole, and map onto itself under 90- and 180-degree rotations about its centroid (intersection over
   union). Discs are convex, particle rims are rings, clusters are not symmetric: only crosses pass;
3. the largest passing components (one per marker, deduplicated across thresholds) are kept and their
   centres measured to sub-pixel precision as the centre of point symmetry of their edges.

Pairing uses only geometry that survives an unknown scale: the angle of each marker around the centroid
of its set. The misregistration rotation is below 15 degrees, so sorting by angle and choosing the cyclic
shift with the smallest angle differences gives the correspondence without marker identities.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.signal import fftconvolve

from srpsa.errors import RegistrationError
from srpsa.io.images import to_gray
from srpsa.registration.estimate import AffineResult, fit_affine

__all__ = ["Fiducial", "detect_fiducials", "match_fiducials", "register_fiducials"]

log = logging.getLogger(__name__)

# Cross-shape test thresholds. A plus with arm width w and span L has solidity ~ (2w/L) / (1 - (1-w/L)^2/2),
# 0.2-0.75 for w/L in 0.05-0.4, while a disc has ~1. Symmetry IoU of a clean cross is > 0.9.
_MAX_SOLIDITY = 0.8
_MIN_SOLIDITY = 0.12
_MIN_SYMMETRY = 0.7
# Cheap pre-filter before the shape tests: largest fraction of its bounding box a marker can fill.
_MAX_BOX_FILL = 0.7
# Smallest fraction of the area inside its outline that a component must cover (no holes).
_MIN_FILL = 0.85
# Fractions of the way from background to marker level at which to threshold.
# The lowest catches faint markers (semi-transparent in OM, low contrast behind a blurred objective).
_LEVELS = (0.2, 0.35, 0.5, 0.65)
# Pixels around a thresholded marker whose edges count towards its centre (covers the blurred edge).
_EDGE_BAND = 4


@dataclass(frozen=True)
class Fiducial:
    """A detected marker: sub-pixel centre ``(x, y)``, area in pixels and cross-shape score in [0, 1]."""

    x: float
    y: float
    area: float
    score: float


def detect_fiducials(
    image: np.ndarray,
    *,
    polarity: str,
    max_markers: int = 4,
    min_area: int = 60,
    name: str = "image",
) -> list[Fiducial]:
    """Find plus-shaped markers.

    Parameters
    ----------
    image
        Gray ``(H, W)`` or colour ``(H, W, 3)`` image, float in [0, 1] or integer.
    polarity
        ``"dark"`` (markers darker than the background, OM) or ``"bright"`` (SEM).
    max_markers
        Keep at most this many (the largest crosses).
    min_area
        Smallest marker area in pixels considered.
    name
        Names the image in log messages.

    Returns
    -------
    list of Fiducial
        Sorted by decreasing area; may be shorter than ``max_markers`` (or empty).
    """
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
    img = to_gray(np.asarray(image, np.float32))  # the project's one gray conversion (luma)
    if polarity == "dark":
        img = -img
    # Light smoothing so single noisy pixels do not split thin arms.
    smooth = cv2.GaussianBlur(img, (0, 0), 1.0)
    background = float(np.median(smooth))
    peak = float(np.percentile(smooth, 99.9))
    if peak - background <= 1e-6:
        return []

    found: list[Fiducial] = []
    for level in _LEVELS:
        mask = (smooth > background + level * (peak - background)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for i in range(1, n):
            x0, y0, w, h, area = stats[i]
            if area < min_area or area > 0.25 * mask.size:
                continue  # too small to measure, or background/illumination rather than a marker
            if area > _MAX_BOX_FILL * w * h:
                continue  # fills its bounding box like a disc (pi/4); a cross fills < 0.6 at any angle
            if x0 == 0 or y0 == 0 or x0 + w == mask.shape[1] or y0 + h == mask.shape[0]:
                continue  # cut by the image border: its centroid would not be the marker centre
            comp = labels[y0 : y0 + h, x0 : x0 + w] == i
            score = _cross_score(comp)
            if score <= 0:
                continue
            cx, cy = _symmetry_centre(smooth, comp, x0, y0)
            found.append(Fiducial(cx, cy, float(area), score))
    kept = _deduplicate(found)[:max_markers]
    log.debug("%s: %d cross-shaped marker(s) kept of %d candidate(s)", name, len(kept), len(found))
    return kept


def match_fiducials(om: np.ndarray, sem: np.ndarray, *, max_rotation_deg: float = 45.0) -> tuple[np.ndarray, np.ndarray]:
    """Pair marker centres between modalities by their angle around the set's centroid.

    Parameters
    ----------
    om, sem
        ``(K, 2)`` and ``(L, 2)`` marker centres ``(x, y)``; at least 3 each. When the counts differ,
        every subset of the larger set with the smaller set's size is tried, and the pairing with the
        smallest angle mismatch plus affine misfit (scale-free) is kept.
    max_rotation_deg
        Reject a pairing whose mean angle difference exceeds this.

    Returns
    -------
    om_matched, sem_matched : numpy.ndarray
        ``(M, 2)`` corresponding points, ``M = min(K, L)``.

    Raises
    ------
    RegistrationError
        Fewer than 3 markers in either image, or no pairing within ``max_rotation_deg``.
    """
    om = np.asarray(om, np.float64).reshape(-1, 2)
    sem = np.asarray(sem, np.float64).reshape(-1, 2)
    if len(om) < 3 or len(sem) < 3:
        raise RegistrationError(
            f"fiducials: found {len(om)} marker(s) in the OM image and {len(sem)} in the SEM image; "
            "need at least 3 in each (give landmarks with --landmarks instead)"
        )
    m = min(len(om), len(sem))
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    for om_idx in itertools.combinations(range(len(om)), m):
        for sem_idx in itertools.combinations(range(len(sem)), m):
            angle_cost, a, b = _angle_pairing(om[list(om_idx)], sem[list(sem_idx)])
            # With spurious detections several subsets can have similar angles; the right one is also
            # consistent with a single affine (scale-free residual; always 0 for 3 points).
            total = angle_cost + _affine_misfit(a, b)
            if best is None or total < best[0]:
                best = (total, angle_cost, a, b)
    assert best is not None
    if np.degrees(best[1]) > max_rotation_deg:
        raise RegistrationError(
            f"fiducials: no consistent marker pairing (angle mismatch {np.degrees(best[1]):.0f} deg "
            f"> {max_rotation_deg:g} deg); give landmarks with --landmarks instead"
        )
    return best[2], best[3]


def _affine_misfit(a: np.ndarray, b: np.ndarray) -> float:
    """RMS residual of the least-squares affine a -> b relative to the spread of b (dimensionless)."""
    design = np.hstack([a, np.ones((len(a), 1))])
    coef, *_ = np.linalg.lstsq(design, b, rcond=None)
    spread = np.sqrt(np.mean(np.sum((b - b.mean(axis=0)) ** 2, axis=1)))
    rms = np.sqrt(np.mean(np.sum((design @ coef - b) ** 2, axis=1)))
    return float(rms / spread) if spread > 0 else float("inf")


def register_fiducials(
    om: np.ndarray,
    sem: np.ndarray,
    *,
    max_markers: int = 4,
    ransac: bool = False,
    ransac_threshold: float = 3.0,
    max_rms: float | None = None,
    seed: int = 0,
) -> AffineResult:
    """Detect markers in both images, pair them and fit the OM -> SEM affine.

    Parameters
    ----------
    om, sem
        OM image (markers dark) and SEM image (markers bright).
    max_markers
        Markers expected per image (the largest crosses are kept).
    ransac, ransac_threshold, max_rms, seed
        Passed to :func:`srpsa.registration.estimate.fit_affine`.

    Returns
    -------
    AffineResult
        Its ``om_points`` / ``sem_points`` are the paired marker centres.

    Raises
    ------
    RegistrationError
        Too few markers found, no consistent pairing, or a residual above ``max_rms``.
    """
    found_om = detect_fiducials(om, polarity="dark", max_markers=max_markers, name="OM image")
    found_sem = detect_fiducials(sem, polarity="bright", max_markers=max_markers, name="SEM image")
    log.debug("fiducials: %d in OM, %d in SEM", len(found_om), len(found_sem))
    pts_om = np.array([[f.x, f.y] for f in found_om]).reshape(-1, 2)
    pts_sem = np.array([[f.x, f.y] for f in found_sem]).reshape(-1, 2)
    a, b = match_fiducials(pts_om, pts_sem)
    result = fit_affine(
        a, b, ransac=ransac, ransac_threshold=ransac_threshold, max_rms=max_rms, seed=seed, what="fiducials"
    )
    return replace(result, method=f"fiducials+{result.method}")


def _angle_pairing(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Best cyclic correspondence of two equally sized point sets ordered by angle; cost in radians."""
    ang_a = _angles(a)
    ang_b = _angles(b)
    oa, ob = np.argsort(ang_a), np.argsort(ang_b)
    best_cost, best_shift = np.inf, 0
    for shift in range(len(a)):
        d = ang_b[np.roll(ob, -shift)] - ang_a[oa]
        d = np.angle(np.exp(1j * d))  # wrap to (-pi, pi]
        # A global rotation is allowed: the cost is the spread around the mean difference plus the mean
        # itself (the rotation is small), so a one-step cyclic shift (~90 deg for 4 markers) loses.
        mean = np.angle(np.mean(np.exp(1j * d)))
        cost = float(np.sqrt(np.mean(np.angle(np.exp(1j * (d - mean))) ** 2)) + abs(mean))
        if cost < best_cost:
            best_cost, best_shift = cost, shift
    return best_cost, a[oa], b[np.roll(ob, -best_shift)]


def _angles(points: np.ndarray) -> np.ndarray:
    d = points - points.mean(axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def _cross_score(comp: np.ndarray) -> float:
    """Cross-likeness of a component mask: 0 if rejected, else its mean rotational-symmetry IoU."""
    mask = comp.astype(np.uint8)
    area = float(mask.sum())
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=cv2.contourArea)
    # A cross has no hole; the bright rim of a particle (or its dark OM outline) is a ring that would
    # otherwise pass both tests below. The outline's area counts boundary pixels half, hence the slack.
    filled = cv2.contourArea(outline) + 0.5 * len(outline)
    if area < _MIN_FILL * filled:
        return 0.0
    hull_area = cv2.contourArea(cv2.convexHull(np.vstack(contours)))
    if hull_area <= 0:
        return 0.0
    solidity = area / hull_area
    if not _MIN_SOLIDITY < solidity < _MAX_SOLIDITY:
        return 0.0
    # Rotate about the centroid inside a square canvas large enough for any rotation. The half-turn
    # goes first: most clusters already fail it, which saves the second warp.
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    half = int(np.ceil(np.hypot(ys - cy, xs - cx).max())) + 3
    canvas = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    canvas[ys - int(round(cy)) + half, xs - int(round(cx)) + half] = 1.0
    centre = (half + (cx - round(cx)), half + (cy - round(cy)))
    base = canvas > 0.5
    score = 1.0
    for angle in (180.0, 90.0):
        rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = cv2.warpAffine(canvas, rot, canvas.shape[::-1], flags=cv2.INTER_LINEAR) > 0.5
        score = min(score, np.count_nonzero(base & turned) / max(1, np.count_nonzero(base | turned)))
        if score < _MIN_SYMMETRY:
            return 0.0
    return float(score)


def _symmetry_centre(smooth: np.ndarray, comp: np.ndarray, x0: int, y0: int) -> tuple[float, float]:
    """Sub-pixel centre of a marker as its centre of point symmetry, found from its edges.

    A cross maps onto itself under a 180-degree turn about its centre, so the self-convolution of its
    edge map peaks at twice the centre. Edges are used rather than intensities because the marker's
    brightness is not uniform (SEM shadowing next to tall particles, OM illumination fall-off): shading
    changes edge strengths but not edge positions. The edge map is restricted to the dilated component
    so separate particles nearby do not take part; the peak is located with a parabola per axis.
    """
    pad = _EDGE_BAND + 2
    h, w = smooth.shape
    ya, yb = max(0, y0 - pad), min(h, y0 + comp.shape[0] + pad)
    xa, xb = max(0, x0 - pad), min(w, x0 + comp.shape[1] + pad)
    region = np.zeros((yb - ya, xb - xa), np.uint8)
    region[y0 - ya : y0 - ya + comp.shape[0], x0 - xa : x0 - xa + comp.shape[1]] = comp
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _EDGE_BAND + 1, 2 * _EDGE_BAND + 1))
    region = cv2.dilate(region, disc).astype(np.float32)
    win = np.ascontiguousarray(smooth[ya:yb, xa:xb])
    edges = np.hypot(cv2.Sobel(win, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(win, cv2.CV_32F, 0, 1, ksize=3)) * region
    conv = fftconvolve(edges, edges, mode="full")
    i, j = np.unravel_index(int(np.argmax(conv)), conv.shape)
    di = _parabola_peak(conv, i, j, axis=0)
    dj = _parabola_peak(conv, i, j, axis=1)
    return float(xa + (j + dj) / 2.0), float(ya + (i + di) / 2.0)


def _parabola_peak(values: np.ndarray, i: int, j: int, axis: int) -> float:
    """Offset of the vertex of the parabola through a maximum and its two neighbours along ``axis``."""
    n = values.shape[axis]
    k = i if axis == 0 else j
    if k == 0 or k == n - 1:
        return 0.0
    a, b, c = (values[i - 1, j], values[i, j], values[i + 1, j]) if axis == 0 else (values[i, j - 1], values[i, j], values[i, j + 1])
    denom = a - 2.0 * b + c
    return float(0.5 * (a - c) / denom) if denom < 0 else 0.0


def _deduplicate(found: list[Fiducial]) -> list[Fiducial]:
    """Keep one detection per marker (the same marker passes at several thresholds), largest first."""
    kept: list[Fiducial] = []
    for f in sorted(found, key=lambda f: (-f.score, -f.area)):
        if all(np.hypot(f.x - k.x, f.y - k.y) > np.sqrt(max(f.area, k.area)) for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: -f.area)
