"""Sample metadata for QC reports: ``srpsa analyze --meta sample.toml``.

A small TOML file with any of the keys ``sample``, ``lot``, ``operator``, ``instrument``, ``objective``
and ``notes`` (strings; numbers are kept as their text). It goes unchanged into every summary.json
(``meta``) and the report header. Unknown keys are refused rather than dropped, so a typo (``oprator``)
does not silently lose a field.
"""

from __future__ import annotations

from pathlib import Path

from srpsa.config import read_toml
from srpsa.errors import ConfigError, InputError

META_KEYS = ("sample", "lot", "operator", "instrument", "objective", "notes")
_MAX_LEN = 2000


def read_meta(path: str | Path, flag: str = "--meta") -> dict[str, str]:
    """The metadata of a TOML file, keys in :data:`META_KEYS` order; one-line InputError naming ``flag``."""
    path = Path(path)
    try:
        data = read_toml(path, what=flag)  # the project's one TOML reader; its one-line messages name the flag
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    unknown = [k for k in data if k not in META_KEYS]
    if unknown:
        raise InputError(f"{flag}: unknown key(s) {', '.join(unknown)} in {path}; allowed: {', '.join(META_KEYS)}")
    out = {}
    for key in META_KEYS:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, (dict, list)):
            raise InputError(f"{flag}: '{key}' in {path} must be a single value (text), got a {type(value).__name__}")
        text = str(value).strip()
        if len(text) > _MAX_LEN:
            raise InputError(f"{flag}: '{key}' in {path} is longer than {_MAX_LEN} characters")
        out[key] = text
    return out
