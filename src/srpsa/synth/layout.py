"""Particle layouts with exact ground truth: sizes, positions, heights.

Sizes are drawn in micrometres from the configured distribution. Positions come from a soft-disc
packing: particles start at random (or around agglomerate centres) and overlapping pairs are pushed
apart, pass after pass, until no pair overlaps by more than ``max_overlap`` of the smaller radius.
That is the quick way to a random monolayer close to what a shaken powder forms on a slide: random
sequential addition jams at an area fraction of ~0.55, while the relaxation reaches 0.6+ because
particles may move after they are placed. Neighbours come from a KD-tree with a Verlet skin, so one
pass costs O(N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from srpsa.synth.config import LayoutConfig, SizeConfig


@dataclass
class Layout:
    """Particles of one scene in OM pixel coordinates (x = column, y = row)."""

    xy: np.ndarray  # (N, 2) float64 centres
    r_px: np.ndarray  # (N,) radii in OM px
    d_um: np.ndarray  # (N,) diameters in um
    z_um: np.ndarray  # (N,) centre height above the slide in um (occlusion order and defocus)
    cluster: np.ndarray  # (N,) int, agglomerate index or -1

    def __len__(self) -> int:
        return len(self.r_px)

    def subset(self, keep: np.ndarray) -> Layout:
        return Layout(self.xy[keep], self.r_px[keep], self.d_um[keep], self.z_um[keep], self.cluster[keep])


def _lognormal(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    # Parameters of the underlying normal so that the lognormal has the requested mean and CV.
    s2 = math.log1p(cv * cv)
    return rng.lognormal(math.log(mean) - s2 / 2.0, math.sqrt(s2), n)


def sample_diameters(size: SizeConfig, n: int, rng: np.random.Generator, pixel_size_um: float) -> np.ndarray:
    """``n`` diameters (um) from a resolved size config; values below ``min_diameter_px`` are redrawn."""
    d_min = float(size.min_diameter_px) * pixel_size_um

    def draw(k: int) -> np.ndarray:
        mean, cv = float(size.mean_um), float(size.cv_percent) / 100.0
        if size.distribution == "normal":
            return rng.normal(mean, cv * mean, k)
        if size.distribution == "lognormal":
            return _lognormal(rng, mean, cv, k)
        second = rng.random(k) < float(size.mode2_fraction)  # bimodal: two lognormal modes
        d = _lognormal(rng, mean, cv, k)
        d2 = _lognormal(rng, mean * float(size.mode2_ratio), float(size.mode2_cv_percent) / 100.0, k)
        return np.where(second, d2, d)

    out = draw(n)
    for _ in range(50):  # redraw the unresolvable tail (a truncated distribution)
        bad = out < d_min
        if not bad.any():
            break
        out[bad] = draw(int(bad.sum()))
    return np.maximum(out, d_min)


def _pairs(tree_xy: np.ndarray, cutoff: float) -> np.ndarray:
    return cKDTree(tree_xy).query_pairs(cutoff, output_type="ndarray")


def relax(
    xy: np.ndarray,
    r: np.ndarray,
    max_overlap: float,
    bounds: tuple[float, float, float, float],
    iterations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Push overlapping discs apart until every pair satisfies the overlap limit.

    Pair (i, j) must be at least ``r_i + r_j - max_overlap * min(r_i, r_j)`` apart. Each pass moves
    both discs of a violating pair along their axis, the smaller one more (momentum-like weighting by
    area, so big particles are not shoved around by small ones), with 20 % overshoot for convergence.

    Returns
    -------
    xy : (N, 2) relaxed centres, clipped to ``bounds`` = (x0, y0, x1, y1).
    ok : (N,) bool, False for discs still violating the limit after ``iterations`` passes.
    """
    xy = xy.copy()
    n = len(r)
    if n < 2:
        return xy, np.ones(n, bool)
    lo = np.array(bounds[:2])
    hi = np.array(bounds[2:])
    rmax = float(r.max())
    skin = 0.3 * float(np.median(r))
    cutoff = 2.0 * rmax + skin
    pairs = _pairs(xy, cutoff)
    ref = xy.copy()
    area = r * r
    for _ in range(iterations):
        if np.abs(xy - ref).max() > skin / 2.0:  # Verlet list stale: a pair may have come in range
            pairs = _pairs(xy, cutoff)
            ref = xy.copy()
        if len(pairs) == 0:
            break
        i, j = pairs[:, 0], pairs[:, 1]
        d = xy[j] - xy[i]
        dist = np.hypot(d[:, 0], d[:, 1])
        sep = r[i] + r[j] - max_overlap * np.minimum(r[i], r[j])
        bad = dist < sep
        if not bad.any():
            break
        # Aim 0.5 % beyond the limit: the last tiny overlaps then vanish in one pass, not in hundreds.
        i, j, d, dist = i[bad], j[bad], d[bad], dist[bad]
        ov = 1.005 * sep[bad] - dist
        zero = dist < 1e-9  # coincident centres: separate along a random direction
        if zero.any():
            ang = rng.uniform(0, 2 * np.pi, int(zero.sum()))
            d[zero] = np.stack([np.cos(ang), np.sin(ang)], 1)
            dist[zero] = 1.0
        unit = d / dist[:, None]
        wi = area[j] / (area[i] + area[j])
        step = (1.2 * ov)[:, None] * unit
        disp = np.zeros_like(xy)
        np.add.at(disp, i, -step * wi[:, None])
        np.add.at(disp, j, step * (1.0 - wi)[:, None])
        xy += disp
        np.clip(xy, lo, hi, out=xy)
    return xy, _violators(xy, r, max_overlap)


