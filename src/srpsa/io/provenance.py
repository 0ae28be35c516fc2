"""Helpers for the metadata written beside results and weights: file digests and strict JSON."""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_safe(obj: Any) -> Any:
    """NaN/inf (a radius error with no matches, the PSNR of identical images) become null, recursively:
    strict JSON that any reader accepts."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
