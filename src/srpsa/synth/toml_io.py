"""Synth configs as TOML: typed overrides onto a :class:`SynthConfig`, and every field written back as text.

Each TOML value is checked against its field's kind (a number or a ``[lo, hi]`` range, a string/bool or a
list of choices, RGB gains...) and unknown sections or keys are errors, so a typo never passes silently.
:func:`to_toml` writes every field with its doc as a comment; :func:`load_synth_config` reads it back to an
equal config. :func:`parameter_table` renders the fields as the table in ``docs/simulator.md``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from srpsa.errors import ConfigError
from srpsa.synth.schema import RGB, SECTIONS, BoolC, FloatR, IntR, StrC, SynthConfig

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
