"""Wave-optical and geometric building blocks of render2: particle maps, angular-spectrum propagation.

The bright-field model is scalar wave optics: each sphere is a thin complex transmission
``exp(-mu t + i k dn t)`` (t: the sphere's chord length through the pixel), the field behind the slide is
propagated to a few defocus planes with the angular-spectrum transfer function, cut by the objective's
pupil (NA), and the intensities are averaged over the defocus spread (partial coherence / depth of field).
Nothing here shares code or model with srpsa.synth (which traces rays through spheres).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def _windows(circles: np.ndarray, shape: tuple[int, int], pad: float = 1.0):
    """Per circle: (slice_y, slice_x, yy, xx) of the pixel window around it (pixel centres at integers)."""
    h, w = shape
    for x, y, r in circles:
        x0, x1 = max(int(np.floor(x - r - pad)), 0), min(int(np.ceil(x + r + pad)) + 1, w)
        y0, y1 = max(int(np.floor(y - r - pad)), 0), min(int(np.ceil(y + r + pad)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        yield slice(y0, y1), slice(x0, x1), (yy - y).astype(np.float64), (xx - x).astype(np.float64), float(r)


def coverage(circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased disk mask in [0, 1] (max over particles): ``clip(r - dist + 0.5, 0, 1)``."""
    out = np.zeros(shape, np.float64)
    for sy, sx, dy, dx, r in _windows(circles, shape):
        np.maximum(out[sy, sx], np.clip(r - np.hypot(dx, dy) + 0.5, 0.0, 1.0), out=out[sy, sx])
    return out


def thickness(circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Chord length through each sphere, ``2 sqrt(r^2 - d^2)`` px (max where spheres touch)."""
    out = np.zeros(shape, np.float64)
    for sy, sx, dy, dx, r in _windows(circles, shape):
        t = 2.0 * np.sqrt(np.clip(r * r - dx * dx - dy * dy, 0.0, None))
        np.maximum(out[sy, sx], t, out=out[sy, sx])
    return out


def normals(circles: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Surface normal of the top hemisphere of each sphere: (nx, ny, nz, inside) maps; nz = 0 off particles."""
    nx, ny, nz = (np.zeros(shape) for _ in range(3))
    inside = np.zeros(shape, bool)
    height = np.full(shape, -1.0)
    for sy, sx, dy, dx, r in _windows(circles, shape):
        q = (dx * dx + dy * dy) / (r * r)
        z = np.sqrt(np.clip(1.0 - q, 0.0, None)) * r
        m = (q < 1.0) & (z > height[sy, sx])  # the higher surface wins where spheres meet
        height[sy, sx][m] = z[m]
        nx[sy, sx][m] = (dx / r)[m]
        ny[sy, sx][m] = (dy / r)[m]
        nz[sy, sx][m] = (z / r)[m]
        inside[sy, sx] |= q < 1.0
    return nx, ny, nz, inside


def transfer(shape: tuple[int, int], z_px: float, wavelength_px: float, na: float) -> np.ndarray:
    """Angular-spectrum transfer function ``exp(i 2 pi z sqrt(1/l^2 - f^2))`` inside the pupil ``f <= NA/l``."""
    fy = sfft.fftfreq(shape[0])[:, None]
    fx = sfft.fftfreq(shape[1])[None, :]
    f2 = fx * fx + fy * fy
    kz = np.sqrt(np.clip(1.0 / wavelength_px**2 - f2, 0.0, None))
    pupil = f2 <= (na / wavelength_px) ** 2
    return np.where(pupil, np.exp(2j * np.pi * z_px * (kz - 1.0 / wavelength_px)), 0.0)


def brightfield(field: np.ndarray, defocus_px: np.ndarray, wavelength_px: float, na: float) -> np.ndarray:
    """Mean intensity of ``field`` propagated to each defocus plane (transmitted light, unit background)."""
    pad = 64  # mirrored margin: the FFT's periodic wrap must not carry a border particle to the far side
    padded = np.pad(field, pad, mode="reflect")
    spec = sfft.fft2(padded, workers=1)
    acc = np.zeros(padded.shape)
    for z in defocus_px:
        u = sfft.ifft2(spec * transfer(padded.shape, float(z), wavelength_px, na), workers=1)
        acc += (u * np.conj(u)).real
    return acc[pad:-pad, pad:-pad] / len(defocus_px)


def gaussian_otf_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Incoherent blur by a Gaussian PSF (in Fourier space, periodic edges are not a problem for a PSF this small)."""
    if sigma <= 0:
        return img
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma, mode="reflect")


def vignette(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth radial fall-off ``1 - strength * rho^2`` (cos^4-like), centre shifted at random."""
    h, w = shape
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    yy, xx = np.mgrid[0:h, 0:w]
    rho2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.25 * (h * h + w * w))
    return np.clip(1.0 - strength * rho2, 0.05, 1.0)


def field_stop(shape: tuple[int, int], rng: np.random.Generator, soft: float = 6.0) -> np.ndarray:
    """A circular field stop (the illuminated disc of reflected-light microscopes), soft edge."""
    h, w = shape
    cy, cx = h * rng.uniform(0.45, 0.55), w * rng.uniform(0.45, 0.55)
    rad = 0.5 * min(h, w) * rng.uniform(0.95, 1.25)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(yy - cy, xx - cx)
    return 1.0 / (1.0 + np.exp((d - rad) / soft))
