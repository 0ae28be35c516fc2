"""What a weights folder written by ``srpsa finetune`` says about itself (its ``finetune.json`` manifest).

A fine-tuned weights folder is a complete weights root (``detector-om/``, ``detector-sem/``,
``translate/``, ``superres/``): the adapted detector plus copies of the models it did not touch, every
one listed with its sha256 in ``finetune.json``. The manifest also names the pipeline the adapted
detector belongs to: an OM fine-tune adapts ``detector-om``, which measures only in ``--pipeline
detect-only`` (the full pipeline measures with ``detector-sem`` on translated images), so ``srpsa
analyze --weights DIR`` takes that pipeline when ``--pipeline`` is not given (docs/decisions.md).

Kept to reading only (the writing side is :mod:`srpsa.training.finetune_output`), so analysis does not
import training code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from srpsa.errors import InputError

MANIFEST = "finetune.json"
FORMAT = "srpsa-finetune/1"


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a fine-tuned weights root, or None when ``root`` has none (e.g. shipped weights)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"--weights: cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"--weights: {path} is not a {FORMAT} manifest")
    return manifest


def preferred_pipeline(root: str | os.PathLike[str]) -> str | None:
    """The OM pipeline a fine-tuned weights root is meant for ("detect-only"), or None (no preference)."""
    manifest = read_manifest(root)
    return None if manifest is None else manifest.get("pipeline")


def pipeline_note(root: str | os.PathLike[str], modality: str, pipeline: str) -> str | None:
    """A warning when an analysis would not use the detector that ``root``'s fine-tune adapted."""
    manifest = read_manifest(root)
    if manifest is None or manifest.get("kept") != "finetuned":
        return None
    adapted = manifest.get("adapted")
    uses_om = modality == "om" and pipeline == "detect-only"
    if adapted == "detector-om" and not uses_om:
        return (f"weights {root}: its fine-tuned detector-om was chosen for --pipeline detect-only; this {modality} "
                f"analysis ({pipeline}) measures with the unchanged detector-sem")
    if adapted == "detector-sem" and modality != "sem":
        return f"weights {root}: its fine-tuned detector-sem was adapted to SEM images (--modality sem); this OM analysis does not use it as such"
    return None
