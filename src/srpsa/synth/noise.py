"""Random textures and detector noise shared by the OM and SEM renderers.

All functions take a ``numpy.random.Generator`` and work on float32 images; nothing loops over pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.signal import lfilter


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (reflecting borders); sigma <= 0.05 px returns the input unchanged."""
    if sigma <= 0.05:
        return img
    if sigma > 12.0:
        # Wide blurs (glare, shadows of big particles) on a downsampled copy: the result is smooth,
        # so bilinear upsampling loses nothing, and the direct kernel would be 6 sigma wide.
        h, w = img.shape[:2]
        f = sigma / 4.0
        small = cv2.resize(img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
        fx, fy = w / small.shape[1], h / small.shape[0]
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / fx, sigmaY=sigma / fy, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT)


def fractal_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    cell_px: float,
    octaves: int = 4,
    persistence: float = 0.5,
    min_cell: float = 1.0,
) -> np.ndarray:
    """Zero-mean, unit-std multi-octave value noise with features of about ``cell_px`` and finer.

    Each octave is white noise on a coarse grid upsampled with bicubic interpolation (cheap, and
    its spectrum falls off like the 1/f^beta roughness of real surfaces); octave k has cells of
    ``cell_px / 2^k`` and amplitude ``persistence^k``; octaves finer than ``min_cell`` px are skipped.
    """
    h, w = shape
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for k in range(octaves):
        cell = cell_px / 2**k
        if cell < min_cell and k > 0:
            break
        gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell)) + 2
        grid = rng.standard_normal((gh, gw), dtype=np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= persistence
    sub = out[::4, ::4]  # statistics from a subsample: 16x cheaper, plenty accurate
    std = float(sub.std())
    out -= float(sub.mean())
    if std > 0:
        out *= 1.0 / std
    return out


def ridged(noise: np.ndarray) -> np.ndarray:
    """Ridged transform (1 - |n|)^3 (rescaled to zero mean, unit std): thin bright ridges around cells.

    Gives the cellular/dendritic look of rapidly solidified metal powder surfaces.
    """
    r = 1.0 - np.minimum(np.abs(noise), 1.0)
    r = r * r * r  # cube: thin sharp ridges, flat cell interiors
    sub = r[::4, ::4]
    r -= float(sub.mean())
    r *= 1.0 / max(float(sub.std()), 1e-6)
    return r


def shot_read_noise(img: np.ndarray, rng: np.random.Generator, photons: float, read_sigma: float) -> np.ndarray:
    """Poisson-Gaussian detector noise: shot noise with ``photons`` counts at signal 1, plus read noise.

    The Poisson part uses its Gaussian approximation (variance = mean / photons): a 10x faster draw
    that matches Poisson statistics in mean and variance; its skew only matters below ~5 counts.
    """
    var = np.maximum(img, 0.0) / float(photons) + float(read_sigma) ** 2
    return img + np.sqrt(var) * rng.standard_normal(img.shape, dtype=np.float32)


def scan_line_noise(img: np.ndarray, rng: np.random.Generator, jitter_px: float, streaks: float) -> np.ndarray:
    """SEM raster artefacts: each scan line shifted sideways (beam/stage jitter) and rescaled in gain.

    The gain per line is low-pass filtered across lines (detector drift: streaks several lines tall).
    """
    h, w = img.shape
    out = img
    if jitter_px > 0:
        shift = (rng.standard_normal(h) * jitter_px).astype(np.float32)
        map_x = np.arange(w, dtype=np.float32)[None, :] - shift[:, None]
        map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
        src = out.astype(np.float32, copy=False)
        out = cv2.remap(src, map_x, np.ascontiguousarray(map_y), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if streaks > 0:
        g = rng.standard_normal(h)
        g = lfilter([0.5], [1.0, -0.5], g)  # AR(1): neighbouring lines correlated
        g = g / max(float(g.std()), 1e-9) * streaks
        out = out * (1.0 + g[:, None].astype(np.float32))
    return out.astype(np.float32, copy=False)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode/decode as JPEG (8-bit, gray or RGB) to add blocking and ringing artefacts."""
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    bgr = u8[..., ::-1] if u8.ndim == 3 else u8
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 images
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if dec.ndim == 3:
        dec = dec[..., ::-1]
    return dec.astype(np.float32) / 255.0
