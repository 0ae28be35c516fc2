"""Release weights of the two GAN generators: what inference loads, nothing from training needed.

A release is a folder with two files:

- ``generator.safetensors``: the generator's state dict, float32 on the CPU, saved in eval mode *after*
  :func:`srpsa.models.gan_layers.strip_spectral_norm`, so the keys are plain ``weight`` tensors
  (``W / sigma``) and no power-iteration vectors remain;
- ``generator.json``: ``format`` (``"srpsa-gan/1"``), ``task`` (``"translate"`` or ``"superres"``),
  ``model_class`` (``"Pix2PixGenerator"`` or ``"RRDBNet"``), ``model_args`` (the constructor arguments
  with ``spectral_norm = false``: they rebuild the stripped network alone), the training ``config``,
  ``metrics``, free-form ``provenance``, the ``sha256`` of the safetensors file and ``srpsa_version``.

The discriminator is not released: it is only needed to continue training, which the training
checkpoints (``RUN/checkpoint``) are for. Both files are written atomically, the JSON last, so a reader
never pairs a new JSON with old weights (a torn pair would also fail the sha256 check).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from srpsa import __version__
from srpsa.errors import InputError
from srpsa.io.atomic import atomic_path, atomic_write_text
from srpsa.io.provenance import file_sha256, json_safe
from srpsa.models.esrgan import RRDBNet
from srpsa.models.gan_layers import strip_spectral_norm
from srpsa.models.pix2pix import Pix2PixGenerator

__all__ = ["FORMAT", "META_FILE", "MODEL_CLASSES", "WEIGHTS_FILE", "load_generator_release", "save_generator_release"]

FORMAT = "srpsa-gan/1"
WEIGHTS_FILE = "generator.safetensors"
META_FILE = "generator.json"
#: task -> (model_class name, class)
MODEL_CLASSES: dict[str, tuple[str, type[torch.nn.Module]]] = {
    "translate": ("Pix2PixGenerator", Pix2PixGenerator),
    "superres": ("RRDBNet", RRDBNet),
}


def save_generator_release(
    folder: str | Path,
    generator: torch.nn.Module,
    *,
    task: str,
    config_dict: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``generator.safetensors`` + ``generator.json`` (layout in the module docstring) into ``folder``.

    ``generator`` (possibly wrapped in ``DistributedDataParallel``, on any device, with spectral norm) is
    left untouched: a float32 CPU copy is stripped and saved. Returns the folder.
    """
    if task not in MODEL_CLASSES:
        raise ValueError(f"task must be one of {tuple(MODEL_CLASSES)}, got {task!r}")
    class_name, cls = MODEL_CLASSES[task]
    net = getattr(generator, "module", generator)  # unwrap DDP
    if not isinstance(net, cls):
        raise TypeError(f"a {task} release needs a {class_name}, got {type(net).__name__}")
    plain = strip_spectral_norm(copy.deepcopy(net).to(device="cpu", dtype=torch.float32)).eval()
    model_args = {**net.model_args, "spectral_norm": False}
    state = {k: v.detach().contiguous().clone() for k, v in plain.state_dict().items()}
    cls(**model_args).load_state_dict(state)  # fail here, not at inference, if the args do not rebuild it

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wpath = folder / WEIGHTS_FILE
    with atomic_path(wpath) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "task": task})
    meta = {
        "format": FORMAT,
        "task": task,
        "model_class": class_name,
        "model_args": model_args,
        "config": config_dict or {},
        "metrics": metrics or {},
        "provenance": provenance or {},
        "sha256": file_sha256(wpath),
        "srpsa_version": __version__,
    }
    text = json.dumps(json_safe(meta), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_text(folder / META_FILE, text)
    return folder


def load_generator_release(folder: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a released generator from ``model_args`` and load its weights.

    Returns
    -------
    model : torch.nn.Module
        :class:`Pix2PixGenerator` or :class:`RRDBNet`, float32, CPU, eval mode.
    meta : dict
        The JSON (``task``, ``config``, ``metrics``, ``provenance``...).

    Raises
    ------
    InputError
        Missing or unreadable files, another format, a sha256 mismatch (corrupt or replaced weights) or
        weights that do not fit ``model_args``.
    """
    folder = Path(folder)
    meta = _read_meta(folder)
    wpath = folder / WEIGHTS_FILE
    if not wpath.is_file():
        raise InputError(f"GAN weights: {wpath} not found")
    if file_sha256(wpath) != meta.get("sha256"):
        raise InputError(f"GAN weights: {wpath} does not match the sha256 in {META_FILE} (corrupt or replaced)")
    task = meta.get("task")
    if task not in MODEL_CLASSES or MODEL_CLASSES[task][0] != meta.get("model_class"):
        raise InputError(f"GAN weights: {folder / META_FILE}: unknown task/model_class {task!r}/{meta.get('model_class')!r}")
    cls = MODEL_CLASSES[task][1]
    try:
        model = cls(**meta["model_args"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"GAN weights: {folder / META_FILE}: invalid model_args: {exc}") from None
    try:
        model.load_state_dict(load_file(str(wpath)))
    except Exception as exc:  # safetensors raises its own error types for torn/invalid files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"GAN weights: {wpath} cannot be loaded into model_args: {first}") from None
    return model.eval(), meta


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    if not path.is_file():
        raise InputError(f"GAN weights: {path} not found")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"GAN weights: cannot read {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(f"GAN weights: {path} has format {got!r}, expected {FORMAT!r}")
    return meta
