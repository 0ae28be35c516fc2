"""Binary (thresholded) images: measure the particles' geometry directly instead of through a network.

A binary image - a mask exported by ImageJ or another tool, an ISO TR 19672 reference frame, a
thresholded micrograph - carries no appearance beyond the outline, and the outline is exact: the
equivalent-circle diameter of each object is what ISO 13322-1 and ISO TR 19672 define as the particle
size. The learned detector was trained on grey-level micrographs; on ideal binary disks its raw radii
scatter (7 px ISO disks at the guide's 2x scale: diameters 2.7-8.3 px) and it misses disks (full
2048x2048 7 px frame: recall 0.63), while a labelling pass measures every disk in milliseconds.

Decision: an image is *binary* when at least ``BINARY_SHARE`` of its pixels lie within ``LEVEL_TOL`` of
its darkest or brightest level and each phase holds at least ``MIN_PHASE_SHARE`` of the pixels (JPEG
ringing or anti-aliased edges leave a few intermediate pixels; no microscope image with noise passes).
Such images skip the networks (``route: "binary"`` in summary.json):

1. particles are the phase that does not own the image frame (the border), or the minority phase when
   the border is split evenly; holes in objects are filled;
2. touching particles are split by the watershed of the Euclidean distance map, one marker per regional
   maximum of prominence >= ``H_MAX_PX`` (0.5 px, the tolerance of ImageJ's EDM watershed: lower splits
   the digitised ridges of one disk, higher merges small touching disks);
3. each object is reported as its equivalent circle: centroid and ``r = sqrt(area / pi)``; objects below
   ``MIN_RADIUS_PX`` are noise specks, not particles.

scikit-image provides each step (``h_maxima``, ``watershed``, ``regionprops``); only the decision and the
wiring are written here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# Share of pixels near the two extreme levels for an image to count as binary.
BINARY_SHARE = 0.995
# "Near" = within this fraction of the dynamic range of the darkest / brightest level.
LEVEL_TOL = 0.1
# Each phase must hold at least this share of the pixels (a blank frame with a speck is not a mask; 100
# disks of 2 px in a 2048x2048 frame hold 5e-5).
MIN_PHASE_SHARE = 2e-5
# Regional maxima of the distance map with a smaller prominence (px) are not separate particles.
H_MAX_PX = 0.5
# Objects with a smaller equivalent radius (px) are dropped (a 3x3 speck has r 1.7 px).
MIN_RADIUS_PX = 1.5


def binary_threshold(gray: np.ndarray) -> float | None:
    """The mid level between the two phases when ``gray`` is a binary image (module docstring), else None."""
    g = np.asarray(gray, np.float32)
    flat = g.ravel()
    if flat.size > 4_000_000:  # a bounded sample: 4 M pixels hold 80 at MIN_PHASE_SHARE
        flat = flat[:: flat.size // 4_000_000 + 1]
    lo, hi = float(flat.min()), float(flat.max())
    span = hi - lo
    if not np.isfinite(span) or span <= 0:
        return None
    dark = flat <= lo + LEVEL_TOL * span
    bright = flat >= hi - LEVEL_TOL * span
    if (dark | bright).mean() < BINARY_SHARE or min(dark.mean(), bright.mean()) < MIN_PHASE_SHARE:
        return None
    return lo + 0.5 * span


def _particle_mask(gray: np.ndarray, thresh: float) -> tuple[np.ndarray, str]:
    # the border / minority-phase rule of the ImageJ-style watershed baseline, one implementation
    from srpsa.baselines.watershed import detect_polarity

    polarity = detect_polarity(gray, thresh)
    mask = gray <= thresh if polarity == "dark" else gray > thresh
    return ndi.binary_fill_holes(mask), polarity


def detect_binary(gray: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Equivalent circles ``[x, y, r]`` (px, pixel centres at integers) of the particles of a binary image,
    their scores (1: the outline is exact) and what was decided."""
    from skimage import measure, morphology, segmentation

    g = np.asarray(gray, np.float32)
    mask, polarity = _particle_mask(g, thresh)
    dist = ndi.distance_transform_edt(mask)
    markers = measure.label(morphology.h_maxima(dist, H_MAX_PX) if mask.any() else mask)
    labels = segmentation.watershed(-dist, markers, mask=mask)
    # an object too small to hold a maximum of the required prominence keeps its own label
    lone = measure.label(mask & (labels == 0))
    labels = np.where(lone > 0, lone + labels.max(), labels)
    props = measure.regionprops(labels)
    circles = np.array([[p.centroid[1], p.centroid[0], np.sqrt(p.area / np.pi)] for p in props], np.float64).reshape(-1, 3)
    small = circles[:, 2] < MIN_RADIUS_PX
    circles = circles[~small]
    info = {"route": "binary", "size_from": "binary", "polarity": polarity, "threshold": float(thresh),
            "route_reason": "binary image: equivalent circles of the labelled objects (no network)"}
    if small.any():
        info["below_resolution"] = int(small.sum())
        info["warnings"] = [f"{int(small.sum())} objects of the binary image are below {2 * MIN_RADIUS_PX:g} px in "
                            "equivalent diameter: not measured (too few pixels for a size)"]
    return circles, np.ones(len(circles)), info
