"""Binary and two-level images: measure the particles' geometry directly instead of through a network.

A binary image - a mask exported by ImageJ or another tool, an ISO TR 19672 reference frame, a
thresholded micrograph - carries no appearance beyond the outline, and the outline is exact: the
equivalent-circle diameter of each object is what ISO 13322-1 and ISO TR 19672 define as the particle
size. A *two-level* image is its rendered or imaged twin: two flat phases (particles, ground) with only
anti-aliasing, a little blur and noise between them - ideal-disk reference images, clean renders,
flat-field TEM of discs. The learned detector was trained on grey-level micrographs; on ideal disks its
radii scatter (7 px ISO disks at the guide's 2x scale: diameters 2.7-8.3 px), it misses dense small disks
(recall 0.81 on dense anti-aliased 7 px disks, with a quality verdict of ok) and it sizes 20-90 px disks
+1.5-2.8 % large, while a labelling pass measures every disk.

Decision: an image takes this route (``route: "binary"`` in summary.json, no model) when either

- *binary*: at least ``BINARY_SHARE`` of its pixels lie within ``LEVEL_TOL`` of its darkest or brightest
  level and each phase holds at least ``MIN_PHASE_SHARE`` of the pixels (JPEG ringing or anti-aliased
  edges leave a few intermediate pixels); or
- *two-level*: after an Otsu split, with an edge band of ``BANDS_PX`` (2, 3 or 4 px of blur and
  anti-aliasing), the particle interiors (``band + 1`` px deep, ``INNER_FLAT_SHARE``), the ground beyond
  the band (``FLAT_SHARE``) and each object's own ring just outside the band (``OBJECT_RING_SHARE`` of
  its pixels, for ``FLAT_SHARE`` of the objects) lie within ``FLAT_SIGMAS`` pixel-noise deviations of
  their phase's median; the band's pixels lie between the two levels (``EDGE_SHARE``); the medians are
  ``SEPARATION`` deviations apart; and no object holds a hole of over ``RING_HOLE_SHARE`` of it. Rims,
  halos, bright centres, shading, texture, vignetting and ordinary micrograph noise all fail it (the
  generalisation benchmark's OM, SEM and AMPIS images do; docs/decisions.md). The test reads a centred
  window of at most ``TEST_PIXELS``; on a larger frame the ground's median on each of ``TILES`` x
  ``TILES`` tiles must also be the window's (vignetting or shading outside the window).

Measurement:

1. particles are the phase that does not own the image frame (the border), or the minority phase when
   the border is split evenly; a hole inside one object is filled, one between touching objects (an
   interstice) stays ground;
2. touching particles are split by the watershed of the Euclidean distance map, one marker per regional
   maximum of prominence >= ``H_MAX_PX`` (0.5 px, the tolerance of ImageJ's EDM watershed: lower splits
   the digitised ridges of one disk, higher merges small touching disks);
3. each object's area is the sum of its pixels' *coverage* ``(I - ground) / (particle - ground)`` over
   its region grown by the edge band: anti-aliasing and blur move intensity across the edge but keep its
   sum, so the area is sub-pixel exact where a threshold is not (a mid-level threshold sizes 7 px disks
   blurred by 1 px -3 %); ``r = sqrt(area / pi)`` at the coverage-weighted centroid. On a binary image
   the coverage is the mask and this is the pixel count. Objects below ``MIN_RADIUS_PX`` are specks.

scikit-image provides the labelling steps (``threshold_otsu``, ``h_maxima``, ``watershed``,
``expand_labels``) and SciPy the per-label sums; only the decision and the wiring are written here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import ndimage as ndi

from srpsa.inference.window import centred_window

# Share of pixels near the two extreme levels for an image to count as binary.
BINARY_SHARE = 0.995
# "Near" = within this fraction of the dynamic range of the darkest / brightest level.
LEVEL_TOL = 0.1
# Each phase must hold at least this share of the pixels (a blank frame with a speck is not a mask; 100
# disks of 2 px in a 2048x2048 frame hold 5e-5).
MIN_PHASE_SHARE = 2e-5
# Two-level test: edge bands tried (px of blur + anti-aliasing between the phases) ...
BANDS_PX = (2, 3, 4)
# ... share of the phase interiors and of the ring outside the objects that must be flat, ...
FLAT_SHARE = 0.99
# ... (particle interiors: this share; the blurred interstices between dense touching small disks fall
# inside the particle phase: 4 % of the interior of dense touching 7 px disks) ...
INNER_FLAT_SHARE = 0.95
# ... the edge band's pixels must lie between the two levels (no overshoot: an SEM edge glow, a rim or a
# dark ring in the band puts 1-18 % of them outside; ideal disks 0) on this share ...
EDGE_SHARE = 0.999
# ... "flat" = within this many robust standard deviations of the phase's median, ...
FLAT_SIGMAS = 4.0
# ... and the phase medians at least this many apart (noise then crosses the mid level on ~3e-5 of the
# pixels: specks and pinholes, which the speck rule and the hole filling remove).
SEPARATION = 8.0
OBJECT_RING_SHARE = 0.9  # ... per object: pixel noise leaves 1e-4 of a flat ring outside, a skirt or halo far more
RING_HOLE_SHARE = 0.05  # a hole inside one object larger than this share of it: a ringed particle
RING_PX = 3  # width of the ring outside the objects that must be at the ground level (no rim, no halo)
MIN_TEST_PIXELS = 50  # fewer interior pixels of either phase: no evidence either way, not two-level
TEST_PIXELS = 2048 * 2048  # the test reads a centred window of at most this many pixels ...
TILES = 4  # ... and a larger frame's ground must agree with the window's on each tile of this grid
# Two-level images: the markers of touching particles come from the pixels beyond this share of the contrast.
CORE_LEVEL = 0.75
# Regional maxima of the distance map with a smaller prominence (px) are not separate particles.
H_MAX_PX = 0.5
# Objects with a smaller equivalent radius (px) are dropped (a 3x3 speck has r 1.7 px).
MIN_RADIUS_PX = 1.5


@dataclass(frozen=True)
class Phases:
    """The two levels of a binary or two-level image and how they were found."""

    threshold: float  # mid level between the phases
    particle: float | None  # level of the particle phase (None: a mask, whose coverage is the mask itself)
    ground: float | None
    kind: str  # "binary" or "two-level"
    band_px: int  # edge band the coverage sums over (0: a mask, the outline is exact)
    polarity: str | None = None  # "dark" / "bright" particles, as the test decided (None: decide on the image)
    tolerance: float = 0.0  # two-level: FLAT_SIGMAS pixel-noise deviations, the flatness tolerance used


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


def find_phases(gray: np.ndarray) -> Phases | None:
    """The image's two phases when it is binary or two-level (module docstring), else None."""
    g = np.asarray(gray, np.float32)
    if g.ndim != 2:
        return None  # the caller converts to gray (srpsa.io.to_gray); a colour array is not a mask
    # the two-level test also where the binary one holds: the coverage measures a blurred or
    # anti-aliased mask better than its threshold does (sparse ISO-like 7 px disks blurred by 1 px: -3.1 %
    # by threshold); a pure mask gives the same areas either way and keeps its name
    t = binary_threshold(g)
    window = g[centred_window(g.shape, TEST_PIXELS)]
    levels = _two_level(window)
    if levels is not None and window.size < g.size and not _ground_agrees(g, levels):
        levels = None  # the frame's ground is not the window's (vignetting, shading outside the window)
    if levels is not None:
        return replace(levels, kind="binary") if t is not None else levels
    return Phases(t, None, None, "binary", 0) if t is not None else None


