"""Typed configuration of the paired OM/SEM simulator, its presets and TOML overrides.

A :class:`SynthConfig` has one section per stage of the simulation: particle ``size`` distribution,
``layout`` on the slide, optical microscope ``om``, electron microscope ``sem``, the OM->SEM
``misregistration`` and the ``fiducials``. Every numeric field may hold either one value or a
``[lo, hi]`` range, and every text/boolean field either one value or a list of choices: ranges and
choices are drawn **per image** by :func:`resolve` (uniformly, or log-uniformly for fields marked
``log``). That one mechanism gives both the fixed-optics presets that mirror the paper's datasets and
the domain-randomised ``train`` preset.

Each field carries a one-line ``doc`` in its metadata; :func:`parameter_table` renders them as the
markdown table in ``docs/simulator.md`` so that the docs cannot drift from the code.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.config import read_toml
from srpsa.errors import ConfigError

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


# ----------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------


def _paper_dataset(name: str, mean_um: float, cv: float) -> SynthConfig:
    """One of the paper's datasets (Fig. 7, Tables 3-5): one microscope, varying slides.

    All three were imaged on the same setup, so they share optics; only the powder differs. Layouts
    vary per image because the paper's images range from sparse to dense agglomerates.
    """
    cfg = SynthConfig(name=name)
    cfg.size.mean_um = mean_um
    cfg.size.cv_percent = cv
    cfg.layout.mode = ("dense", "dense", "clusters", "sparse")
    cfg.layout.area_fraction = (0.35, 0.62)
    cfg.layout.sparse_area_fraction = (0.05, 0.2)
    # Session-to-session variation of one microscope: small ranges, not domain randomisation.
    cfg.om.focus = (0.0, 0.45)
    cfg.om.background = (0.6, 0.8)
    cfg.om.illum_gradient = (0.03, 0.12)
    cfg.sem.detector_shading = (0.15, 0.3)
    return cfg


def _primary() -> SynthConfig:
    """Paper's primary dataset (Table 3: mean 9.34 um, CV 24.96 %), 0.4 um/px OM, 0.2 um/px SEM."""
    return _paper_dataset("primary", 9.34, 25.0)  # Table 3 ground truth: mean 9.34 um, CV 24.96 %


def _secondary() -> SynthConfig:
    """Paper's secondary dataset (Table 4: mean 6.74 um, CV 22.00 %), same microscope as primary."""
    return _paper_dataset("secondary", 6.74, 22.0)  # Table 4: mean 6.74 um, CV 22.00 %


def _tertiary() -> SynthConfig:
    """Paper's tertiary dataset (Table 5: mean 6.73 um, CV 13.62 %, left-skewed: normal), same microscope."""
    cfg = _paper_dataset("tertiary", 6.73, 14.0)  # Table 5: mean 6.73 um, CV 13.62 %
    cfg.size.distribution = "normal"  # Table 5: D50 > mean and mode > D50, i.e. left-skewed: not lognormal
    return cfg


def _heldout() -> SynthConfig:
    """Held-out domain: other optics (blue light, high-NA water immersion), bimodal powder, finer pixels."""
    cfg = SynthConfig(name="heldout")
    cfg.size.distribution = "bimodal"
    cfg.size.mean_um = 5.0
    cfg.size.cv_percent = 15.0
    cfg.size.mode2_ratio = 2.2
    cfg.size.mode2_fraction = 0.25
    cfg.layout.mode = ("dense", "clusters")
    cfg.layout.area_fraction = (0.4, 0.6)
    cfg.layout.max_overlap = 0.1
    cfg.om.pixel_size_um = 0.25
    cfg.om.wavelength_um = 0.46
    cfg.om.na = 0.75
    cfg.om.n_medium = 1.33
    cfg.om.n_particle = 1.49
    cfg.om.focus = (-0.4, 0.6)
    cfg.om.background = 0.55
    cfg.om.halo = 0.15
    cfg.om.illum_gradient = 0.2
    cfg.om.vignetting = 0.25
    cfg.om.full_well = 800.0
    cfg.om.read_noise = 0.01
    cfg.sem.sem_scale = 2.5
    cfg.sem.detector_azimuth_deg = 150.0
    cfg.sem.dose = 60.0
    cfg.sem.charging = 0.05
    cfg.sem.line_jitter_px = 0.5
    return cfg


