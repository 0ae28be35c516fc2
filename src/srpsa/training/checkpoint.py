"""Detector weights (release) and training checkpoints (resume).

Release weights, a folder with two files:

- ``detector.safetensors``: the network's state dict (float32, CPU tensors);
- ``detector.json``: ``format``, ``srpsa_version``, ``model_args`` (rebuilds the network alone),
  ``config`` (the full :class:`DetectorConfig`), ``thresholds`` (``p_thresh``, ``nms_thresh`` tuned on
  validation data), ``metrics``, ``sha256`` of the safetensors file, and free-form ``provenance``.

Training checkpoint (``RUNDIR/checkpoint/step_<step>/``), kept apart from the release weights:

- ``model.safetensors``: current network;
- ``optimizer.pt``: optimiser state and torch RNG states, written with ``torch.save`` and read back with
  ``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary pickles);
- ``state.json``: step, epoch, best score, numpy RNG state, config;

and ``RUNDIR/checkpoint/latest.json`` naming the newest complete one. All writes are atomic
(:mod:`srpsa.io.atomic`), so an interrupted save never leaves a torn checkpoint.
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
from srpsa.training.detector_config import DetectorConfig, config_from_dict, config_to_dict

WEIGHTS_FILE = "detector.safetensors"
META_FILE = "detector.json"
FORMAT = "srpsa-detector/1"


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
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
        save_file(_cpu_state(model), str(tmp), metadata={"format": FORMAT})
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


# -- training checkpoints ------------------------------------------------------------------------


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write a resumable checkpoint into ``folder/step_<step>/`` and point ``folder/latest.json`` at it.

    The step folder holds ``model.safetensors``, ``optimizer.pt`` (optimiser state + torch RNG states)
    and ``state.json`` (``state`` must be JSON-serialisable: step, epoch, best score, numpy RNG state,
    config...). ``latest.json`` is replaced atomically only after the step folder is complete, so a
    crash mid-save leaves the previous checkpoint in charge. Only the newest ``keep`` step folders stay.
    """
    folder = Path(folder)
    step = int(state["step"])
    sub = folder / f"step_{step:09d}"
    sub.mkdir(parents=True, exist_ok=True)
    with atomic_path(sub / "model.safetensors") as tmp:
        save_file(_cpu_state(model), str(tmp))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    with atomic_path(sub / "optimizer.pt") as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "rng": rng, "step": step}, tmp)
    atomic_write_text(sub / "state.json", json.dumps(json_safe(state), indent=2, sort_keys=True, allow_nan=False) + "\n")
    atomic_write_text(folder / "latest.json", json.dumps({"step": step, "dir": sub.name}) + "\n")
    for old in sorted(folder.glob("step_*"))[:-keep] if keep > 0 else []:
        if old.name != sub.name:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    return sub


def has_checkpoint(folder: str | Path) -> bool:
    """True when ``folder`` holds a complete checkpoint."""
    return (Path(folder) / "latest.json").is_file()


def load_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore the checkpoint ``folder/latest.json`` points at; returns its state dict."""
    folder = Path(folder)
    latest = folder / "latest.json"
    if not latest.is_file():
        raise InputError(f"no checkpoint to resume in {folder} (latest.json missing)")
    sub = folder / json.loads(latest.read_text(encoding="utf-8"))["dir"]
    state = json.loads((sub / "state.json").read_text(encoding="utf-8"))
    device = next(model.parameters()).device
    try:
        model.load_state_dict(load_file(str(sub / "model.safetensors"), device=str(device)))
        blob = torch.load(sub / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own message spans many lines of (unsafe) advice: name the type only
        raise InputError(f"--resume: checkpoint {sub} is unreadable or does not fit the model ({type(exc).__name__})") from None
    if int(blob.get("step", -1)) != int(state["step"]):
        raise InputError(f"checkpoint {sub} is inconsistent: optimizer.pt step {blob.get('step')} != state.json step {state['step']}")
    if optimizer is not None:
        optimizer.load_state_dict(blob["optimizer"])
    if restore_rng:
        torch.set_rng_state(blob["rng"]["torch"])
        if "cuda" in blob["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(blob["rng"]["cuda"])
    return state
