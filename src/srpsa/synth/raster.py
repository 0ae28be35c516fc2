"""Rasterise spheres and fiducial crosses onto a pixel grid seen through an affine map.

Both microscopes look at the same scene; only the map from the slide (OM pixel coordinates) to the
image differs: identity for the OM, the misregistration affine for the SEM. Rasterising *through*
the affine (each image pixel is mapped back onto the slide) keeps the SEM exact under rotation, scale
and shear - no resampling blur - and keeps the ground truth exact too.

Occlusion: particles are painted in depth order (lowest top first) as filled ellipses by OpenCV
(sub-pixel fixed-point coordinates), which fills an id map in C at ~20 us per particle - a local
patch per particle, never one full image per particle. Everything else (distance to the centre,
anti-aliased coverage, surface normals) is then computed exactly, vectorised over covered pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # fixed-point fraction bits of OpenCV drawing coordinates (1/16 px)


@dataclass
class SphereRaster:
    """Per-pixel view of a sphere scene.

    ``ids`` is the visible particle (-1: substrate). For covered pixels, ``rho`` is the distance to
    that particle's centre over its radius (0 at the centre, 1 at the rim; measured on the slide, so
    exact under shear), ``ox``/``oy`` the offset from its centre in image pixels (for surface normals),
    ``cov`` the anti-aliased coverage in [0, 1] (area fraction of the pixel inside the disc).
    """

    ids: np.ndarray  # (H, W) int32
    rho: np.ndarray  # (H, W) float32
    ox: np.ndarray  # (H, W) float32
    oy: np.ndarray  # (H, W) float32
    cov: np.ndarray  # (H, W) float32
    px_per_unit: float  # image pixels per slide unit (sqrt |det A|)


def _affine_parts(transform: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(transform, float)[:2, :2]
    t = np.asarray(transform, float)[:2, 2]
    return a, t, np.linalg.inv(a)


def rasterize_spheres(
    xy: np.ndarray, r: np.ndarray, z_top: np.ndarray, transform: np.ndarray, shape: tuple[int, int]
) -> SphereRaster:
    """Rasterise discs (slide coordinates ``xy``, radius ``r``) into an image of ``shape``.

    Parameters
    ----------
    z_top : (N,) height of each sphere's top above the slide (any unit); higher particles are drawn
        later, over lower ones (painter's algorithm = depth order).
    transform : (3, 3) affine, slide (x, y, 1) -> image pixel (x, y, 1).
    """
    h, w = shape
    a, t, ainv = _affine_parts(transform)
    k = math.sqrt(abs(np.linalg.det(a)))
    n = len(r)
    if n >= np.iinfo(np.int32).max:
        raise ValueError(f"too many particles to rasterise: {n}")
    # A slide circle is an image ellipse: semi-axes = singular values of A times r, along U.
    uu, sv, _ = np.linalg.svd(a)
    angle = math.degrees(math.atan2(uu[1, 0], uu[0, 0]))
    ids = np.full((h, w), -1, np.int32)
    if n:
        centre = xy @ a.T + t
        one = 1 << _SHIFT
        # Footprint: the disc plus ~3/4 image px, so every partly covered pixel gets the id (the
        # polygon approximation of the ellipse and the half-pixel anti-aliasing band both fit).
        ax0 = np.rint((r * sv[0] + 0.75) * one).astype(np.int64)
        ax1 = np.rint((r * sv[1] + 0.75) * one).astype(np.int64)
        cx = np.rint(centre[:, 0] * one).astype(np.int64)
        cy = np.rint(centre[:, 1] * one).astype(np.int64)
        reach = r * sv[0] + 2
        seen = (centre[:, 0] > -reach) & (centre[:, 0] < w + reach) & (centre[:, 1] > -reach) & (centre[:, 1] < h + reach)
        for i in np.flatnonzero(seen)[np.argsort(z_top[seen], kind="stable")]:
            cv2.ellipse(ids, (int(cx[i]), int(cy[i])), (int(ax0[i]), int(ax1[i])), angle, 0, 360, int(i), -1, cv2.LINE_8, _SHIFT)
    rho = np.zeros((h, w), np.float32)
    ox = np.zeros((h, w), np.float32)
    oy = np.zeros((h, w), np.float32)
    cov = np.zeros((h, w), np.float32)
    sel = np.flatnonzero(ids.ravel() >= 0)
    if len(sel):
        pid = ids.ravel()[sel]
        py, px = np.divmod(sel, w)
        px = px.astype(np.float32)
        py = py.astype(np.float32)
        # Slide offset from the centre: A^-1 (p - t) - c, with the constant part per particle.
        cu = (-(ainv[0] @ t) - xy[:, 0]).astype(np.float32)
        cv = (-(ainv[1] @ t) - xy[:, 1]).astype(np.float32)
        i00, i01, i10, i11 = (np.float32(v) for v in ainv.ravel())
        u = i00 * px + i01 * py + cu[pid]
        v = i10 * px + i11 * py + cv[pid]
        d = np.sqrt(u * u + v * v)
        rp = r.astype(np.float32)[pid]
        rho.ravel()[sel] = d / rp
        ox.ravel()[sel] = np.float32(a[0, 0]) * u + np.float32(a[0, 1]) * v
        oy.ravel()[sel] = np.float32(a[1, 0]) * u + np.float32(a[1, 1]) * v
        # Signed-distance anti-aliasing: fraction of a pixel-wide box filter inside the rim.
        cov.ravel()[sel] = np.clip((rp - d) * np.float32(k) + np.float32(0.5), 0.0, 1.0)
    return SphereRaster(ids, rho, ox, oy, cov, k)


def rasterize_crosses(
    centres: np.ndarray, arm: float, width: float, transform: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased coverage of plus-shaped crosses and the distance to their outline.

    The crosses are axis-aligned on the slide (centres in slide units, arm = centre-to-tip length,
    width = arm width) and drawn through ``transform``.

    Returns
    -------
    cov : (H, W) float32 coverage in [0, 1].
    inside_depth : (H, W) float32 distance (image px) from the outline into the cross, 0 outside.
    """
    h, w = shape
    cov = np.zeros((h, w), np.float32)
    depth = np.zeros((h, w), np.float32)
    if len(centres) == 0:
        return cov, depth
    a, t, ainv = _affine_parts(transform)
    k = math.sqrt(abs(np.linalg.det(a)))
    smax = float(np.linalg.svd(a, compute_uv=False)[0])
    reach = int(math.ceil(arm * math.sqrt(2) * smax + 2))
    for cx, cy in np.asarray(centres, float):
        ix, iy = np.rint(a @ (cx, cy) + t).astype(int)
        x0, x1 = max(ix - reach, 0), min(ix + reach + 1, w)
        y0, y1 = max(iy - reach, 0), min(iy + reach + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        py, px = np.mgrid[y0:y1, x0:x1]
        u = np.abs(ainv[0, 0] * (px - t[0]) + ainv[0, 1] * (py - t[1]) - cx)
        v = np.abs(ainv[1, 0] * (px - t[0]) + ainv[1, 1] * (py - t[1]) - cy)
        # Signed distance to each arm (a box), union = min; negative inside.
        sdf = np.minimum(_box_sdf(u, v, arm, width / 2), _box_sdf(u, v, width / 2, arm)) * k
        c = np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)
        cov[y0:y1, x0:x1] = np.maximum(cov[y0:y1, x0:x1], c)
        depth[y0:y1, x0:x1] = np.maximum(depth[y0:y1, x0:x1], np.maximum(-sdf, 0.0).astype(np.float32))
    return cov, depth


def _box_sdf(u: np.ndarray, v: np.ndarray, bx: float, by: float) -> np.ndarray:
    """Signed distance from (|u|, |v|) to a centred box of half-sizes (bx, by)."""
    qx, qy = u - bx, v - by
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)
