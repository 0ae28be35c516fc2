"""Optical microscope image of a sphere scene (bright-field transmitted or reflected light).

Image formation, in order:

1. **Object**: what an ideal microscope focused at each particle's plane would see. In transmitted
   light a transparent sphere is a ball lens. We trace rays through it (Snell's law at entry and
   exit, Fresnel losses, absorption along the chord) to the plane of focus and count how much light
   lands at each radius (the ray density). Rays near the rim are bent so far that they miss the
   objective's acceptance cone (NA), which makes the **dark rim**; rays near the axis converge,
   which makes the **bright focal spot** when the focus is above the sphere's centre (dark centre
   below it). In reflected light (epi, eyepiece photos of opaque beads) a particle is a diffuse
   reflector, brightest where its surface faces the objective, with a specular highlight.
2. **Blur**: the diffraction-limited PSF, a Gaussian approximation of the Airy disk with
   sigma = 0.21 lambda / NA, plus the camera pixel's box filter, plus defocus for particles further
   than half the depth of field lambda n / NA^2 from the focal plane (blur-circle radius
   |dz| tan(alpha), alpha = asin(NA / n)). Particles are grouped by blur level; each level is one
   separable blur of the whole image (blurring is linear, so the sum of blurred layers is exact).
   Touching particles merge, as in real OM images.
3. **Halo and glare**: a phase halo (bright outside, dark inside the rim: blur(mask) - mask) and
   veiling glare (a fraction of the light spread widely).
4. **Illumination**: a smooth quadratic field (Koehler misalignment), cos^4 vignetting and an
   optional circular field stop (photos through an eyepiece).
5. **Camera**: colour cast, Poisson-Gaussian noise (photon count + read noise), tone curve, JPEG.
"""

from __future__ import annotations

import math

import numpy as np

from srpsa.synth.config import OMConfig
from srpsa.synth.layout import Layout
from srpsa.synth.noise import blur, jpeg_roundtrip, shot_read_noise
from srpsa.synth.raster import rasterize_crosses, rasterize_spheres

_RHO_BINS = 256  # radial samples of a particle profile (0 = centre, 1 = rim)
_FOCUS_ROWS = 17  # focus offsets tabulated per image
_PROFILE_CAP = 4.0  # caustic cap (x background): diffraction spreads the geometric focus anyway


def psf_sigma_um(wavelength_um: float, na: float) -> float:
    """Gaussian sigma of the Airy disk's central lobe (Zhang et al. 2007 fit: 0.21 lambda / NA)."""
    return 0.21 * wavelength_um / na


def depth_of_field_um(wavelength_um: float, na: float, n_medium: float) -> float:
    """Wave-optical depth of field lambda n / NA^2."""
    return wavelength_um * n_medium / (na * na)


def _fresnel_t(cos_i: np.ndarray, cos_t: np.ndarray, n1: float, n2: float) -> np.ndarray:
    """Unpolarised Fresnel power transmission at an interface n1 -> n2."""
    rs = (n1 * cos_i - n2 * cos_t) / (n1 * cos_i + n2 * cos_t)
    rp = (n1 * cos_t - n2 * cos_i) / (n1 * cos_t + n2 * cos_i)
    return 1.0 - 0.5 * (rs * rs + rp * rp)


def _cone_overlap(delta: np.ndarray, a: float, b: float) -> np.ndarray:
    """Fraction of an illumination cone (angular radius a), tilted by delta, inside the objective cone b.

    Small-angle picture: the area of intersection of two discs of radii a and b whose centres are
    delta apart, divided by the area of the first. With a -> 0 it is a step at delta = b.
    """
    d = np.abs(delta)
    if a < 1e-6:
        return (d <= b).astype(float)
    out = np.zeros_like(d)
    full = d <= abs(b - a)
    out[full] = 1.0 if a <= b else (b * b) / (a * a)
    part = (d > abs(b - a)) & (d < a + b)
    dp = d[part]
    c1 = np.clip((dp * dp + a * a - b * b) / (2 * dp * a), -1, 1)
    c2 = np.clip((dp * dp + b * b - a * a) / (2 * dp * b), -1, 1)
    area = (
        a * a * np.arccos(c1)
        + b * b * np.arccos(c2)
        - 0.5 * np.sqrt(np.maximum((-dp + a + b) * (dp + a - b) * (dp - a + b) * (dp + a + b), 0.0))
    )
    out[part] = area / (math.pi * a * a)
    return out


