"""Detector release weights, a folder with two files (beside the GAN release code, models/release.py):

- ``detector.safetensors``: the network's state dict (float32, CPU tensors);
- ``detector.json``: ``format``, ``srpsa_version``, ``model_args`` (rebuilds the network alone),
  ``config`` (the full :class:`DetectorConfig`), ``thresholds`` (``p_thresh``, ``nms_thresh`` tuned on
  validation data), ``metrics``, ``sha256`` of the safetensors file, and free-form ``provenance``.

Written by training, read by inference; both writes are atomic (:mod:`srpsa.io.atomic`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from srpsa import __version__
from srpsa.errors import InputError
from srpsa.io.atomic import atomic_path, atomic_write_text
from srpsa.io.provenance import file_sha256, json_safe
from srpsa.models.detector import SRPSADetector
from srpsa.models.detector_config import DetectorConfig, config_from_dict, config_to_dict


WEIGHTS_FILE = "detector.safetensors"
META_FILE = "detector.json"
FORMAT = "srpsa-detector/1"


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors (what safetensors stores)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_weights(
    folder: str | Path,
    model: SRPSADetector,
    cfg: DetectorConfig,
    *,
    thresholds: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write release weights (safetensors + JSON) into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wpath = folder / WEIGHTS_FILE
    with atomic_path(wpath) as tmp:
        save_file(cpu_state(model), str(tmp), metadata={"format": FORMAT})
    meta = {
        "format": FORMAT,
        "srpsa_version": __version__,
        "model_args": model.model_args(),
        "config": config_to_dict(cfg),
        "thresholds": thresholds or {"p_thresh": cfg.inference.p_thresh, "nms_thresh": cfg.inference.nms_thresh},
        "metrics": metrics or {},
        "provenance": provenance or {},
        "sha256": file_sha256(wpath),
    }
    atomic_write_text(folder / META_FILE, json.dumps(json_safe(meta), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The JSON beside the weights; InputError if missing or not a detector's."""
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file():
        raise InputError(f"detector weights: {path} not found")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"detector weights: cannot read {path}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"detector weights: {path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_weights(folder: str | Path) -> tuple[SRPSADetector, DetectorConfig, dict[str, Any]]:
    """Rebuild the network from ``model_args`` and load the safetensors weights.

    Returns
    -------
    model : SRPSADetector (eval mode, CPU)
    cfg : DetectorConfig
    meta : dict
        The JSON (``thresholds``, ``metrics``, ...).
    """
    folder = Path(folder)
    meta = read_meta(folder)
    wpath = folder / WEIGHTS_FILE
    if not wpath.is_file():
        raise InputError(f"detector weights: {wpath} not found")
    if meta.get("sha256") and file_sha256(wpath) != meta["sha256"]:
        raise InputError(f"detector weights: {wpath} does not match the sha256 in {META_FILE} (corrupt or replaced)")
    cfg = config_from_dict(meta["config"])
    model = SRPSADetector.from_model_args(meta["model_args"])
    try:
        model.load_state_dict(load_file(str(wpath)))
    except Exception as exc:  # RuntimeError (shapes) or safetensors' own error types (torn files)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"detector weights: {wpath} cannot be loaded into model_args ({type(exc).__name__}: {first})") from None
    return model.eval(), cfg, meta