def _violators(xy: np.ndarray, r: np.ndarray, max_overlap: float) -> np.ndarray:
    """Greedy removal set: True for discs to keep so that no remaining pair violates the limit."""
    pairs = _pairs(xy, 2.0 * float(r.max()))
    ok = np.ones(len(r), bool)
    if len(pairs) == 0:
        return ok
    i, j = pairs[:, 0], pairs[:, 1]
    dist = np.hypot(*(xy[j] - xy[i]).T)
    sep = r[i] + r[j] - max_overlap * np.minimum(r[i], r[j])
    bad = dist < sep
    for a, b in zip(i[bad], j[bad]):  # few pairs remain after relaxation: a short loop
        if ok[a] and ok[b]:
            ok[b if r[b] < r[a] else a] = False  # drop the smaller one: least area lost
    return ok


def _jittered_grid(n: int, bounds: tuple[float, float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Random positions, one per cell of a grid (stratified): far fewer deep overlaps to undo than
    independent uniform positions, so dense packings relax in a third of the passes."""
    x0, y0, x1, y1 = bounds
    w, h = x1 - x0, y1 - y0
    nx = max(1, int(math.ceil(math.sqrt(n * w / h))))
    ny = max(1, int(math.ceil(n / nx)))
    cell = rng.permutation(nx * ny)[:n]
    cx, cy = cell % nx, cell // nx
    return np.column_stack([x0 + (cx + rng.random(n)) * w / nx, y0 + (cy + rng.random(n)) * h / ny])


def _cluster_start(
    n: int, r: np.ndarray, lay: LayoutConfig, bounds: tuple[float, float, float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Initial positions: agglomerates (Gaussian blobs around random centres) plus free singles."""
    x0, y0, x1, y1 = bounds
    in_cluster = rng.random(n) < float(lay.cluster_fraction)
    members = np.flatnonzero(in_cluster)
    n_clusters = max(1, int(round(len(members) / float(lay.cluster_size))))
    label = np.full(n, -1)
    label[members] = rng.integers(0, n_clusters, len(members))
    centres = np.column_stack([rng.uniform(x0, x1, n_clusters), rng.uniform(y0, y1, n_clusters)])
    xy = np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])
    rmean = float(r.mean())
    counts = np.bincount(label[members], minlength=n_clusters)
    spread = 0.6 * rmean * np.sqrt(np.maximum(counts, 1))  # radius of a compact blob of that many discs
    xy[members] = centres[label[members]] + rng.normal(0, 1, (len(members), 2)) * spread[label[members], None]
    return xy, label


