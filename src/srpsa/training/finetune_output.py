"""Write the weights folder of ``srpsa finetune``: a complete weights root, atomically.

``MODEL_DIR/`` holds the adapted detector (or the original one when fine-tuning did not beat it on the
held-out images), copies of every model it did not touch (so the folder stands alone: moving or
upgrading srpsa never changes what it analyses with), the full-pipeline sizing calibration if the base
had one, and ``finetune.json`` (:mod:`srpsa.inference.finetuned`) with the sha256 of every model.

Everything is written into a hidden temporary folder beside ``MODEL_DIR`` and renamed onto it at the
end, so an interrupted run leaves no half-written weights folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srpsa import __version__
from srpsa.errors import InputError
from srpsa.inference import weights as W
from srpsa.inference.finetuned import FORMAT, MANIFEST
from srpsa.io.atomic import atomic_write_text
from srpsa.io.provenance import file_sha256, json_safe

MODELS = (W.DETECTOR_OM, W.DETECTOR_SEM, W.TRANSLATOR, W.SUPERRES)


def check_out(out: Path) -> None:
    """``--out`` must be new or an empty folder (a fine-tune never overwrites weights)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out} already exists and is not an empty folder; choose a new folder")


def model_entry(folder: Path, source: str) -> dict[str, Any]:
    """sha256 of the model (as analyses record it) and of each of its files."""
    files = {f.name: file_sha256(f) for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")}
    return {"sha256": W.weights_hash(folder), "files": files, "source": source}


def write_weights_folder(out: Path, base_root: Path, adapted: str, write_adapted: Callable[[Path], None],
                         manifest: dict[str, Any]) -> Path:
    """Assemble ``out``: ``write_adapted(folder)`` writes the adapted detector, the rest is copied from
    ``base_root``; ``manifest`` gets the per-model hashes and is written as ``finetune.json``."""
    from srpsa.inference.full import CALIBRATION_FILE

    out = Path(out)
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        models: dict[str, Any] = {}
        for name in MODELS:
            if name == adapted:
                write_adapted(tmp / name)
                models[name] = model_entry(tmp / name, manifest.get("kept", "finetuned"))
            else:
                src = W.model_dir(name, base_root)
                # Copied, not linked: the folder must not change when the base weights do (a few MB).
                shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns(".*", "*.onnx"))
                models[name] = model_entry(tmp / name, f"copied from {src}")
        cal = base_root / CALIBRATION_FILE
        if cal.is_file() and adapted != W.DETECTOR_SEM:  # its hashes name detector-sem, which is unchanged
            shutil.copy2(cal, tmp / CALIBRATION_FILE)
        full = {"format": FORMAT, "srpsa_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **manifest, "models": models}
        atomic_write_text(tmp / MANIFEST, json.dumps(json_safe(full), indent=2, allow_nan=False) + "\n")
        if out.exists():
            out.rmdir()  # empty (check_out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def verify_weights_folder(root: Path) -> list[str]:
    """Problems of a fine-tuned folder: models whose files no longer match the manifest (empty: intact)."""
    manifest = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    problems = []
    for name, entry in manifest["models"].items():
        folder = Path(root) / name
        for fname, digest in entry["files"].items():
            f = folder / fname
            if not f.is_file() or file_sha256(f) != digest:
                problems.append(f"{name}/{fname}")
    return problems
