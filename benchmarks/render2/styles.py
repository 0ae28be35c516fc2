"""The render2 styles: one function per imaging regime, ``(rng, circles, shape, spec) -> intensity``.

Each returns a float image, roughly in [0, 1], before the shared finishing steps (vignette, colour cast,
noise, JPEG; see :mod:`render2.render`). Parameters are drawn from ``rng`` so that one seed fixes an image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from . import optics


@dataclass(frozen=True)
class Style:
    """A regime: its renderer and the ranges its layouts are drawn from (diameters in px)."""

    name: str
    description: str
    render: Callable[[np.random.Generator, np.ndarray, tuple[int, int]], np.ndarray]
    diameter: tuple[float, float]  # median diameter range, drawn log-uniformly
    area_fraction: tuple[float, float]
    cluster: tuple[float, float]
    colour_p: float  # probability of a colour (RGB) image with a colour cast
    vignette: tuple[float, float]  # vignetting strength range
    jpeg_p: float


def _median_r(circles: np.ndarray) -> float:
    return float(np.median(circles[:, 2])) if len(circles) else 10.0


def halo(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Transparent phase spheres, defocused: bright centres (lens focusing), dark rims, bright/dark halos."""
    lam = rng.uniform(2.0, 4.5)  # wavelength in px (0.55 um light at 0.12-0.27 um/px)
    na = rng.uniform(0.25, 0.6) * min(1.0, 0.5 * lam)  # pupil cut-off NA/lambda stays below Nyquist
    dn = rng.uniform(0.02, 0.08)
    t = optics.thickness(circles, shape)
    field = np.exp((-rng.uniform(0.0, 0.004) + 1j * 2 * np.pi * dn / lam) * t)
    r = _median_r(circles)
    z0 = rng.uniform(0.5, 2.5) * r * rng.choice([-1.0, 1.0], p=[0.25, 0.75])
    zs = z0 + np.linspace(-0.3, 0.3, 4) * r
    return 0.55 * optics.brightfield(field, zs, lam, na)