def _contract(xy: np.ndarray, label: np.ndarray, amount: float) -> np.ndarray:
    """Move agglomerate members towards their cluster centroid (van der Waals 'stickiness')."""
    members = label >= 0
    if not members.any():
        return xy
    lab = label[members]
    k = lab.max() + 1
    cnt = np.maximum(np.bincount(lab, minlength=k), 1)
    cx = np.bincount(lab, xy[members, 0], k) / cnt
    cy = np.bincount(lab, xy[members, 1], k) / cnt
    out = xy.copy()
    out[members] += amount * (np.column_stack([cx[lab], cy[lab]]) - xy[members])
    return out


def make_layout(
    size: SizeConfig,
    lay: LayoutConfig,
    pixel_size_um: float,
    bounds: tuple[float, float, float, float],
    rng: np.random.Generator,
    exclusions: np.ndarray | None = None,
    exclusion_gap_px: float = 2.0,
) -> Layout:
    """Draw a scene from resolved size and layout configs.

    Parameters
    ----------
    bounds : (x0, y0, x1, y1) region (OM px) in which centres may lie; the target area fraction
        applies to it. Make it larger than the image (by the largest radius) so that particles cut by
        the border exist with the same density as inside.
    exclusions : (K, 4) boxes ``(cx, cy, half_width, half_height)`` (OM px) that no particle may touch
        (the fiducial cross arms), with a clearance of ``exclusion_gap_px``.
    """
    x0, y0, x1, y1 = bounds
    sparse = lay.mode == "sparse"
    fraction = float(lay.sparse_area_fraction if sparse else lay.area_fraction)
    # Sparse particles are separated: a negative overlap limit is a minimum gap (0.3 smaller radii).
    max_overlap = -0.3 if sparse else float(lay.max_overlap)
    target = fraction * (x1 - x0) * (y1 - y0)
    # Draw diameters in batches until their disc areas fill the target (exact count is random).
    d_um = np.empty(0)
    guess_area = math.pi * (float(size.mean_um) / pixel_size_um / 2.0) ** 2
    while True:
        batch = max(16, int(0.2 * target / guess_area))
        d_um = np.concatenate([d_um, sample_diameters(size, batch, rng, pixel_size_um)])
        r = d_um / pixel_size_um / 2.0
        csum = np.cumsum(np.pi * r * r)
        if csum[-1] >= target:
            n = int(np.searchsorted(csum, target)) + 1
            d_um, r = d_um[:n], r[:n]
            break
    n = len(r)
    if lay.mode == "clusters":
        xy, label = _cluster_start(n, r, lay, bounds, rng)
        for _ in range(3):  # alternate sticking and un-overlapping: compact touching agglomerates
            xy, _ = relax(xy, r, max_overlap, bounds, 40, rng)
            xy = _contract(xy, label, 0.25)
    else:
        xy = _jittered_grid(n, bounds, rng)
        label = np.full(n, -1)
    xy, ok = relax(xy, r, max_overlap, bounds, int(lay.relax_iterations), rng)

    if exclusions is not None and len(exclusions):
        for cx, cy, hw, hh in exclusions:
            dx = np.maximum(np.abs(xy[:, 0] - cx) - hw, 0.0)
            dy = np.maximum(np.abs(xy[:, 1] - cy) - hh, 0.0)
            ok &= np.hypot(dx, dy) >= r + exclusion_gap_px

    # Height of each centre above the slide: resting on the slide (z = radius), lifted a little where
    # particles sit on debris or on each other, plus the tilt of the slide (a plane across the field).
    # Both are given in mean particle radii (scale-free, so they mean the same at any magnification).
    d_px = d_um / pixel_size_um
    r_ref = float(size.mean_um) / 2.0
    z = d_um / 2.0 + np.abs(rng.normal(0.0, 1.0, n)) * float(lay.z_jitter) * r_ref
    phi = rng.uniform(0, 2 * np.pi)
    diag = math.hypot(x1 - x0, y1 - y0)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    z += float(lay.tilt) * r_ref * ((xy - centre) @ np.array([math.cos(phi), math.sin(phi)])) / diag
    layout = Layout(xy, d_px / 2.0, d_um, z, label)
    return layout.subset(ok)
