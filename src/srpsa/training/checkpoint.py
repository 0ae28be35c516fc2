"""Detector training checkpoints (resume); the release weights are in :mod:`srpsa.models.detector_release`.

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

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_path, atomic_write_text
from srpsa.io.provenance import json_safe
from srpsa.models.detector_release import cpu_state

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
        save_file(cpu_state(model), str(tmp))
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