def dark_on_bright(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Absorbing particles in transmitted light: opaque discs or absorbing spheres, slight defocus."""
    lam = rng.uniform(2.0, 4.5)
    na = rng.uniform(0.3, 0.7) * min(1.0, 0.5 * lam)
    r = _median_r(circles)
    if rng.random() < 0.5:
        amp = 1.0 - optics.coverage(circles, shape) * (1.0 - rng.uniform(0.0, 0.3))
        field = amp.astype(complex)
    else:
        mu = rng.uniform(1.0, 4.0) / (2 * r)
        t = optics.thickness(circles, shape)
        field = np.exp((-mu + 1j * 2 * np.pi * rng.uniform(0.0, 0.03) / lam) * t)
    zs = rng.uniform(0.0, 0.4) * r + np.linspace(-0.2, 0.2, 3) * r
    return 0.8 * optics.brightfield(field, zs, lam, na)


def reflected(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Reflected light: bright shaded discs on a dark ground inside a circular field stop."""
    nx, ny, nz, inside = optics.normals(circles, shape)
    lx, ly = rng.normal(0, 0.3, 2)
    shade = np.clip(nz + lx * nx + ly * ny, 0.0, None) ** rng.uniform(0.3, 1.5)
    img = rng.uniform(0.05, 0.2) + inside * rng.uniform(0.5, 0.8) * (0.25 + 0.75 * shade)
    img = optics.gaussian_otf_blur(img, rng.uniform(0.5, 1.8))
    return img * optics.field_stop(shape, rng, soft=rng.uniform(3, 20))


def binary(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Thresholded images: black/white disks, either polarity, edges cut at 0.5 (optionally after blur + noise)."""
    cov = optics.coverage(circles, shape)
    if rng.random() < 0.5:
        cov = gaussian_filter(cov, rng.uniform(0.5, 1.5)) + rng.normal(0, 0.08, shape)
    img = (cov >= 0.5).astype(np.float64)
    return img if rng.random() < 0.5 else 1.0 - img


def tem(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """TEM bright field: mass-thickness dark discs on a grainy film, Fresnel fringe, electron shot noise."""
    r = _median_r(circles)
    mu = rng.uniform(0.8, 3.0) / (2 * r)
    t = optics.thickness(circles, shape)
    film = gaussian_filter(rng.normal(0, 1, shape), 1.2) * rng.uniform(0.0, 0.15)
    field = np.exp(-0.5 * mu * t + 1j * (0.3 * mu * t + film))
    lam = rng.uniform(2.5, 4.0)  # numerical stand-in: only the fringe width matters
    inten = optics.brightfield(field, np.array([rng.uniform(-3.0, 3.0) * lam]), lam, 0.45 * min(1.0, 0.5 * lam))
    dose = rng.uniform(4.0, 60.0)  # electrons per pixel: Poisson noise
    return 0.75 * rng.poisson(np.clip(inten, 0, None) * dose) / dose


def sem(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Secondary electrons: yield ~ 1/cos(tilt) makes edges bright; side detector shading; scan noise."""
    nx, ny, nz, inside = optics.normals(circles, shape)
    cos_t = np.clip(nz, 0.12, 1.0)
    dx, dy = np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)
    det = 1.0 + rng.uniform(0.0, 0.4) * (nx * dx + ny * dy)
    sub = rng.uniform(0.05, 0.16) + gaussian_filter(rng.normal(0, 1, shape), 3) * 0.03
    yield_ = np.where(inside, rng.uniform(0.24, 0.4) * cos_t ** -rng.uniform(0.7, 1.1) * det, sub)
    img = optics.gaussian_otf_blur(np.clip(yield_, 0, 1.5), rng.uniform(0.4, 1.2))
    dose = rng.uniform(15.0, 120.0)
    img = rng.poisson(img * dose) / dose
    img += rng.normal(0, rng.uniform(0.0, 0.02), (shape[0], 1))  # line-to-line scan offsets
    return 0.7 * img


def droplets(rng: np.random.Generator, circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Liquid drops on a bright ground: dark refracting rim, lighter core, specular highlight(s)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    g = rng.normal(0, 1, 2)
    img = rng.uniform(0.55, 0.85) + 0.1 * (g[0] * (xx / w - 0.5) + g[1] * (yy / h - 0.5))
    rim_w, rim_dark = rng.uniform(0.15, 0.45), rng.uniform(0.4, 0.85)
    core = rng.uniform(-0.1, 0.15)
    ox, oy = rng.uniform(-0.45, 0.45, 2)
    spot, spot_i = rng.uniform(0.08, 0.18), rng.uniform(0.8, 1.6)
    two = rng.random() < 0.5
    for sy, sx, dy, dx, r in optics._windows(circles, shape):
        rho = np.hypot(dx, dy) / r
        cov = np.clip(r * (1.0 - rho) + 0.5, 0.0, 1.0)
        ring = 1.0 / (1.0 + np.exp(-(rho - (1.0 - rim_w)) / 0.04))  # 0 in the core, 1 on the rim
        local = img[sy, sx] * (1.0 + core * (1 - ring)) * (1.0 - rim_dark * ring)
        hl = spot_i * np.exp(-(((dx / r - ox) ** 2 + (dy / r - oy) ** 2) / (2 * spot**2)))
        if two:
            hl += 0.4 * spot_i * np.exp(-(((dx / r + 0.6 * ox) ** 2 + (dy / r + 0.6 * oy) ** 2) / (2 * (1.5 * spot) ** 2)))
        img[sy, sx] = img[sy, sx] * (1 - cov) + cov * (local + hl * (rho < 1))
    return optics.gaussian_otf_blur(img, rng.uniform(0.5, 1.5))


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("halo", "bright-centred phase spheres with dark rims and halos (defocused bright field)", halo,
          (8, 60), (0.03, 0.45), (0.0, 0.8), 0.5, (0.0, 0.5), 0.5),
    Style("dark_on_bright", "absorbing or opaque particles on a bright ground (transmitted light)", dark_on_bright,
          (5, 150), (0.05, 0.6), (0.0, 0.9), 0.4, (0.0, 0.5), 0.5),
    Style("reflected", "reflected light: bright shaded discs, dark ground, circular field stop", reflected,
          (20, 150), (0.1, 0.5), (0.0, 0.8), 0.6, (0.0, 0.4), 0.5),
    Style("binary", "binary/thresholded disks, either polarity", binary,
          (5, 150), (0.05, 0.6), (0.0, 0.9), 0.0, (0.0, 0.0), 0.0),
    Style("tem", "TEM-like dark discs, grainy film, Fresnel fringe, shot noise", tem,
          (5, 60), (0.05, 0.4), (0.0, 0.9), 0.0, (0.0, 0.2), 0.3),
    Style("sem", "SEM-like edge-bright spheres (secondary electrons), shot and scan noise", sem,
          (10, 150), (0.1, 0.6), (0.0, 0.9), 0.0, (0.0, 0.2), 0.3),
    Style("droplets", "droplets with dark rims and specular highlights", droplets,
          (15, 120), (0.2, 0.6), (0.2, 0.9), 0.6, (0.0, 0.5), 0.5),
)}  # fmt: skip