def _heldout_eyepiece() -> SynthConfig:
    """Held-out: phone/DSLR photo through the eyepiece - circular field, colour cast, JPEG, reflected light."""
    cfg = SynthConfig(name="heldout_eyepiece")
    cfg.size.mean_um = 200.0
    cfg.size.cv_percent = 10.0
    cfg.size.distribution = "normal"
    cfg.layout.mode = "dense"
    cfg.layout.area_fraction = (0.6, 0.68)
    cfg.layout.z_jitter = 0.05
    cfg.layout.tilt = 0.2
    cfg.om.pixel_size_um = 2.6  # polymer-bead photos: about 2.63 um/px (source states 1000/380)
    cfg.om.illumination = "reflected"
    cfg.om.na = 0.1
    cfg.om.background = 0.08
    cfg.om.reflect_albedo = 0.9
    cfg.om.reflect_exponent = 0.35
    cfg.om.focus = (-0.2, 0.2)
    cfg.om.glare = 0.1
    cfg.om.camera_blur_px = (2.0, 3.5)
    cfg.om.field_stop = 0.78
    cfg.om.field_stop_softness = 0.12
    cfg.om.vignetting = 0.3
    cfg.om.colour = True
    cfg.om.tint = (0.6, 0.92, 1.0)
    cfg.om.gamma = 1.6
    cfg.om.full_well = 400.0
    cfg.om.jpeg_quality = 80
    cfg.sem.sem_scale = 2.0
    return cfg


def _heldout_lowmag() -> SynthConfig:
    """Held-out: low-magnification, low-NA, sparse agglomerates of small opaque particles, noisy SEM."""
    cfg = SynthConfig(name="heldout_lowmag")
    cfg.size.mean_um = 12.0
    cfg.size.cv_percent = 35.0
    cfg.layout.mode = "clusters"
    cfg.layout.area_fraction = (0.15, 0.3)
    cfg.layout.cluster_size = 8.0
    cfg.om.pixel_size_um = 1.1
    cfg.om.na = 0.12
    cfg.om.wavelength_um = 0.6
    cfg.om.optical_density = 4.0
    cfg.om.focus = (-0.6, 0.6)
    cfg.om.background = 0.85
    cfg.om.illum_gradient = 0.25
    cfg.om.full_well = 1500.0
    cfg.sem.sem_scale = 3.0
    cfg.sem.dose = 30.0
    cfg.sem.streaks = 0.04
    cfg.sem.detector_azimuth_deg = 20.0
    return cfg


