"""Typed configuration loading shared by every config family (synth presets excepted: they also accept
per-image random ranges): nested dicts, e.g. parsed TOML, -> dataclasses, rejecting unknown keys and
ill-typed values with a :class:`ConfigError` that names the key."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from srpsa.errors import ConfigError


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (str form resolved), converting lists to tuples."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {type(value).__name__}")
        return dataclass_from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        elem_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(elem_types) != len(value):
            raise ConfigError(f"{where} must have {len(elem_types)} entries, got {len(value)}")
        return tuple(_coerce(v, t, f"{where}[{i}]") for i, (v, t) in enumerate(zip(value, elem_types)))
    if origin in (typing.Union, types.UnionType):
        for t in typing.get_args(tp):
            try:
                return _coerce(value, t, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: value {value!r} has the wrong type")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where} must be empty")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def dataclass_from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; missing keys keep their defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__} must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
    base = cls()
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return dataclasses.replace(base, **kwargs)


def read_toml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed file is a one-line :class:`ConfigError`."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not valid TOML: {exc}") from None
