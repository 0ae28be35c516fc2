"""Per-image draws of a synth config's ranges and choices, and the physical bounds every value must keep."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np

from srpsa.errors import ConfigError
from srpsa.synth.schema import SECTIONS, SynthConfig
from srpsa.synth.toml_io import _field_kind

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