def _train() -> SynthConfig:
    """Domain randomisation for detectors that must work on real OM and SEM images.

    Every image draws its own magnification (mean diameter 8-120 px), size distribution, layout,
    optics, illumination, camera and SEM settings over wide ranges that cover the real images in
    docs/simulator.md (trackpy bright-field beads, eyepiece photos of polymer beads, AMPIS SEM powder).
    """
    cfg = SynthConfig(name="train", height=512, width=512)
    s = cfg.size
    s.distribution = ("lognormal", "lognormal", "normal", "bimodal")
    s.mean_um = (2.0, 150.0)
    s.cv_percent = (3.0, 35.0)
    s.mode2_ratio = (1.5, 3.0)
    s.mode2_cv_percent = (5.0, 20.0)
    s.mode2_fraction = (0.1, 0.5)
    s.mean_px = (8.0, 120.0)  # with om.samples_per_resolution: the physical size follows from the optics
    lay = cfg.layout
    lay.mode = ("sparse", "sparse", "dense", "dense", "clusters")  # near-empty fields teach "no particle" too
    lay.area_fraction = (0.2, 0.68)
    lay.sparse_area_fraction = (0.002, 0.25)
    lay.max_overlap = (0.0, 0.15)
    lay.cluster_size = (3.0, 40.0)
    lay.cluster_fraction = (0.4, 1.0)
    lay.z_jitter = (0.0, 0.4)
    lay.tilt = (0.0, 1.0)
    o = cfg.om
    o.illumination = ("transmitted", "transmitted", "reflected")
    o.samples_per_resolution = (1.0, 6.0)
    o.wavelength_um = (0.45, 0.65)
    o.na = (0.1, 0.95)
    o.condenser_fill = (0.3, 0.95)
    o.n_medium = (1.0, 1.52)
    o.n_particle = (1.4, 1.7)
    o.optical_density = (0.0, 5.0)
    o.focus = (-0.6, 0.8)
    o.reflect_albedo = (0.4, 0.95)
    o.reflect_exponent = (0.1, 1.5)
    o.specular = (0.0, 0.4)
    o.background = (0.05, 0.9)
    o.camera_blur_px = (0.0, 2.5)
    o.halo = (-0.1, 0.3)
    o.halo_px = (0.5, 6.0)
    o.glare = (0.0, 0.15)
    o.illum_gradient = (0.002, 0.35)  # log-uniform: Koehler illumination is often nearly even
    o.vignetting = (0.002, 0.4)
    o.field_stop = (0.6, 1.0)
    o.field_stop_prob = 0.3
    o.field_stop_softness = (0.03, 0.2)
    o.colour = (False, False, True)
    o.tint = (0.8, 0.9, 1.0)
    o.tint_jitter = (0.0, 0.3)
    o.gamma = (0.8, 2.2)
    o.full_well = (150.0, 20000.0)
    o.read_noise = (0.001, 0.02)
    o.jpeg_quality = (40, 95)
    o.jpeg_prob = 0.5
    m = cfg.sem
    m.sem_scale = 2.0
    m.substrate = (0.01, 0.3)
    m.substrate_texture = (0.0, 0.1)
    m.particle_level = (0.3, 0.7)
    m.edge_exponent = (0.15, 1.0)
    m.rim_rolloff = (0.0, 0.8)
    m.edge_gain = (0.0, 0.4)
    m.edge_px = (0.3, 4.0)
    m.detector_azimuth_deg = (-180.0, 180.0)
    m.detector_shading = (0.0, 0.45)
    m.shadow = (0.1, 0.8)
    m.shadow_radii = (0.1, 0.6)
    m.surface_texture = (0.0, 0.3)
    m.texture_cells = (3.0, 25.0)
    m.beam_blur_px = (0.0, 1.5)
    m.dose = (10.0, 5000.0)
    m.read_noise = (0.0, 0.03)
    m.line_jitter_px = (0.0, 0.8)
    m.streaks = (0.0, 0.05)
    m.charging = (0.0, 0.08)
    g = cfg.misregistration
    g.rotation_deg = (0.0, 8.0)
    g.scale = (0.0, 0.06)
    cfg.fiducials.count = (1, 4)
    cfg.fiducials.prob = 0.3  # markers are distractors for a detector: real images rarely have them
    return cfg


PRESETS: dict[str, typing.Callable[[], SynthConfig]] = {
    "primary": _primary,
    "secondary": _secondary,
    "tertiary": _tertiary,
    "heldout": _heldout,
    "heldout_eyepiece": _heldout_eyepiece,
    "heldout_lowmag": _heldout_lowmag,
    "train": _train,
}

# Presets that form the held-out test domain: no training configuration may use them.
HELDOUT_PRESETS: tuple[str, ...] = ("heldout", "heldout_eyepiece", "heldout_lowmag")


def check_not_heldout(name: str, purpose: str = "training") -> None:
    """Raise ConfigError if ``name`` is a held-out preset: they are a test domain only."""
    if name in HELDOUT_PRESETS or name.startswith("heldout"):
        raise ConfigError(f"synth preset {name!r} is held out for testing and must not be used for {purpose}")


def preset(name: str) -> SynthConfig:
    """A fresh copy of the named preset (see ``PRESETS``); raises ConfigError for an unknown name."""
    try:
        factory = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown synth preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
    return factory()


