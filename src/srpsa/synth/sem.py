"""Secondary-electron (SE) SEM image of a sphere scene, seen through the misregistration affine.

Contrast mechanisms, each a vectorised per-pixel formula on the rasterised scene:

* **Tilt contrast**: the SE yield grows with the angle theta between the surface normal and the
  beam, roughly as sec(theta)^k (the escape depth is crossed by a longer path of the primary beam),
  so spheres brighten towards their rims.
* **Edge effect**: within about one interaction-volume radius of the rim, electrons escape through
  the side surface too: a thin extra-bright band.
* **Topographic (Everhart-Thornley) shading**: the side detector collects more SEs from faces that
  look towards it, fewer from faces turned away.
* **Shadowing**: SEs from crevices between touching particles and from the substrate beside them are
  partly blocked on their way to the detector - more so on the side away from it (an ambient
  occlusion term from the height map, offset towards the detector).
* **Texture**: fine cellular surface texture of the particles (solidification cells of atomised
  powder) and a smoother substrate texture.
* **Raster artefacts**: beam spot blur, charging glow and smear along the scan, per-line jitter and
  gain (horizontal streaks), Poisson-Gaussian detector noise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.signal import lfilter

from srpsa.synth.config import SEMConfig
from srpsa.synth.layout import Layout
from srpsa.synth.noise import blur, fractal_noise, ridged, scan_line_noise, shot_read_noise
from srpsa.synth.raster import SphereRaster, rasterize_crosses, rasterize_spheres

_TILT_BINS = 1024  # samples of the tilt-contrast table over rho in [0, 1]


def _sphere_texture(
    ras: SphereRaster, rho: np.ndarray, shape: tuple[int, int], rng: np.random.Generator, cell_px: float
) -> np.ndarray:
    """Cellular surface texture wrapped onto each sphere.

    A flat texture is looked up at the arc length along the sphere's surface, r * asin(rho), instead
    of the projected radius r * rho: cells are foreshortened towards the rim as on a real sphere.
    Each particle reads the texture at its own random offset, so touching particles do not share cells.
    """
    h, w = shape
    field = ridged(fractal_noise(shape, rng, cell_px, octaves=4, persistence=0.5, min_cell=2.0))
    idx = ras.ids + 1  # row 0 = substrate
    jitter = rng.uniform(-0.25, 0.25, (int(idx.max()) + 1, 2)).astype(np.float32) * np.float32(min(h, w))
    jitter[0] = 0.0
    # asin(rho) / rho - 1 as a table over rho (0 on the substrate, where rho = 0).
    rho_tab = np.linspace(1e-4, 1.0, _TILT_BINS)
    stretch_tab = (np.arcsin(rho_tab) / rho_tab - 1.0).astype(np.float32)
    stretch = stretch_tab[(rho * (_TILT_BINS - 1) + 0.5).astype(np.int32)]
    map_x = np.arange(w, dtype=np.float32)[None, :] + ras.ox * stretch + jitter[idx, 0]
    map_y = np.arange(h, dtype=np.float32)[:, None] + ras.oy * stretch + jitter[idx, 1]
    return cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def render_sem(
    layout: Layout,
    sem: SEMConfig,
    pixel_size_om_um: float,
    transform: np.ndarray,
    shape: tuple[int, int],
    rng: np.random.Generator,
    fiducials: np.ndarray,
    fid_arm_px: float,
    fid_width_px: float,
    fid_level: float,
    ref_radius_px: float,
) -> np.ndarray:
    """Render the SEM image (float32 (Hs, Ws) in [0, 1]) of ``layout`` (OM px) through ``transform``.

    ``ref_radius_px`` is the mean particle radius (OM px): the unit of shadow and texture scales.
    Lengths tied to the beam (spot, interaction volume) are in SEM pixels: operators pick the
    magnification that frames the particles, so what matters is their size relative to the pixel.
    """
    ras = rasterize_spheres(layout.xy, layout.r_px, layout.z_um / pixel_size_om_um + layout.r_px, transform, shape)
    k = ras.px_per_unit  # SEM px per OM px
    pix = pixel_size_om_um / k  # SEM pixel size (um)
    covered = ras.ids >= 0
    # Per-particle values as images via a lookup table indexed by id + 1 (index 0 = substrate).
    lut_r = np.concatenate([[0.0], layout.r_px * k]).astype(np.float32)
    lut_z = np.concatenate([[0.0], layout.z_um / pix]).astype(np.float32)
    r_img = lut_r[ras.ids + 1]
    r_safe = np.maximum(r_img, 1e-3)

    # Surface normal of the visible sphere (image frame; y down): (ox, oy, nz) / r.
    rho = np.minimum(ras.rho, 1.0)
    nz = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
    nx, ny = ras.ox / r_safe, ras.oy / r_safe

    # Tilt contrast sec(theta)^k, bounded where the surface turns grazing (theta > ~78 deg), but at
    # grazing incidence many SEs leave towards the substrate and neighbours and are lost. A function
    # of rho only: tabulated once, looked up per pixel.
    rho_tab = np.linspace(0.0, 1.0, _TILT_BINS, dtype=np.float32)
    nz_tab = np.sqrt(1.0 - rho_tab * rho_tab)
    tilt_tab = (1.0 / np.maximum(nz_tab, 0.2)) ** float(sem.edge_exponent)
    tilt_tab *= 1.0 - float(sem.rim_rolloff) * np.exp(-nz_tab / 0.2)
    tilt = tilt_tab[(rho * (_TILT_BINS - 1) + 0.5).astype(np.int32)]
    edge_px = max(float(sem.edge_px), 0.3)
    edge = float(sem.edge_gain) * np.exp(-np.maximum(1.0 - ras.rho, 0.0) * r_img / edge_px)
    phi = math.radians(float(sem.detector_azimuth_deg))
    facing = nx * math.cos(phi) + ny * math.sin(phi)
    shading = 1.0 + float(sem.detector_shading) * facing
    tex_cell = max(2.0 * ref_radius_px * k / float(sem.texture_cells), 1.5)
    texture = 1.0 + float(sem.surface_texture) * _sphere_texture(ras, rho, shape, rng, tex_cell)
    particle = float(sem.particle_level) * tilt * shading * texture + edge

    grain = fractal_noise(shape, rng, 0.5 * ref_radius_px * k + 2, 3)
    substrate = float(sem.substrate) * (1.0 + float(sem.substrate_texture) * grain)
    if len(fiducials):
        fcov, fdepth = rasterize_crosses(fiducials, fid_arm_px, fid_width_px, transform, shape)
        # The metal film's own edge effect (a bright outline) over its flat SE level.
        fval = fid_level * (1.0 + 0.4 * np.exp(-fdepth / edge_px))
        substrate = substrate + fcov * (fval - substrate)

    img = ras.cov * particle + (1.0 - ras.cov) * substrate

    # Shadowing from the height map (SEM px): low points surrounded by high ones lose SEs; the
    # surroundings are sampled a little towards the detector, so the far side of a particle is darker.
    height = lut_z[ras.ids + 1] + r_img * nz  # substrate: 0 + 0
    sh_px = max(float(sem.shadow_radii) * ref_radius_px * k, 1.0)
    hb = blur(height, sh_px)
    shift = np.float32([[1, 0, 0.7 * sh_px * math.cos(phi)], [0, 1, 0.7 * sh_px * math.sin(phi)]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    hb = cv2.warpAffine(hb, shift, (shape[1], shape[0]), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    occlusion = np.clip((hb - height) / (2.0 * sh_px), 0.0, 1.0)
    img *= 1.0 - float(sem.shadow) * occlusion

    img = blur(img.astype(np.float32), float(sem.beam_blur_px))
    if float(sem.charging) > 0:
        # Insulating particles charge up: a diffuse glow plus a bright smear trailing each particle
        # along the fast scan direction (+x) while the surface potential relaxes.
        mask = np.where(covered, ras.cov, 0.0).astype(np.float32)
        # Both terms are smooth: compute them on a 4x smaller grid and upsample.
        small = cv2.resize(mask, (max(shape[1] // 4, 1), max(shape[0] // 4, 1)), interpolation=cv2.INTER_AREA)
        decay = math.exp(-1.0 / max(0.05 * small.shape[1], 1.0))
        smear = lfilter([1 - decay], [1.0, -decay], small, axis=1).astype(np.float32)
        glow = 2.0 * smear + blur(small, 0.03 * max(small.shape))
        img += float(sem.charging) * cv2.resize(glow, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    img = scan_line_noise(img, rng, float(sem.line_jitter_px), float(sem.streaks))
    img = shot_read_noise(img, rng, float(sem.dose), float(sem.read_noise))
    return np.clip(img, 0.0, 1.0).astype(np.float32)
