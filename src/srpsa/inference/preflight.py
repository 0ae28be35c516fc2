"""Checks `srpsa analyze` makes once, before any image is read: output folder, scheduler, models.

Each failure is an :class:`~srpsa.errors.InputError` naming the flag, so the CLI reports bad usage in
one line with exit status 2 instead of failing every image, or failing after the whole analysis.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from srpsa.errors import InputError

if TYPE_CHECKING:
    from srpsa.inference.pipeline import AnalyzeSettings

# host:port, a URL (tcp://, tls://, ucx://, inproc://) or a scheduler file path is left to Dask; a bare
# word (a typo such as "bogus" or "loacl") is refused.
_ADDRESS = re.compile(r"^([a-z]+://\S+|\[?[\w.\-:]+\]?:\d+|\S+\.json)$")


def check_out_folder(out: Path) -> None:
    """Create ``out`` (and parents) and prove a file can be written and removed in it."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".srpsa-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from exc


def check_scheduler(scheduler: str | None) -> None:
    if scheduler is None or scheduler == "local":
        return
    if not _ADDRESS.match(scheduler):
        raise InputError(f"--scheduler must be 'local' or a Dask scheduler address such as tcp://host:8786, got '{scheduler}'")


def _check_safetensors(name: str, path: Path) -> None:
    from safetensors import safe_open

    from srpsa.io.provenance import file_sha256

    meta = path.with_suffix(".json")
    if meta.is_file():
        try:
            expected = json.loads(meta.read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError) as exc:
            raise InputError(f"--weights: model '{name}': {meta} is not valid JSON ({exc})") from None
        if expected and file_sha256(path) != expected:
            raise InputError(f"--weights: model '{name}': {path} does not match the sha256 in {meta.name} (corrupt or replaced)")
    try:  # parses the header and checks that the tensors it declares fit in the file
        with safe_open(str(path), framework="pt") as fh:
            list(fh.keys())
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for torn files
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"--weights: model '{name}': {path} is not a readable safetensors file ({first})") from None


def check_models(settings: AnalyzeSettings) -> dict[str, str]:
    """Every model the settings need exists and is readable; returns name -> sha256 of its weights."""
    from srpsa.inference import weights as W
    from srpsa.inference.analyzer import models_for

    hashes = {}
    for name in models_for(settings):
        try:
            folder = W.model_dir(name, settings.weights)
        except InputError as exc:
            raise InputError(f"--weights: {exc}") from None
        for path in sorted(folder.glob("*.safetensors")):
            _check_safetensors(name, path)
        hashes[name] = W.weights_hash(folder)
    return hashes