# ----------------------------------------------------------------------------------------------------
# Field kinds, validation, TOML
# ----------------------------------------------------------------------------------------------------

_KINDS = {FloatR: "float_r", IntR: "int_r", StrC: "str_c", BoolC: "bool_c", RGB: "rgb", str: "str", int: "int"}


def _field_kind(cls: type, name: str) -> str:
    hint = typing.get_type_hints(cls)[name]
    for typ, kind in _KINDS.items():
        if hint == typ:
            return kind
    raise TypeError(f"unsupported config field type {hint!r} for {cls.__name__}.{name}")  # a bug, not input


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _coerce(kind: str, value: Any, where: str) -> Any:
    """Check one TOML value against the field kind; return it in the dataclass's representation."""

    def bad(expect: str) -> ConfigError:
        return ConfigError(f"{where}: expected {expect}, got {value!r}")

    if kind in ("float_r", "int_r"):
        num_ok = _is_num if kind == "float_r" else (lambda v: isinstance(v, int) and not isinstance(v, bool))
        label = "a number" if kind == "float_r" else "an integer"
        if num_ok(value):
            return float(value) if kind == "float_r" else int(value)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(num_ok(v) for v in value):
            lo, hi = (float(v) if kind == "float_r" else int(v) for v in value)
            if lo > hi:
                raise ConfigError(f"{where}: range [{lo}, {hi}] has lo > hi")
            return (lo, hi)
        raise bad(f"{label} or a [lo, hi] range")
    if kind in ("str_c", "bool_c"):
        typ = str if kind == "str_c" else bool
        if isinstance(value, typ):
            return value
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, typ) for v in value):
            return tuple(value)
        raise bad(f"a {typ.__name__} or a non-empty list of choices")
    if kind == "rgb":
        if isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_num(v) for v in value):
            return tuple(float(v) for v in value)
        raise bad("[r, g, b] gains")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise bad("a string")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad("an integer")
    raise AssertionError(kind)


def apply_overrides(cfg: SynthConfig, data: dict[str, Any], source: str = "overrides") -> SynthConfig:
    """Apply a nested dict (as read from TOML) onto ``cfg`` in place; unknown keys raise ConfigError."""
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{key}] must be a table")
            section = getattr(cfg, key)
            names = {f.name for f in dataclasses.fields(section)}
            for sub, subval in value.items():
                if sub not in names:
                    raise ConfigError(f"{source}: unknown key {key}.{sub} (known: {', '.join(sorted(names))})")
                kind = _field_kind(type(section), sub)
                setattr(section, sub, _coerce(kind, subval, f"{source}: {key}.{sub}"))
        elif key in ("name", "height", "width"):
            setattr(cfg, key, _coerce(_field_kind(SynthConfig, key), value, f"{source}: {key}"))
        else:
            known = ["preset", "name", "height", "width", *SECTIONS]
            raise ConfigError(f"{source}: unknown key {key!r} (known: {', '.join(known)})")
    return cfg


