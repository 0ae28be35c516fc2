"""Appearance-randomised single images for a detector that must read *any* microscope.

The paired OM/SEM simulator (:mod:`srpsa.synth.pair`) randomises the parameters of two physical models;
a detector trained on it learns those two looks and nothing else (issue 13: F1 0.14 on an independent
renderer's halo style, 0.11 on real TEM). Here the *rendering style itself* is drawn per image, so the
only thing common to all training images is what defines a particle: a round region whose edge sits
at a radius ``r`` from its centre.

Each particle is a radial profile ``f(rho)``, ``rho = distance / r``, built from randomly weighted
parts: an interior level, a dome (sphere shading), an edge ring just inside ``rho = 1`` (SEM edge
effect, dark rims of transmitted light), a centre spot (the lens effect of a sphere), a halo just
outside (phase objects), decaying diffraction rings, and off-centre specular highlights (droplets).
Polarity, opacity (painted over the ground or added to it), blur (global and per particle: depth of
focus), background texture, illumination gradients and vignetting, noise (Gaussian, Poisson, speckle),
binarisation, gamma and JPEG are all drawn per image. Irregular blobs and streaks are added as
unlabelled distractors (dust, scratches). The edge is always at ``rho = 1`` before blur, so the
ground-truth radius is the geometric edge whatever the look.

Only for training; evaluation uses an independently written renderer (``benchmarks/render2``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from srpsa.synth.layout import relax
from srpsa.synth.noise import blur, fractal_noise, jpeg_roundtrip

#: Seeds below this are for training and validation of the styles source; benchmark renderers use
#: their own seed ranges (benchmarks/render2 documents 31_000_000+).
MAX_TRAIN_SEED = 30_000_000


@dataclass
class StyleImage:
    image: np.ndarray  # (H, W) float32 in [0, 1]
    circles: np.ndarray  # (N, 3) x, y, r in px (pixel centres at integers)
    style: dict


def _diameters(rng: np.random.Generator, n: int, d_med: float) -> np.ndarray:
    kind = rng.choice(["mono", "lognormal", "wide", "bimodal"], p=[0.3, 0.35, 0.15, 0.2])
    if kind == "mono":
        d = d_med * np.exp(rng.normal(0, rng.uniform(0.01, 0.05), n))
    elif kind == "lognormal":
        d = d_med * np.exp(rng.normal(0, rng.uniform(0.08, 0.35), n))
    elif kind == "wide":
        d = d_med * np.exp(rng.uniform(-1.0, 1.0, n))
    else:
        second = rng.random(n) < rng.uniform(0.15, 0.5)
        d = d_med * np.exp(rng.normal(0, 0.08, n)) * np.where(second, rng.uniform(1.6, 3.0), 1.0)
    return np.maximum(d, 3.0)


def _layout(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(N, 3) circles: sparse, dense or clustered, touching allowed, a little overlap."""
    d_med = float(np.exp(rng.uniform(math.log(5.0), math.log(min(130.0, min(h, w) / 3.0)))))
    fraction = float(rng.choice([rng.uniform(0.03, 0.15), rng.uniform(0.15, 0.45), rng.uniform(0.45, 0.65)], p=[0.3, 0.35, 0.35]))
    margin = d_med
    bounds = (-margin, -margin, w + margin, h + margin)
    area = (w + 2 * margin) * (h + 2 * margin) * fraction
    d = _diameters(rng, max(8, int(4 * area / (math.pi * d_med * d_med))), d_med)
    n = max(1, int(np.searchsorted(np.cumsum(math.pi * d * d / 4.0), area)))
    r = d[:n] / 2.0
    if rng.random() < 0.3:  # agglomerates: start from a few cluster centres
        k = max(1, n // int(rng.integers(5, 30)))
        centres = rng.uniform([bounds[0], bounds[1]], [bounds[2], bounds[3]], (k, 2))
        xy = centres[rng.integers(0, k, n)] + rng.normal(0, 1, (n, 2)) * np.sqrt(n / k) * np.median(r)
    else:
        xy = rng.uniform([bounds[0], bounds[1]], [bounds[2], bounds[3]], (n, 2))
    overlap = float(rng.choice([-0.3, 0.0, 0.1, 0.2], p=[0.25, 0.35, 0.3, 0.1]))
    xy, ok = relax(xy, r, overlap, bounds, 300, rng)
    c = np.column_stack([xy, r])[ok]
    return c[rng.permutation(len(c))]


def _profile_params(rng: np.random.Generator) -> dict:
    """Weights of the profile parts for one image (particles of an image share a look, with jitter)."""
    p = {
        "interior": rng.uniform(-1, 1),
        "dome": rng.uniform(-1, 1) * (rng.random() < 0.5),
        "dome_power": rng.uniform(0.3, 2.0),
        "rim": rng.uniform(-1.2, 1.2) * (rng.random() < 0.6),
        "rim_width": rng.uniform(0.05, 0.3),
        "spot": rng.uniform(-1.5, 1.5) * (rng.random() < 0.4),
        "spot_width": rng.uniform(0.08, 0.4),
        "halo": rng.uniform(-1, 1) * (rng.random() < 0.45),
        "halo_width": rng.uniform(0.05, 0.5),
        "rings": rng.uniform(-0.5, 0.5) * (rng.random() < 0.25),
        "ring_period": rng.uniform(0.2, 0.6),
        "specular": rng.uniform(0.5, 1.5) * (rng.random() < 0.25),
        "spec_offset": rng.uniform(0.1, 0.6),
        "spec_width": rng.uniform(0.05, 0.25),
        "spec_angle": rng.uniform(0, 2 * np.pi),
        "jitter": rng.uniform(0.0, 0.3),
    }
    # A particle must differ from the ground somewhere at its edge: guarantee an interior or rim level.
    if abs(p["interior"]) + abs(p["rim"]) + abs(p["dome"]) < 0.4:
        p["interior"] = float(np.sign(p["interior"] or 1.0) * rng.uniform(0.4, 1.0))
    return p


def _profile(rho: np.ndarray, ang: np.ndarray, p: dict, k: np.ndarray, inside_aa: np.ndarray) -> np.ndarray:
    """Intensity change of one particle at normalised radius ``rho`` (``k``: per-particle jitter)."""
    inside = inside_aa
    v = (p["interior"] * k[0]) * inside
    if p["dome"]:
        v = v + p["dome"] * k[1] * np.power(np.clip(1 - rho * rho, 0, 1), p["dome_power"])
    if p["rim"]:
        v = v + p["rim"] * k[2] * inside * np.exp(-0.5 * ((1 - rho) / p["rim_width"]) ** 2)
    if p["spot"]:
        v = v + p["spot"] * k[3] * np.exp(-0.5 * (rho / p["spot_width"]) ** 2)
    if p["halo"]:
        v = v + p["halo"] * (1 - inside) * np.exp(-(rho - 1) / p["halo_width"])
    if p["rings"]:
        out = np.clip(rho - 1, 0, None)
        v = v + p["rings"] * (1 - inside) * np.cos(2 * np.pi * out / p["ring_period"]) * np.exp(-out / (2 * p["ring_period"]))
    if p["specular"]:
        a = p["spec_angle"]
        dx = rho * np.cos(ang) - p["spec_offset"] * math.cos(a)
        dy = rho * np.sin(ang) - p["spec_offset"] * math.sin(a)
        v = v + p["specular"] * inside * np.exp(-0.5 * (dx * dx + dy * dy) / p["spec_width"] ** 2)
    return v


def _render_particles(canvas: np.ndarray, circles: np.ndarray, p: dict, opaque: bool, contrast: float, rng: np.random.Generator,
                      defocus: np.ndarray) -> np.ndarray:
    h, w = canvas.shape
    reach = 1.0 + (3 * p["halo_width"] if p["halo"] else 0.0) + (2 * p["ring_period"] if p["rings"] else 0.0)
    for (x, y, r), sig in zip(circles, defocus):
        R = r * reach + 2 + 3 * sig
        x0, x1 = max(0, int(x - R)), min(w, int(x + R) + 2)
        y0, y1 = max(0, int(y - R)), min(h, int(y + R) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - x, yy - y
        dist = np.hypot(dx, dy)
        rho = dist / r
        inside = np.clip(r - dist + 0.5, 0, 1)  # anti-aliased disc: area coverage of each pixel
        k = 1 + p["jitter"] * rng.uniform(-1, 1, 4)
        v = contrast * _profile(rho, np.arctan2(dy, dx), p, k, inside)
        patch = canvas[y0:y1, x0:x1]
        if sig > 0.3:  # this particle is out of the focal plane
            v = cv2.GaussianBlur(v.astype(np.float32), (0, 0), float(sig))
            inside = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), float(sig))
        if opaque:  # painted over what lies below (reflected light, SEM): the ground is hidden
            base = float(np.median(canvas))
            patch[:] = patch * (1 - inside) + (base + v) * inside + v * (1 - inside)
        else:  # transmitted light: contributions add
            patch += v
    return canvas


