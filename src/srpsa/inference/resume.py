"""When may `srpsa analyze` reuse results already in ``--out``? Only when they were made the same way.

Each summary.json records the input file, the settings and the sha256 of every model used, plus
``fingerprint``, one hash over settings and models. A re-run skips a finished image only when it was
made from the same file (resolved path) and its settings (those that change results) and model hashes
equal the current ones; otherwise the whole run is refused before any work, with a
one-line message naming each changed setting by its flag and ``--force`` (which re-analyses the
inputs given). Refusing is safer than re-analysing silently: a folder then never mixes results made
with different settings unless the user asked for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from typing import TYPE_CHECKING

from srpsa.errors import InputError

if TYPE_CHECKING:
    from srpsa.inference.pipeline import AnalyzeSettings

#: Settings that do not change a result: the weights *path* (their content is compared by hash) and the
#: decoding size and memory limits, the interchange exports.
IGNORED = frozenset({"weights", "max_pixels", "max_memory_gb", "exports"})

#: The CLI flag of each setting, for messages.
FLAGS = {
    "modality": "--modality", "pipeline": "--pipeline", "pixel_size_um": "--pixel-size",
    "diameter_range": "--diameter-range", "diameter_unit": "--diameter-unit", "include_edge": "--include-edge",
    "refine": "--no-refine", "bootstrap": "--bootstrap", "seed": "--seed", "enhance_flow": "--flow",
    "backend": "--backend", "enhance_sr": "--sr",
    "shape": "--no-shape", "exclude_flagged": "--exclude-flagged", "meta": "--meta", "spec": "--spec",
    "roi": "--roi",
}


def result_settings(settings: AnalyzeSettings | dict) -> dict:
    """The settings that decide a result, as plain JSON values (tuples become lists)."""
    from srpsa.inference.pipeline import AnalyzeSettings

    defaults = {f.name: f.default for f in fields(AnalyzeSettings)}
    raw = asdict(settings) if not isinstance(settings, dict) else settings
    # A summary written before a setting existed was made with that setting's default.
    merged = {k: raw.get(k, defaults[k]) for k in defaults if k not in IGNORED}
    return json.loads(json.dumps(merged))


def model_hashes_of(summary: dict) -> dict[str, str]:
    return {name: info.get("sha256", "") for name, info in (summary.get("models") or {}).items()}


def fingerprint(settings: AnalyzeSettings | dict, hashes: dict[str, str]) -> str:
    """sha256 over the result settings and the model hashes (recorded in summary.json)."""
    blob = json.dumps({"settings": result_settings(settings), "models": dict(sorted(hashes.items()))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def differences(summary: dict, settings: AnalyzeSettings, hashes: dict[str, str]) -> list[str]:
    """What differs between a finished result and the current run, e.g. ``--pixel-size None -> 0.4``."""
    old, new = result_settings(summary.get("settings") or {}), result_settings(settings)
    out = [f"{FLAGS.get(k, k)} {old[k]} -> {new[k]}" for k in new if old.get(k) != new[k]]
    old_models = model_hashes_of(summary)
    # Models used by both runs with other weights; a different set of models follows from a changed
    # --pipeline/--modality, already named above.
    changed = sorted(n for n in set(old_models) & set(hashes) if old_models[n] != hashes[n])
    if not changed and not out and set(old_models) != set(hashes):
        changed = sorted(set(old_models) ^ set(hashes))
    if changed:
        out.append(f"--weights (models {', '.join(changed)} differ)")
    return out


def check_resumable(found: dict[str, tuple[dict, str]], settings: AnalyzeSettings, hashes: dict[str, str], out_root: str) -> None:
    """Raise :class:`InputError` if any finished result in ``found`` (name -> (summary, image path)) was
    made otherwise, or from another file of the same name (e.g. ``a/img.png`` then ``b/img.png``)."""
    from pathlib import Path

    changed: dict[str, list[str]] = {}
    for name, (summary, image) in found.items():
        diff = differences(summary, settings, hashes)
        if summary.get("image") and summary["image"] != str(Path(image).resolve()):
            diff.insert(0, f"{name}/ holds the results of another file, {summary['image']}")
        if diff:
            changed[name] = diff
    if changed:
        first = next(iter(changed.values()))
        raise InputError(
            f"--out {out_root}: {len(changed)} finished result(s) were made with other settings "
            f"({'; '.join(first)}); use --force to re-analyse them, or another --out"
        )