def _ground_agrees(g: np.ndarray, phases: Phases, tiles: int = TILES, samples: int = 250_000) -> bool:
    """Whether every tile of a ``tiles`` x ``tiles`` grid over the whole frame has its ground (the pixels
    on the ground's side of the mid level) at the window's ground level, within the test's tolerance:
    the test reads only a centred window, and the coverage takes its levels for the whole frame."""
    assert phases.ground is not None and phases.particle is not None
    h, w = g.shape
    on_ground = (lambda v: v > phases.threshold) if phases.ground > phases.particle else (lambda v: v <= phases.threshold)
    for i in range(tiles):
        for j in range(tiles):
            tile = g[i * h // tiles:(i + 1) * h // tiles, j * w // tiles:(j + 1) * w // tiles]
            step = max(1, int(np.sqrt(tile.size / samples)))
            v = tile[::step, ::step].ravel()
            v = v[on_ground(v)]
            if v.size and abs(float(np.median(v)) - phases.ground) > phases.tolerance:
                return False
    return True


def _pixel_noise(g: np.ndarray, region: np.ndarray) -> float:
    """Robust standard deviation of the pixel noise in ``region``: MAD of horizontal neighbour differences
    whose both pixels lie in it, / sqrt(2)."""
    both = region[:, 1:] & region[:, :-1]
    d = (g[:, 1:] - g[:, :-1])[both]
    if d.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2.0)


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _two_level(g: np.ndarray) -> Phases | None:
    from skimage.filters import threshold_otsu

    if g.size < 16 * 16 or not np.isfinite(g).all() or float(g.max()) <= float(g.min()):
        return None
    mask, polarity = _particle_mask(g, float(threshold_otsu(g)))
    mask = mask.astype(np.uint8)
    span = float(g.max() - g.min())
    # a noise floor: half a grey level on integer data (a clean 8-bit render has a MAD of 0, and one
    # level of rounding must not count as structure), a thousandth of the range otherwise
    sample = g[:: max(1, g.shape[0] // 256), :: max(1, g.shape[1] // 256)]
    floor = 0.5 if np.array_equal(sample, np.round(sample)) else 1e-3 * span
    depth = ndi.distance_transform_edt(mask)
    for band in BANDS_PX:
        # particle interiors one pixel deeper than the band: a small disk's rim pixels are still in the
        # blur's tail at the band's depth (7 px disks with 0.8 px blur: 4.5 % of them off at depth 2), and
        # their median would be off the particle level (7 px disks, 1 px blur: 6 of 255, +1.2 % in
        # diameter through the coverage)
        inner = depth >= band + 1
        outer = cv2.dilate(mask, _disk(band), borderType=cv2.BORDER_REPLICATE).astype(bool)
        ring = cv2.dilate(mask, _disk(band + RING_PX), borderType=cv2.BORDER_REPLICATE).astype(bool) & ~outer
        ground = ~outer
        if min(inner.sum(), ground.sum(), ring.sum()) < MIN_TEST_PIXELS:
            return None
        mp, mg = float(np.median(g[inner])), float(np.median(g[ground]))
        # the pixel noise, from neighbour differences inside each phase: a spread of the levels themselves
        # (vignetting, shading, halos) must not pass for noise and widen the tolerance
        sigma = max(_pixel_noise(g, inner), _pixel_noise(g, ground), floor)
        if abs(mp - mg) < SEPARATION * sigma:
            return None  # noisy or textured phases: a wider band does not change that
        tol = FLAT_SIGMAS * sigma
        flat_in = float(np.mean(np.abs(g[inner] - mp) <= tol))
        edge = outer & ~inner
        between = float(np.mean((g[edge] >= min(mp, mg) - tol) & (g[edge] <= max(mp, mg) + tol)))
        if (flat_in >= INNER_FLAT_SHARE and float(np.mean(np.abs(g[ground] - mg) <= tol)) >= FLAT_SHARE
                and between >= EDGE_SHARE and _sharp_objects(g, mask, ring, band, mg, tol) >= FLAT_SHARE):
            phases = Phases(0.5 * (mp + mg), mp, mg, "two-level", band, polarity, tol)
            return None if _ringed_objects(g, phases) else phases
    return None


def _sharp_objects(g: np.ndarray, mask: np.ndarray, ring: np.ndarray, band: int, ground: float, tol: float) -> float:
    """Share of the objects whose own ring (``RING_PX`` outside the edge band) is at the ground level on
    at least ``OBJECT_RING_SHARE`` of its pixels: per object, so that a few defocused particles (whose
    blur skirt outruns the band) or halos are not diluted by many sharp ones or by a wide flat ground."""
    from skimage import measure, segmentation

    comps = measure.label(mask.astype(bool))
    n = int(comps.max())
    if n == 0:
        return 0.0
    owner = np.where(ring, segmentation.expand_labels(comps, distance=band + RING_PX), 0)
    count = np.bincount(owner.ravel(), minlength=n + 1)[1:]
    good = np.bincount(owner[np.abs(g - ground) <= tol], minlength=n + 1)[1:]
    has = count > 0
    if not has.any():
        return 0.0
    return float(np.mean(good[has] / count[has] >= OBJECT_RING_SHARE))


def _ringed_objects(g: np.ndarray, phases: Phases) -> bool:
    """Whether some particle has a hole at the ground level inside it (a ring, or a lens spot as bright
    as the ground): its area is not its outline's. A hole surrounded by one object (after the split of
    touching ones) is inside a particle; one between several (an interstice) is ground."""
    from skimage import measure

    mask, polarity = _particle_mask(g, phases.threshold, phases.polarity)
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return False
    labels = _split(g, mask, phases, polarity)
    hole_lab = measure.label(holes)
    owners = _hole_owners(labels, hole_lab)
    if not (owners > 0).any():
        return False
    hole_area = np.bincount(hole_lab.ravel())[1:]
    owner_area = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    inside = owners > 0
    # pinholes and the odd pixel of an interstice that one object's territory wraps: not a ring
    return bool(np.any(hole_area[inside] > RING_HOLE_SHARE * owner_area[owners[inside]]))


def _hole_owners(labels: np.ndarray, hole_lab: np.ndarray) -> np.ndarray:
    """Per hole component (``hole_lab``: the labelled holes): the one label all around it, or 0 when
    several labels border it."""
    from skimage import segmentation

    n = int(hole_lab.max())
    if n == 0:
        return np.zeros(0, np.int64)
    grown = segmentation.expand_labels(hole_lab, distance=1.5)
    border = (grown > 0) & (hole_lab == 0) & (labels > 0)
    pairs = np.unique(np.stack([grown[border], labels[border]], axis=1), axis=0)
    count = np.bincount(pairs[:, 0], minlength=n + 1)
    owner = np.zeros(n + 1, np.int64)
    single = pairs[count[pairs[:, 0]] == 1]
    owner[single[:, 0]] = single[:, 1]
    return owner[1:]


def _particle_mask(gray: np.ndarray, thresh: float, polarity: str | None = None) -> tuple[np.ndarray, str]:
    # the border / minority-phase rule of the ImageJ-style watershed baseline, one implementation
    from srpsa.baselines.watershed import detect_polarity

    polarity = polarity or detect_polarity(gray, thresh)
    return (gray <= thresh if polarity == "dark" else gray > thresh), polarity


def _split(g: np.ndarray, mask: np.ndarray, phases: Phases, polarity: str) -> np.ndarray:
    """Label image of the objects of ``mask``, touching ones split (module docstring, step 2)."""
    from skimage import measure, morphology, segmentation

    # markers from the particles' cores: blur fills the neck between touching small disks up to about
    # half the contrast, so at the mid level two touching 7 px disks are one object whose distance map
    # has a single maximum; above CORE_LEVEL of the contrast they are apart (a mask: its own map)
    core_mask = mask if phases.particle is None else _particle_mask(g, _core_threshold(phases), polarity)[0]
    core = ndi.distance_transform_edt(core_mask)
    del core_mask
    markers = measure.label(morphology.h_maxima(core, H_MAX_PX) if mask.any() else mask)
    # the split lines follow the cores' distance map (on a mask, the mask's): it has its valleys at the
    # necks, which the mid level's map lacks for small blurred disks
    labels = segmentation.watershed(-core, markers, mask=mask)
    # an object too small to hold a maximum of the required prominence keeps its own label
    lone = measure.label(mask & (labels == 0))
    return np.where(lone > 0, lone + labels.max(), labels)


def _core_threshold(phases: Phases) -> float:
    assert phases.particle is not None and phases.ground is not None
    return phases.ground + CORE_LEVEL * (phases.particle - phases.ground)


def detect_binary(gray: np.ndarray, phases: Phases | float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Equivalent circles ``[x, y, r]`` (px, pixel centres at integers) of the particles of a binary or
    two-level image, their scores (1: the outline is measured, not guessed) and what was decided.
    ``phases`` is :func:`find_phases`' answer (a bare threshold: a binary image)."""
    from skimage import measure, segmentation

    if not isinstance(phases, Phases):
        phases = Phases(float(phases), None, None, "binary", 0)
    g = np.asarray(gray, np.float32)
    # holes are not filled before the split: the interstices between touching particles are holes of
    # the union, and filling them would join the particles' distance maps into one
    mask, polarity = _particle_mask(g, phases.threshold, phases.polarity)
    labels = _split(g, mask, phases, polarity)
    # a hole inside one object (a pinhole, a ring's centre) is the object's; one between objects is ground
    holes = ndi.binary_fill_holes(mask) & ~mask
    if holes.any():
        hole_lab = measure.label(holes)
        owners = np.concatenate([[0], _hole_owners(labels, hole_lab)])
        labels[holes] = owners[hole_lab[holes]]
        del hole_lab
    if phases.band_px:
        labels = segmentation.expand_labels(labels, distance=phases.band_px + 1)
    circles = _coverage_circles(g, labels, phases)
    small = circles[:, 2] < MIN_RADIUS_PX
    circles = circles[~small]
    info = {"route": "binary", "size_from": "binary", "polarity": polarity, "threshold": float(phases.threshold),
            "levels": phases.kind,
            "route_reason": ("binary image" if phases.kind == "binary" else
                             "two-level image (flat particles on a flat ground)")
            + ": equivalent circles of the labelled objects (no network)"}
    if small.any():
        info["below_resolution"] = int(small.sum())
        info["warnings"] = [f"{int(small.sum())} objects of the {phases.kind} image are below {2 * MIN_RADIUS_PX:g} px "
                            "in equivalent diameter: not measured (too few pixels for a size)"]
    return circles, np.ones(len(circles)), info


def _coverage_circles(g: np.ndarray, labels: np.ndarray, phases: Phases) -> np.ndarray:
    """``[x, y, r]`` per label from the coverage sum (module docstring, step 3)."""
    n = int(labels.max())
    if n == 0:
        return np.zeros((0, 3))
    if phases.particle is None or phases.ground is None:  # binary test: the mask is the coverage
        cover = (labels > 0).astype(np.float32)
    else:
        cover = (g - np.float32(phases.ground)) / np.float32(phases.particle - phases.ground)
    idx = np.arange(1, n + 1)
    area = np.asarray(ndi.sum(cover, labels, idx), np.float64)
    # centroid weights clipped to [0, 1]: the ground's noise neither pulls nor pushes
    centre = np.asarray(ndi.center_of_mass(np.clip(cover, 0.0, 1.0, out=cover), labels, idx), np.float64).reshape(-1, 2)
    circles = np.column_stack([centre[:, 1], centre[:, 0], np.sqrt(np.maximum(area, 0.0) / np.pi)]).reshape(-1, 3)
    return circles[np.isfinite(circles).all(axis=1)]  # a label with no coverage at all has no centre