def _distractors(canvas: np.ndarray, rng: np.random.Generator, d_med: float, contrast: float) -> None:
    """Unlabelled non-round things: elongated blobs (dust, fibres) and thin streaks (scratches)."""
    h, w = canvas.shape
    layer = np.zeros_like(canvas)
    for _ in range(int(rng.integers(0, 12))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        a = d_med * rng.uniform(0.3, 2.0)
        b = a / rng.uniform(2.5, 8.0)
        cv2.ellipse(layer, (int(cx), int(cy)), (max(1, int(a)), max(1, int(b))), float(rng.uniform(0, 180)), 0, 360,
                    float(rng.uniform(-1, 1) * contrast), -1)
    for _ in range(int(rng.integers(0, 4))):
        p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        p1 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.line(layer, p0, p1, float(rng.uniform(-0.7, 0.7) * contrast), int(rng.integers(1, 3)))
    canvas += blur(layer, rng.uniform(0.3, 2.0))


def render_style_image(seed: int, shape: tuple[int, int] | None = None) -> StyleImage:
    """One appearance-randomised image and its circles (deterministic in ``seed``)."""
    if not 0 <= seed < MAX_TRAIN_SEED:
        raise ValueError(f"style seeds are 0..{MAX_TRAIN_SEED - 1} (higher seeds are reserved for benchmarks)")
    rng = np.random.default_rng([seed, 1313])
    if shape is None:
        shape = (int(rng.integers(320, 641)), int(rng.integers(320, 641)))
    h, w = shape
    circles = _layout(rng, h, w)
    d_med = float(np.median(2 * circles[:, 2])) if len(circles) else 20.0
    p = _profile_params(rng)
    opaque = bool(rng.random() < 0.45)
    contrast = float(rng.uniform(0.08, 0.5))
    bg = float(rng.uniform(0.15, 0.85))
    canvas = np.full((h, w), bg, np.float32)
    # Background texture: smooth or grainy, faint or strong (paper, filters, substrate, stubs).
    if rng.random() < 0.7:
        canvas += rng.uniform(0.0, 0.35) * contrast * fractal_noise((h, w), rng, cell_px=float(rng.uniform(2, 4) * d_med), octaves=5)
    if rng.random() < 0.5:
        _distractors(canvas, rng, d_med, contrast)
    depth = rng.uniform(0, 0.25) if rng.random() < 0.5 else 0.0  # spread of focus, in radii
    defocus = np.abs(rng.normal(0, 1, len(circles))) * depth * circles[:, 2] if len(circles) else np.zeros(0)
    canvas = _render_particles(canvas, circles, p, opaque, contrast, rng, defocus)
    # Optics: global blur relative to the particles and absolute (PSF of the objective).
    sigma = float(rng.uniform(0, 0.12) * d_med / 2 + rng.uniform(0, 1.5)) if rng.random() < 0.85 else 0.0
    canvas = blur(canvas, sigma)
    # Illumination: linear gradient, vignetting (up to an eyepiece-like dark corner) and gain.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:
        g = rng.uniform(-0.3, 0.3, 2)
        canvas *= 1 + g[0] * (xx / w - 0.5) + g[1] * (yy / h - 0.5)
    if rng.random() < 0.4:
        rr = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
        canvas *= np.clip(1 - rng.uniform(0.1, 0.6) * rr ** rng.uniform(2, 4), 0.05, 1)
    # Noise: additive, Poisson-like (TEM/SEM at low dose) or multiplicative speckle.
    kind = rng.choice(["gauss", "poisson", "speckle", "none"], p=[0.4, 0.3, 0.15, 0.15])
    # At most half the particle contrast (about 2 sigma at the edge before blur): a particle that cannot
    # be seen must not be a positive, or the network learns to hallucinate.
    level = float(np.exp(rng.uniform(np.log(0.005), np.log(max(0.006, min(0.12, 0.5 * contrast))))))
    if kind == "gauss":
        canvas += rng.normal(0, level, canvas.shape).astype(np.float32)
    elif kind == "poisson":
        photons = 1.0 / (level * level)
        canvas = rng.poisson(np.clip(canvas, 0, None) * photons).astype(np.float32) / photons
    elif kind == "speckle":
        canvas *= 1 + rng.normal(0, level, canvas.shape).astype(np.float32)
    if rng.random() < 0.08:  # thresholded (binary) images, as exported by other tools
        canvas = blur(canvas, 1.0)
        lo, med, hi = np.percentile(canvas, [1, 50, 99])
        if p["interior"] >= 0:  # particles above the ground
            canvas = (canvas > med + 0.35 * (hi - med)).astype(np.float32)
        else:
            canvas = (canvas > med - 0.35 * (med - lo)).astype(np.float32)
    lo, hi = np.percentile(canvas, [0.2, 99.8])
    canvas = np.clip((canvas - lo) / max(hi - lo, 1e-6) * rng.uniform(0.6, 1.0) + rng.uniform(0, 0.2), 0, 1)
    canvas = canvas ** float(np.exp(rng.uniform(-0.5, 0.5)))
    if rng.random() < 0.4:
        canvas = jpeg_roundtrip(canvas, int(rng.integers(40, 95)))
    inside = (circles[:, 0] > -0.5) & (circles[:, 0] < w - 0.5) & (circles[:, 1] > -0.5) & (circles[:, 1] < h - 0.5)
    style = {"opaque": opaque, "noise": str(kind), "blur_px": sigma, "d_median_px": d_med, **{k: float(v) for k, v in p.items()}}
    return StyleImage(np.ascontiguousarray(canvas, np.float32), circles[inside].astype(np.float64), style)
