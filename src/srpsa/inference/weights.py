"""Where model weights live and how they are identified.

Default weights ship inside the package (``srpsa/weights/<name>/``) because nothing may be downloaded at
run time. ``--weights DIR`` or the ``SRPSA_WEIGHTS_DIR`` environment variable point at a user's own set
with the same sub-folder names. An unknown or missing model is an error, never a silent fallback.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from srpsa.errors import InputError

PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"

# Model sub-folder names, one per pipeline stage.
DETECTOR_SEM = "detector-sem"
DETECTOR_OM = "detector-om"
TRANSLATOR = "translate"
SUPERRES = "superres"


def weights_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The weights folder: explicit override > $SRPSA_WEIGHTS_DIR > the weights shipped in the package."""
    if override:
        return Path(override)
    env = os.environ.get("SRPSA_WEIGHTS_DIR")
    return Path(env) if env else PACKAGE_WEIGHTS


def model_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Folder of one model, checked to exist and to hold safetensors weights."""
    folder = weights_root(root) / name
    if not folder.is_dir() or not any(folder.glob("*.safetensors")):
        raise InputError(f"model '{name}' not found: no *.safetensors in {folder}")
    return folder


def weights_hash(folder: Path) -> str:
    """sha256 over the folder's safetensors files (sorted by name), for provenance in outputs."""
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        digest.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