def load_synth_config(path: str | Path, base: str | None = None) -> SynthConfig:
    """Read a TOML file: optional ``preset = "name"`` to start from, then overrides of any field.

    ``base`` is the preset used when the file names none (default: the plain :class:`SynthConfig`).
    Raises ConfigError for an unreadable file, an unknown preset, section or key, or an ill-typed value.
    """
    p = Path(path)
    data = read_toml(p, "synth config")
    named = data.pop("preset", None)
    if named is not None and not isinstance(named, str):
        raise ConfigError(f"{p}: preset must be a string")
    start = named or base
    cfg = preset(start) if start else SynthConfig()
    apply_overrides(cfg, data, source=str(p))
    validate(cfg, source=str(p))
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "nan"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def to_toml(cfg: SynthConfig, header: str = "") -> str:
    """Every field of ``cfg`` as TOML text that :func:`load_synth_config` reads back to an equal config."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()] if header else []
    lines += [f"name = {_toml_value(cfg.name)}", f"height = {cfg.height}", f"width = {cfg.width}"]
    for sec in SECTIONS:
        section = getattr(cfg, sec)
        lines += ["", f"[{sec}]"]
        for f in dataclasses.fields(section):
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}  # {f.metadata['doc']}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# Per-image draws and checks
# ----------------------------------------------------------------------------------------------------


def _draw(kind: str, value: Any, log: bool, rng: np.random.Generator) -> Any:
    if kind == "float_r" and isinstance(value, tuple):
        lo, hi = value
        if log and lo > 0:
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return float(rng.uniform(lo, hi))
    if kind == "int_r" and isinstance(value, tuple):
        return int(rng.integers(value[0], value[1] + 1))
    if kind in ("str_c", "bool_c") and isinstance(value, tuple):
        return value[int(rng.integers(len(value)))]
    return value


def resolve(cfg: SynthConfig, rng: np.random.Generator) -> SynthConfig:
    """A copy of ``cfg`` with every range and choice drawn: the concrete settings of one image."""
    out = copy.deepcopy(cfg)
    for sec in SECTIONS:
        section = getattr(out, sec)
        for f in dataclasses.fields(section):
            kind = _field_kind(type(section), f.name)
            setattr(section, f.name, _draw(kind, getattr(section, f.name), f.metadata["log"], rng))
    validate(out, source=f"preset {cfg.name!r}")
    return out


_CHOICES = {
    ("size", "distribution"): ("lognormal", "normal", "bimodal"),
    ("layout", "mode"): ("sparse", "dense", "clusters"),
    ("om", "illumination"): ("transmitted", "reflected"),
}

# (section, field): (lowest, highest) allowed value; None = unbounded.
_BOUNDS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("size", "mean_um"): (1e-3, None),
    ("size", "cv_percent"): (0.0, 60.0),
    ("size", "mode2_ratio"): (1.0, 10.0),
    ("size", "mode2_cv_percent"): (0.0, 60.0),
    ("size", "mode2_fraction"): (0.0, 1.0),
    ("size", "mean_px"): (0.0, None),
    ("size", "min_diameter_px"): (1.0, None),
    ("layout", "area_fraction"): (0.0, 0.7),
    ("layout", "sparse_area_fraction"): (1e-4, 0.4),
    ("om", "camera_blur_px"): (0.0, None),
    ("layout", "max_overlap"): (0.0, 0.5),
    ("layout", "cluster_size"): (1.0, None),
    ("layout", "cluster_fraction"): (0.0, 1.0),
    ("layout", "relax_iterations"): (0, 10000),
    ("layout", "z_jitter"): (0.0, None),
    ("layout", "tilt"): (0.0, None),
    ("om", "pixel_size_um"): (1e-4, None),
    ("om", "wavelength_um"): (0.2, 2.0),
    ("om", "na"): (0.01, 1.6),
    ("om", "condenser_fill"): (0.0, 1.0),
    ("om", "n_medium"): (1.0, 2.0),
    ("om", "n_particle"): (1.0, 3.0),
    ("om", "optical_density"): (0.0, None),
    ("om", "background"): (0.0, 1.0),
    ("om", "halo_px"): (0.0, None),
    ("om", "samples_per_resolution"): (0.0, 20.0),
    ("om", "glare"): (0.0, 1.0),
    ("om", "illum_gradient"): (0.0, 1.0),
    ("om", "vignetting"): (0.0, 1.0),
    ("om", "field_stop"): (0.0, None),
    ("om", "field_stop_prob"): (0.0, 1.0),
    ("om", "field_stop_softness"): (0.0, 1.0),
    ("om", "gamma"): (0.1, 5.0),
    ("om", "full_well"): (1.0, None),
    ("om", "read_noise"): (0.0, 1.0),
    ("om", "jpeg_quality"): (0, 100),
    ("om", "jpeg_prob"): (0.0, 1.0),
    ("sem", "sem_scale"): (1.0, 8.0),
    ("sem", "dose"): (0.5, None),
    ("sem", "rim_rolloff"): (0.0, 1.0),
    ("sem", "edge_px"): (1e-3, None),
    ("sem", "shadow_radii"): (1e-3, None),
    ("sem", "texture_cells"): (0.5, None),
    ("sem", "beam_blur_px"): (0.0, None),
    ("sem", "line_jitter_px"): (0.0, None),
    ("misregistration", "rotation_deg"): (0.0, 15.0),
    ("misregistration", "scale"): (0.0, 0.3),
    ("misregistration", "shear"): (0.0, 0.2),
    ("misregistration", "translation"): (0.0, 0.3),
    ("fiducials", "count"): (0, 8),
    ("fiducials", "prob"): (0.0, 1.0),
    ("fiducials", "arm_um"): (0.0, None),
    ("fiducials", "width_um"): (0.0, None),
    ("fiducials", "inset"): (0.0, 0.5),
    ("fiducials", "om_transmission"): (0.0, 1.0),
    ("fiducials", "sem_level"): (0.0, 1.0),
}


def validate(cfg: SynthConfig, source: str = "config") -> None:
    """Check values (and every end of every range) against physical bounds; raise ConfigError."""
    if cfg.height < 32 or cfg.width < 32:
        raise ConfigError(f"{source}: height and width must be >= 32 px, got {cfg.height}x{cfg.width}")
    for (sec, name), allowed in _CHOICES.items():
        value = getattr(getattr(cfg, sec), name)
        for v in value if isinstance(value, tuple) else (value,):
            if v not in allowed:
                raise ConfigError(f"{source}: {sec}.{name} = {v!r}; choose one of: {', '.join(allowed)}")
    for (sec, name), (lo, hi) in _BOUNDS.items():
        value = getattr(getattr(cfg, sec), name)
        for v in value if isinstance(value, tuple) else (value,):
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                rng_txt = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
                raise ConfigError(f"{source}: {sec}.{name} = {v} is outside {rng_txt}")
    if any(v <= 0 for v in cfg.om.tint):
        raise ConfigError(f"{source}: om.tint gains must be > 0, got {cfg.om.tint}")


def parameter_table() -> str:
    """Markdown table of every config field: section, name, default, unit, meaning."""
    base = SynthConfig()
    rows = ["| parameter | default | unit | meaning |", "| --- | --- | --- | --- |"]
    rows.append("| `height`, `width` | 1024, 1536 | OM px | size of the OM image (SEM: times sem_scale) |")
    for sec in SECTIONS:
        section = getattr(base, sec)
        for f in dataclasses.fields(section):
            default = _toml_value(getattr(section, f.name))
            log = " (ranges log-uniform)" if f.metadata["log"] else ""
            rows.append(f"| `{sec}.{f.name}` | {default} | {f.metadata['unit']} | {f.metadata['doc']}{log} |")
    return "\n".join(rows)


def preset_toml(name: str) -> str:
    """The text of ``configs/synth/<name>.toml``: every field of the preset, with its doc as comment."""
    cfg = preset(name)
    doc = " ".join((PRESETS[name].__doc__ or "").split())
    held = (
        "\nHELD OUT: a test domain only - no training configuration may use this preset (docs/simulator.md)."
        if name in HELDOUT_PRESETS
        else ""
    )
    header = (
        f"srpsa synth preset '{name}': every field, as defined in src/srpsa/synth/config.py (a test keeps them equal).\n"
        f"{doc}{held}\n"
        "A number may be a [lo, hi] range and a string/bool a list of choices: drawn per image.\n"
        f'Use as a template: copy, set `preset = "{name}"` and keep only the keys you change.'
    )
    return to_toml(cfg, header)


def write_preset_files(outdir: str | Path = "configs/synth") -> list[Path]:
    """(Re)write ``configs/synth/<name>.toml`` for every preset; returns the paths."""
    from srpsa.io.atomic import atomic_write_text

    paths = []
    for name in PRESETS:
        path = Path(outdir) / f"{name}.toml"
        atomic_write_text(path, preset_toml(name))
        paths.append(path)
    return paths