def transmitted_profiles(om: OMConfig, focus_rel: np.ndarray, n_rays: int = 6000) -> np.ndarray:
    """Ray-traced intensity across a transparent sphere, relative to the unobstructed background.

    Parameters
    ----------
    focus_rel : (K,) height of the focal plane above the sphere's centre, in sphere radii.

    Returns
    -------
    (K, _RHO_BINS) intensity at radius rho = (i + 0.5) / _RHO_BINS of the sphere's radius.
    """
    nm, npart = float(om.n_medium), float(om.n_particle)
    na_m = min(float(om.na) / nm, 0.999)
    alpha_o = math.asin(na_m)  # objective acceptance half-angle in the medium
    alpha_c = math.asin(min(float(om.condenser_fill) * float(om.na) / nm, 0.999))
    rho = (np.arange(n_rays) + 0.5) / n_rays
    # Entry at the bottom of the sphere (light travels +z), unit sphere centred at the origin.
    p1 = np.stack([rho, -np.sqrt(1 - rho * rho)], 1)
    cos_i = np.sqrt(1 - rho * rho)
    eta = nm / npart
    cos_t = np.sqrt(np.maximum(1 - eta * eta * (1 - cos_i * cos_i), 0.0))
    d1 = eta * np.array([0.0, 1.0])[None, :] + (eta * cos_i - cos_t)[:, None] * p1
    s = -2.0 * np.sum(p1 * d1, 1)  # chord length inside the sphere
    p2 = p1 + s[:, None] * d1
    cos_i2 = np.sum(d1 * p2, 1)
    eta2 = npart / nm
    cos_t2 = np.sqrt(np.maximum(1 - eta2 * eta2 * (1 - cos_i2 * cos_i2), 0.0))
    d2 = eta2 * d1 - (eta2 * cos_i2 - cos_t2)[:, None] * p2
    d2 /= np.linalg.norm(d2, axis=1)[:, None]
    deviation = np.arctan2(d2[:, 0], d2[:, 1])
    weight = (
        _fresnel_t(cos_i, cos_t, nm, npart)
        * _fresnel_t(cos_i2, cos_t2, npart, nm)
        * np.exp(-float(om.optical_density) * s / 2.0)  # absorbance given per diameter (= 2 radii)
        * _cone_overlap(deviation, alpha_c, alpha_o)
        * rho
        / n_rays  # ring of radius rho and width 1/n_rays carries power ~ rho d rho
    )
    edges = np.linspace(0.0, 1.0, _RHO_BINS + 1)
    ring = 0.5 * (edges[1:] ** 2 - edges[:-1] ** 2)  # rho d rho of each output bin
    slope = d2[:, 0] / np.maximum(d2[:, 1], 1e-6)
    rows = []
    for zf in np.atleast_1d(focus_rel):
        x_img = np.abs(p2[:, 0] + (zf - p2[:, 1]) * slope)  # where the ray (or its extension) crosses focus
        hist, _ = np.histogram(x_img, bins=edges, weights=weight)
        prof = hist / ring
        # Light smoothing: geometric caustics are infinitely sharp, diffraction is not.
        k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
        prof = np.convolve(np.pad(prof, 6, mode="edge"), k / k.sum(), mode="valid")
        rows.append(np.minimum(prof, _PROFILE_CAP))
    return np.asarray(rows, np.float32)


