"""Typed configuration of the paired OM/SEM simulator, its presets and TOML overrides (one import for all).

A :class:`SynthConfig` has one section per stage of the simulation: particle ``size`` distribution,
``layout`` on the slide, optical microscope ``om``, electron microscope ``sem``, the OM->SEM
``misregistration`` and the ``fiducials``. Every numeric field may hold either one value or a
``[lo, hi]`` range, and every text/boolean field either one value or a list of choices: ranges and
choices are drawn **per image** by :func:`resolve` (uniformly, or log-uniformly for fields marked
``log``). That one mechanism gives both the fixed-optics presets that mirror the paper's datasets and
the domain-randomised ``train`` preset.

Each field carries a one-line ``doc`` in its metadata; :func:`parameter_table` renders them as the
markdown table in ``docs/simulator.md`` so that the docs cannot drift from the code.

The pieces live in modules with one job each, re-exported here:
:mod:`~srpsa.synth.schema` (the dataclasses), :mod:`~srpsa.synth.toml_io` (TOML overrides and text),
:mod:`~srpsa.synth.checks` (per-image draws and bounds) and :mod:`~srpsa.synth.presets` (the named
presets, read from ``src/srpsa/synth/preset_files/*.toml``, their single source).
"""

from __future__ import annotations

from srpsa.synth.checks import resolve, validate
from srpsa.synth.presets import (
    HELDOUT_PRESETS,
    PRESET_DIR,
    PRESETS,
    check_not_heldout,
    load_synth_config,
    preset,
    preset_description,
    preset_toml,
    write_preset_files,
)
from srpsa.synth.schema import (
    RGB,
    SECTIONS,
    BoolC,
    FiducialConfig,
    FloatR,
    IntR,
    LayoutConfig,
    MisregistrationConfig,
    OMConfig,
    SEMConfig,
    SizeConfig,
    StrC,
    SynthConfig,
)
from srpsa.synth.toml_io import apply_overrides, parameter_table, to_toml

__all__ = [
    "BoolC",
    "FiducialConfig",
    "FloatR",
    "HELDOUT_PRESETS",
    "IntR",
    "LayoutConfig",
    "MisregistrationConfig",
    "OMConfig",
    "PRESETS",
    "PRESET_DIR",
    "RGB",
    "SECTIONS",
    "SEMConfig",
    "SizeConfig",
    "StrC",
    "SynthConfig",
    "apply_overrides",
    "check_not_heldout",
    "load_synth_config",
    "parameter_table",
    "preset",
    "preset_description",
    "preset_toml",
    "resolve",
    "to_toml",
    "validate",
    "write_preset_files",
]
