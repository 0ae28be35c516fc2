"""The fields of the paired OM/SEM simulator's configuration: one dataclass per stage of the simulation.

A :class:`SynthConfig` has one section per stage: particle ``size`` distribution, ``layout`` on the slide,
optical microscope ``om``, electron microscope ``sem``, the OM->SEM ``misregistration`` and the
``fiducials``. Every numeric field may hold either one value or a ``[lo, hi]`` range, and every
text/boolean field either one value or a list of choices, drawn per image by
:func:`srpsa.synth.checks.resolve`. Each field carries a one-line ``doc`` (and its unit, and whether
ranges are drawn log-uniformly) in its metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A value, or a [lo, hi] range drawn per image.
FloatR = float | tuple[float, float]
IntR = int | tuple[int, int]
# A value, or a tuple of choices drawn per image.
StrC = str | tuple[str, ...]
BoolC = bool | tuple[bool, ...]
RGB = tuple[float, float, float]


def _f(default: Any, doc: str, *, log: bool = False, unit: str = "") -> Any:
    """A dataclass field with its documentation (and whether ranges are drawn log-uniformly)."""
    return field(default=default, metadata={"doc": doc, "log": log, "unit": unit})


@dataclass
class SizeConfig:
    """Particle diameter distribution (physical units)."""

    distribution: StrC = _f("lognormal", "lognormal, normal or bimodal (two lognormal modes)")
    # Paper Table 3 (primary dataset ground truth): mean 9.34 um, CV 24.96 %.
    mean_um: FloatR = _f(9.34, "number-mean diameter of the (first) mode", log=True, unit="um")
    cv_percent: FloatR = _f(25.0, "coefficient of variation of the (first) mode", unit="%")
    mode2_ratio: FloatR = _f(2.0, "bimodal: mean of mode 2 / mean of mode 1")
    mode2_cv_percent: FloatR = _f(12.0, "bimodal: CV of mode 2", unit="%")
    mode2_fraction: FloatR = _f(0.3, "bimodal: number fraction of particles in mode 2")
    mean_px: FloatR = _f(
        0.0,
        "if > 0, the OM pixel size is set so that the mean diameter spans this many OM px "
        "(randomises magnification; overrides om.pixel_size_um; see om.samples_per_resolution)",
        log=True,
        unit="px",
    )
    min_diameter_px: FloatR = _f(3.0, "diameters below this (OM px) are redrawn: unresolvable in OM", unit="px")


@dataclass
class LayoutConfig:
    """Where particles lie on the slide."""

    mode: StrC = _f("dense", "sparse (random, separated), dense (touching monolayer) or clusters (agglomerates)")
    area_fraction: FloatR = _f(0.55, "dense/clusters: target sum of particle disc areas / field area")
    sparse_area_fraction: FloatR = _f(0.1, "sparse: the same target; particles keep a gap of 0.3 radii", log=True)
    max_overlap: FloatR = _f(0.05, "largest allowed overlap depth as a fraction of the smaller radius (0: touching)")
    cluster_size: FloatR = _f(12.0, "clusters: mean number of particles per agglomerate", log=True)
    cluster_fraction: FloatR = _f(0.8, "clusters: fraction of particles that belong to an agglomerate")
    relax_iterations: IntR = _f(400, "maximum overlap-removal passes of the packing")
    z_jitter: FloatR = _f(0.1, "std of particle-centre heights above their resting height", unit="mean radii")
    tilt: FloatR = _f(0.2, "height change of the slide across the field diagonal (sample tilt)", unit="mean radii")


@dataclass
class OMConfig:
    """Optical microscope: optics, illumination, camera."""

    # 4752 x 3168 photos downsampled by 4 (paper 3.4) put 9.34 um particles at ~20 px: 0.4 um/px.
    pixel_size_um: FloatR = _f(0.4, "OM pixel size in the sample plane", log=True, unit="um/px")
    samples_per_resolution: FloatR = _f(
        0.0,
        "if > 0 (with size.mean_px): pixel size = wavelength / (this x NA), and mean_um follows from mean_px "
        "(a camera matched to the optics; 4 = Nyquist)",
    )
    illumination: StrC = _f("transmitted", "transmitted (bright-field) or reflected (epi, particles bright on dark)")
    wavelength_um: FloatR = _f(0.55, "centre wavelength of the illumination", unit="um")
    na: FloatR = _f(0.4, "numerical aperture of the objective")
    condenser_fill: FloatR = _f(0.7, "condenser NA / objective NA (aperture diaphragm setting)")
    n_medium: FloatR = _f(1.0, "refractive index around the particles (1.0 dry, 1.33 water, 1.52 oil)")
    n_particle: FloatR = _f(1.59, "refractive index of the particles (1.59 polystyrene, 1.49 PMMA, 1.52 glass)")
    optical_density: FloatR = _f(0.05, "absorbance (natural log) along a particle diameter; >= 3 is opaque (metal)")
    focus: FloatR = _f(
        0.2, "focal plane above the mean particle equator (+: bright lens spot, -: dark centre)", unit="mean radii"
    )
    reflect_albedo: FloatR = _f(0.85, "reflected: diffuse reflectance of the particles")
    reflect_exponent: FloatR = _f(0.6, "reflected: brightness ~ cos(theta)^k across a particle (k small: flat discs)")
    specular: FloatR = _f(0.1, "reflected: strength of the specular highlight at the particle top")
    background: FloatR = _f(0.7, "intensity of the empty field (transmitted ~0.5-0.9, reflected ~0.05-0.3)")
    camera_blur_px: FloatR = _f(0.0, "extra Gaussian blur of relay/camera optics and demosaicing (sigma)", unit="px")
    halo: FloatR = _f(0.08, "phase halo / edge bleeding: bright outside and dark inside the rim (can be < 0)")
    halo_px: FloatR = _f(2.5, "width of the halo (Gaussian sigma)", unit="px")
    glare: FloatR = _f(0.03, "veiling glare: fraction of light scattered into a wide blur")
    illum_gradient: FloatR = _f(0.08, "peak-to-peak amplitude of the low-order (quadratic) illumination field", log=True)
    vignetting: FloatR = _f(0.1, "cos^4-like fall-off of intensity at the field corners", log=True)
    field_stop: FloatR = _f(0.0, "radius of a circular field stop / eyepiece circle as a fraction of the half-diagonal (0: none)")
    field_stop_prob: FloatR = _f(1.0, "probability that the field stop is present (when field_stop > 0)")
    field_stop_softness: FloatR = _f(0.06, "width of the field-stop edge as a fraction of its radius")
    colour: BoolC = _f(False, "RGB output with a colour cast (else gray)")
    tint: RGB = _f((1.0, 1.0, 1.0), "RGB gains of the colour cast (normalised to max 1)")
    tint_jitter: FloatR = _f(0.0, "random per-channel perturbation of the tint (domain randomisation)")
    gamma: FloatR = _f(1.0, "camera tone curve: output = input^(1/gamma)")
    full_well: FloatR = _f(3000.0, "photo-electrons at full scale (shot noise: fewer = noisier)", log=True)
    read_noise: FloatR = _f(0.004, "camera read noise std as a fraction of full scale")
    jpeg_quality: IntR = _f(0, "JPEG compression quality of the camera (0: lossless)")
    jpeg_prob: FloatR = _f(1.0, "probability that JPEG compression is applied (when jpeg_quality > 0)")


@dataclass
class SEMConfig:
    """Scanning electron microscope (secondary-electron image, Everhart-Thornley detector)."""

    sem_scale: FloatR = _f(2.0, "OM pixel size / SEM pixel size")
    substrate: FloatR = _f(0.1, "SE signal of the substrate (carbon tape: dark)")
    substrate_texture: FloatR = _f(0.04, "amplitude of the substrate texture")
    particle_level: FloatR = _f(0.42, "SE signal of a particle surface at normal incidence")
    edge_exponent: FloatR = _f(0.35, "SE yield ~ sec(theta)^k with theta the surface tilt (edge brightening)")
    rim_rolloff: FloatR = _f(0.5, "signal lost at grazing incidence (SEs re-absorbed by the substrate/neighbours)")
    edge_gain: FloatR = _f(0.15, "extra brightness of the rim where the interaction volume meets the edge")
    edge_px: FloatR = _f(1.2, "width of the rim brightening (interaction-volume size)", unit="SEM px")
    detector_azimuth_deg: FloatR = _f(-60.0, "direction of the side detector in the SEM image (0: +x, 90: +y down)", unit="deg")
    detector_shading: FloatR = _f(0.3, "topographic contrast: faces towards the detector brighter")
    shadow: FloatR = _f(0.5, "darkening of crevices and of substrate next to particles (SE escape blocked)")
    shadow_radii: FloatR = _f(0.3, "length scale of that shadowing", unit="mean radii")
    surface_texture: FloatR = _f(0.12, "amplitude of the particle surface texture (solidification cells)")
    texture_cells: FloatR = _f(8.0, "surface-texture cells across a mean particle diameter", log=True)
    beam_blur_px: FloatR = _f(0.4, "beam spot size (Gaussian sigma)", unit="SEM px")
    dose: FloatR = _f(400.0, "detected electrons per pixel at signal 1 (shot noise: fewer = noisier)", log=True)
    read_noise: FloatR = _f(0.005, "detector/amplifier Gaussian noise std")
    line_jitter_px: FloatR = _f(0.2, "std of the per-scan-line horizontal offset", unit="px")
    streaks: FloatR = _f(0.015, "std of the per-scan-line gain (horizontal streaks)")
    charging: FloatR = _f(0.0, "amplitude of charging: bright glow and smear trailing along the scan")


@dataclass
class MisregistrationConfig:
    """Random affine between the OM field and the SEM field (the SEM is rendered through it)."""

    enabled: BoolC = _f(True, "false: SEM exactly aligned to the OM field (sem_scale only)")
    rotation_deg: FloatR = _f(3.0, "largest absolute rotation", unit="deg")
    scale: FloatR = _f(0.03, "largest relative scale deviation")
    shear: FloatR = _f(0.01, "largest absolute shear")
    translation: FloatR = _f(0.02, "largest absolute translation as a fraction of the image size")


@dataclass
class FiducialConfig:
    """Plus-shaped fiducial crosses near the corners (docs/design.md): dark in OM, bright in SEM."""

    count: IntR = _f(4, "number of markers (0: none); 1-4 at the corners, more along the edges")
    prob: FloatR = _f(1.0, "probability that the markers are there at all (domain randomisation)")
    arm_um: FloatR = _f(0.0, "arm length, centre to tip (0: three mean diameters)", unit="um")
    width_um: FloatR = _f(0.0, "arm width (0: 0.6 mean diameters, at least 3 OM px)", unit="um")
    inset: FloatR = _f(0.1, "centre distance from the corner as a fraction of min(height, width)")
    om_transmission: FloatR = _f(0.06, "OM intensity of the opaque marker relative to the background")
    sem_level: FloatR = _f(0.85, "SE signal of the metal marker")


@dataclass
class SynthConfig:
    """Everything that defines one simulated OM/SEM pair (see :func:`preset`)."""

    name: str = "custom"
    height: int = 1024
    width: int = 1536
    size: SizeConfig = field(default_factory=SizeConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    om: OMConfig = field(default_factory=OMConfig)
    sem: SEMConfig = field(default_factory=SEMConfig)
    misregistration: MisregistrationConfig = field(default_factory=MisregistrationConfig)
    fiducials: FiducialConfig = field(default_factory=FiducialConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable nested dict (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))


SECTIONS: dict[str, type] = {
    "size": SizeConfig,
    "layout": LayoutConfig,
    "om": OMConfig,
    "sem": SEMConfig,
    "misregistration": MisregistrationConfig,
    "fiducials": FiducialConfig,
}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
