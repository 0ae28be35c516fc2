"""The named simulator presets, read from their TOML files: the files are the single source of each preset.

``src/srpsa/synth/preset_files/<name>.toml`` lists every field of preset ``name`` (installed with the
package, so the presets work from a wheel too); the second header line of a file is the preset's one-line
description. A file is parsed and validated once, on first use, and :func:`preset` hands out fresh copies.
After a field is added to :mod:`srpsa.synth.schema`, :func:`write_preset_files` rewrites the files in their
canonical form (every field, its doc as comment) with the new field at its default.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from pathlib import Path

from srpsa.config import read_toml
from srpsa.errors import ConfigError
from srpsa.synth.checks import validate
from srpsa.synth.schema import SynthConfig
from srpsa.synth.toml_io import apply_overrides, to_toml

__all__ = [
    "HELDOUT_PRESETS",
    "PRESETS",
    "PRESET_DIR",
    "check_not_heldout",
    "load_synth_config",
    "preset",
    "preset_description",
    "preset_toml",
    "write_preset_files",
]

PRESET_DIR = Path(__file__).with_name("preset_files")

# Presets that form the held-out test domain: no training configuration may use them.
HELDOUT_PRESETS: tuple[str, ...] = ("heldout", "heldout_eyepiece", "heldout_lowmag")

# The paper's three datasets first, then the held-out domains, then the rest (the order of --help lists).
_FIRST = ("primary", "secondary", "tertiary", *HELDOUT_PRESETS)


def _names() -> list[str]:
    found = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    return [n for n in _FIRST if n in found] + [n for n in found if n not in _FIRST]


@functools.lru_cache(maxsize=None)
def _parsed(name: str) -> SynthConfig:
    return load_synth_config(PRESET_DIR / f"{name}.toml")


def _factory(name: str) -> Callable[[], SynthConfig]:
    def make() -> SynthConfig:
        return copy.deepcopy(_parsed(name))

    make.__name__ = f"preset_{name}"
    return make


#: name -> zero-argument function returning a fresh copy of that preset, one entry per preset file.
PRESETS: Mapping[str, Callable[[], SynthConfig]] = {name: _factory(name) for name in _names()}


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


def preset_description(name: str) -> str:
    """The one-line description of a preset: the second header line of its file."""
    preset(name)  # unknown names fail here
    lines = (PRESET_DIR / f"{name}.toml").read_text(encoding="utf-8").splitlines()
    return lines[1].removeprefix("#").strip() if len(lines) > 1 and lines[1].startswith("#") else ""


def preset_toml(name: str) -> str:
    """The canonical text of ``preset_files/<name>.toml``: every field of the preset, its doc as comment."""
    held = (
        "\nHELD OUT: a test domain only - no training configuration may use this preset (docs/simulator.md)."
        if name in HELDOUT_PRESETS
        else ""
    )
    header = (
        f"srpsa synth preset '{name}': every field; this file is the preset's single source (srpsa.synth.presets).\n"
        f"{preset_description(name)}{held}\n"
        "A number may be a [lo, hi] range and a string/bool a list of choices: drawn per image.\n"
        f'Use as a template: copy, set `preset = "{name}"` and keep only the keys you change.'
    )
    return to_toml(preset(name), header)


def write_preset_files(outdir: str | Path = PRESET_DIR) -> list[Path]:
    """(Re)write ``<outdir>/<name>.toml`` in canonical form for every preset; returns the paths."""
    from srpsa.io.atomic import atomic_write_text

    texts = {name: preset_toml(name) for name in PRESETS}  # read every file before writing any
    paths = []
    for name, text in texts.items():
        path = Path(outdir) / f"{name}.toml"
        atomic_write_text(path, text)
        paths.append(path)
    return paths
