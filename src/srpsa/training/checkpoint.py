"""Training checkpoints (resume) of the detector and of the GANs; release weights live in :mod:`srpsa.models`.

A checkpoint folder (``RUNDIR/checkpoint/``) holds ``step_<step>/`` folders, kept apart from the release
weights, and ``latest.json`` naming the newest complete one. A step folder holds:

- ``<network>.safetensors``: ``model`` for the detector, ``generator`` and ``discriminator`` for a GAN;
- ``optimizer.pt``: optimiser state(s), torch RNG states and the step, written with ``torch.save`` and read
  back with ``torch.load(weights_only=True)`` (tensors and plain containers only, never arbitrary pickles);
- ``state.json``: step, epoch, best score, numpy RNG state, config, evaluation history...

All writes are atomic (:mod:`srpsa.io.atomic`) and ``latest.json`` is written last, so an interrupted save
never leaves a torn checkpoint in charge; only the newest ``keep`` step folders stay.
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

# -- shared by both checkpoint kinds -------------------------------------------------------------


def _rng_states() -> dict[str, Any]:
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _finish(folder: Path, sub: Path, step: int, keep: int) -> None:
    """Point ``latest.json`` at the complete step folder ``sub``, then drop all but the newest ``keep``."""
    atomic_write_text(folder / "latest.json", json.dumps({"step": step, "dir": sub.name}) + "\n")
    for old in sorted(folder.glob("step_*"))[:-keep] if keep > 0 else []:
        if old.name != sub.name:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()


def _check_step(sub: Path, blob: dict[str, Any], state: dict[str, Any]) -> None:
    if int(blob.get("step", -1)) != int(state["step"]):
        raise InputError(f"checkpoint {sub} is inconsistent: optimizer.pt step {blob.get('step')} != state.json step {state['step']}")


# -- detector checkpoints ------------------------------------------------------------------------


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
    with atomic_path(sub / "optimizer.pt") as tmp:
        torch.save({"optimizer": optimizer.state_dict(), "rng": _rng_states(), "step": step}, tmp)
    atomic_write_text(sub / "state.json", json.dumps(json_safe(state), indent=2, sort_keys=True, allow_nan=False) + "\n")
    _finish(folder, sub, step, keep)
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
    _check_step(sub, blob, state)
    if optimizer is not None:
        optimizer.load_state_dict(blob["optimizer"])
    if restore_rng:
        _restore_rng(blob["rng"])
    return state


# -- GAN checkpoints -----------------------------------------------------------------------------


def save_gan_checkpoint(
    folder: str | Path,
    step: int,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    state: dict[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``folder/step_<step>/`` and point ``folder/latest.json`` at it; keep the newest ``keep``.

    The step folder holds ``generator.safetensors``, ``discriminator.safetensors``, ``optimizer.pt``
    (both Adam states, torch RNG states and the step) and ``state.json`` (JSON-serialisable ``state``).
    """
    folder = Path(folder)
    sub = folder / f"step_{step:09d}"
    sub.mkdir(parents=True, exist_ok=True)
    for name, model in (("generator", generator), ("discriminator", discriminator)):
        with atomic_path(sub / f"{name}.safetensors") as tmp:
            # cloned: a GAN's state dict may hold views of one storage, which safetensors refuses
            save_file({k: v.clone() for k, v in cpu_state(model).items()}, str(tmp))
    with atomic_path(sub / "optimizer.pt") as tmp:
        torch.save({"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": _rng_states(), "step": step}, tmp)
    atomic_write_text(sub / "state.json", json.dumps({**state, "step": step}, indent=2, sort_keys=True) + "\n")
    _finish(folder, sub, step, keep)
    return sub


def load_gan_checkpoint(
    folder: str | Path,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
) -> dict[str, Any]:
    """Restore the checkpoint ``folder/latest.json`` names into the given objects; returns its state."""
    folder = Path(folder)
    latest = folder / "latest.json"
    if not latest.is_file():
        raise InputError(f"--resume: no checkpoint in {folder} (latest.json missing)")
    try:
        sub = folder / json.loads(latest.read_text(encoding="utf-8"))["dir"]
        state = json.loads((sub / "state.json").read_text(encoding="utf-8"))
        device = next(generator.parameters()).device
        generator.load_state_dict(load_file(str(sub / "generator.safetensors"), device=str(device)))
        discriminator.load_state_dict(load_file(str(sub / "discriminator.safetensors"), device=str(device)))
        blob = torch.load(sub / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load's message spans many lines of (unsafe) advice: name the type only
        raise InputError(f"--resume: checkpoint in {folder} is unreadable or does not fit the config ({type(exc).__name__})") from None
    _check_step(sub, blob, state)
    opt_g.load_state_dict(blob["opt_g"])
    opt_d.load_state_dict(blob["opt_d"])
    _restore_rng(blob["rng"])
    return state