def reflected_profile(om: OMConfig) -> np.ndarray:
    """Absolute brightness across an opaque diffusely reflecting sphere lit along the axis."""
    rho = (np.arange(_RHO_BINS) + 0.5) / _RHO_BINS
    nz = np.sqrt(np.maximum(1 - rho * rho, 0.0))  # cosine of the surface tilt
    prof = float(om.reflect_albedo) * nz ** float(om.reflect_exponent) + float(om.specular) * np.exp(-((rho / 0.18) ** 2))
    return prof[None, :].astype(np.float32)


def _illumination(shape: tuple[int, int], om: OMConfig, rng: np.random.Generator) -> np.ndarray:
    """Smooth illumination field x vignetting x optional field stop (mean ~1 in the open field)."""
    h, w = shape
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (max(h, w) / 2)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (max(h, w) / 2)
    xx, yy = np.meshgrid(x, y)
    c = rng.normal(0.0, 1.0, 5)
    poly = c[0] * xx + c[1] * yy + c[2] * xx * xx + c[3] * yy * yy + c[4] * xx * yy
    ptp = float(poly.max() - poly.min())
    field = 1.0 + float(om.illum_gradient) * (poly - poly.mean()) / (ptp if ptp > 0 else 1.0)
    # cos^4 law: (1 + (r/f)^2)^-2, scaled so the corners drop by `vignetting`.
    half_diag = math.hypot(w, h) / 2
    ocx, ocy = rng.normal(0, 0.03, 2) * np.array([w, h])
    rr2 = ((np.arange(w)[None, :] - (w - 1) / 2 - ocx) ** 2 + (np.arange(h)[:, None] - (h - 1) / 2 - ocy) ** 2) / half_diag**2
    v = min(float(om.vignetting), 0.95)
    cfac = (1.0 - v) ** -0.5 - 1.0
    field = field / (1.0 + cfac * rr2) ** 2
    if float(om.field_stop) > 0 and rng.random() < float(om.field_stop_prob):
        radius = float(om.field_stop) * half_diag
        soft = max(float(om.field_stop_softness) * radius, 1.0)
        t = np.clip((radius - np.sqrt(rr2) * half_diag) / soft + 0.5, 0.0, 1.0)
        field = field * (0.015 + 0.985 * t * t * (3 - 2 * t))  # smoothstep edge, a little stray light outside
    return field.astype(np.float32)


def render_om(
    layout: Layout,
    om: OMConfig,
    shape: tuple[int, int],
    rng: np.random.Generator,
    fiducials: np.ndarray,
    fid_arm_px: float,
    fid_width_px: float,
    fid_transmission: float,
    ref_radius_um: float,
) -> tuple[np.ndarray, dict]:
    """Render the OM image (float32 in [0, 1], gray (H, W) or RGB (H, W, 3)) and derived parameters.

    ``ref_radius_um`` is the mean particle radius of the configured distribution: the unit of ``focus``.
    """
    pix = float(om.pixel_size_um)
    h, w = shape
    na, lam, nm = float(om.na), float(om.wavelength_um), float(om.n_medium)
    bg = float(om.background)

    # Focal plane: `focus` mean radii above the equator of a mean particle resting on the slide.
    focus_height = ref_radius_um * (1.0 + float(om.focus))
    dz = layout.z_um - focus_height  # particle centre relative to the focal plane (um)
    r_um = layout.d_um / 2.0

    ras = rasterize_spheres(layout.xy, layout.r_px, layout.z_um / pix + layout.r_px, np.eye(3), shape)
    covered = ras.ids >= 0
    pid = ras.ids[covered]
    rho_bin = np.minimum((ras.rho[covered] * _RHO_BINS).astype(np.int32), _RHO_BINS - 1)

    if om.illumination == "transmitted":
        focus_rel = -dz / np.maximum(r_um, 1e-9)  # focal plane above the centre, in radii
        lo, hi = (float(focus_rel.min()), float(focus_rel.max())) if len(layout) else (0.0, 0.0)
        grid = np.linspace(lo, hi, _FOCUS_ROWS) if hi > lo else np.array([lo])
        table = transmitted_profiles(om, grid) * bg
        row = np.rint((focus_rel - lo) / max(hi - lo, 1e-9) * (len(grid) - 1)).astype(np.int32)
        value = table[row[pid], rho_bin]
    else:
        table = reflected_profile(om)
        value = table[0, rho_bin]
    delta_obj = np.zeros(shape, np.float32)
    delta_obj[covered] = ras.cov[covered] * (value - bg)

    # Blur of each particle: PSF (+ pixel box filter) and defocus beyond the depth of field.
    sigma_psf_px = float(np.sqrt((psf_sigma_um(lam, na) / pix) ** 2 + 1 / 12 + float(om.camera_blur_px) ** 2))
    dof = depth_of_field_um(lam, na, nm)
    tan_a = math.tan(math.asin(min(na / nm, 0.999)))

    def sigma_px(dz_um: np.ndarray) -> np.ndarray:
        blur_radius = np.maximum(np.abs(dz_um) - dof / 2, 0.0) * tan_a
        return np.hypot(sigma_psf_px, 0.5 * blur_radius / pix)  # blur circle radius ~ 2 sigma

    # Quantise blur levels geometrically (15 % steps): invisible error, a handful of blurs per image.
    sig_particles = sigma_px(dz) if len(layout) else np.zeros(0)
    level = np.rint(np.log(sig_particles / sigma_psf_px) / math.log(1.15)).astype(np.int32)
    level_map = np.full(shape, -1, np.int32)
    level_map[covered] = level[pid]

    out = np.full(shape, bg, np.float32)
    for lv in np.unique(level):
        layer = np.where(level_map == lv, delta_obj, 0.0).astype(np.float32)
        out += blur(layer, sigma_psf_px * 1.15**lv)

    # Fiducial crosses: an opaque metal film on the slide surface (height 0).
    if len(fiducials):
        fcov, _ = rasterize_crosses(fiducials, fid_arm_px, fid_width_px, np.eye(3), shape)
        sig_f = float(sigma_px(np.array([0.0 - focus_height]))[0])
        out += blur(fcov * (bg * fid_transmission - bg), sig_f)
    else:
        fcov = np.zeros(shape, np.float32)

    # Phase halo / edge bleeding: bright just outside edges, darker just inside.
    mask = np.where(covered, ras.cov, 0.0).astype(np.float32) + fcov
    halo_px = float(om.halo_px)
    if float(om.halo) != 0.0 and halo_px > 0.3:
        out += float(om.halo) * bg * (blur(mask, halo_px) - mask)
    # Veiling glare: stray light from everywhere, spread over a tenth of the field.
    g = float(om.glare)
    if g > 0:
        out = (1 - g) * out + g * blur(out, 0.1 * max(h, w))
    out *= _illumination(shape, om, rng)

    if om.colour:
        tint = np.asarray(om.tint, np.float32) * (1 + float(om.tint_jitter) * rng.uniform(-1, 1, 3)).astype(np.float32)
        tint = np.maximum(tint, 0.05)
        img = out[..., None] * (tint / tint.max())[None, None, :]
    else:
        img = out
    img = shot_read_noise(img, rng, float(om.full_well), float(om.read_noise))
    img = np.clip(img, 0.0, 1.0) ** (1.0 / float(om.gamma))
    jpeg = int(om.jpeg_quality)
    if jpeg > 0 and rng.random() < float(om.jpeg_prob):
        img = jpeg_roundtrip(img, jpeg)
    else:
        jpeg = 0
    derived = {
        "psf_sigma_px": sigma_psf_px,
        "depth_of_field_um": dof,
        "focal_plane_height_um": focus_height,
        "blur_levels": int(len(np.unique(level))),
        "jpeg_applied_quality": jpeg,
    }
    return np.ascontiguousarray(img, dtype=np.float32), derived
