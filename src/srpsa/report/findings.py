"""What the report must point out: warnings per image and for the pooled sample, settings, models.

Warnings come from three places -- the ones the analysis recorded in ``summary.json`` (image loading,
the ISO 13322-1 count rule, edge exclusion), the failed inputs in ``errors.csv``, and what only shows
when the images are looked at together (pooling across units, settings or model hashes that differ).
They are de-duplicated (the pipeline records the Q0 count warning both in ``warnings`` and in
``statistics.Q0.warnings``) and sorted by category so a reader sees failures first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from srpsa.report.collect import AnalysisFolder, ImageResult, as_count

# Display order of the categories; also the order of the warnings table.
CATEGORIES = ("Failed input", "Calibration", "Consistency", "Pooling", "Sample size", "Edge exclusion", "Image", "Report")
POOLED_SCOPE = "Pooled sample"


@dataclass(frozen=True)
class Finding:
    scope: str  # image name, "Pooled sample" or "All images"
    category: str  # one of CATEGORIES
    message: str
    severity: str = "warning"  # "error" | "warning" | "info"


def classify(message: str) -> str:
    """Category of a free-text warning recorded by the analysis (keywords of the messages it writes)."""
    text = message.lower()
    if "iso 13322-1" in text or "particles counted" in text or text.startswith(("no particles", "only 1 particle")):
        return "Sample size"
    if "image border" in text:
        return "Edge exclusion"
    if "pixel size" in text or "calibrat" in text:
        return "Calibration"
    return "Image"


def _dedupe(messages: list[str]) -> list[str]:
    return list(dict.fromkeys(m for m in messages if isinstance(m, str) and m.strip()))


def image_findings(image: ImageResult) -> list[Finding]:
    """Warnings of one image: recorded ones plus calibration/edge notes the summary may lack."""
    recorded = image.summary.get("warnings")
    messages = list(recorded) if isinstance(recorded, list) else []
    for table in ("Q0", "Q3"):
        stats_warnings = image.statistics(table).get("warnings")
        messages += stats_warnings if isinstance(stats_warnings, list) else []
    found = [Finding(image.name, classify(m), m, "info" if classify(m) == "Edge exclusion" else "warning") for m in _dedupe(messages)]
    categories = {f.category for f in found}
    if not image.calibrated and "Calibration" not in categories:
        found.append(Finding(image.name, "Calibration", "uncalibrated: no pixel size, so sizes are in px"))
    n_edge = as_count(image.summary.get("count_edge"))
    if n_edge and "Edge exclusion" not in categories:
        if image.include_edge:
            text = f"{n_edge} particle(s) touch the image border and are included in the statistics (--include-edge); their sizes are cut"
            found.append(Finding(image.name, "Edge exclusion", text))
        else:
            found.append(Finding(image.name, "Edge exclusion", f"{n_edge} particle(s) touch the image border and are excluded from statistics", "info"))
    found += [Finding(image.name, "Report", note) for note in image.notes]
    return found


def _pooled_findings(analysis: AnalysisFolder) -> list[Finding]:
    pooled = analysis.pooled
    if pooled is None:
        return [Finding(POOLED_SCOPE, "Pooling", "no image has a readable particles.csv: no pooled statistics")]
    found = [Finding(POOLED_SCOPE, "Pooling", note) for note in pooled.notes]
    # Q0 and Q3 share some messages ("no particles ..."): show each once.
    found += [Finding(POOLED_SCOPE, classify(m), m) for m in _dedupe([m for s in pooled.stats.values() for m in s.warnings])]
    if pooled.count_edge_excluded:
        text = f"{pooled.count_edge_excluded} border-touching particle(s) excluded from the pooled statistics (ISO 13322-1)"
        found.append(Finding(POOLED_SCOPE, "Edge exclusion", text, "info"))
    return found


def _display(value: object) -> str:
    """Settings value as a reader expects it (None: 'none', lists: 'a - b', other: JSON-like text)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " \u2013 ".join(_display(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict) else str(value)


def merged_settings(images: list[ImageResult]) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """``[(key, [(displayed value, [image names]), ...]), ...]``; more than one value means they differ."""
    keys = list(dict.fromkeys(k for im in images for k in im.settings))
    rows = []
    for key in keys:
        values: dict[str, list[str]] = {}
        for im in images:
            values.setdefault(_display(im.settings.get(key)), []).append(im.name)
        rows.append((key, list(values.items())))
    return rows


def merged_models(images: list[ImageResult]) -> list[tuple[str, str, list[str]]]:
    """``[(model name, sha256, [image names]), ...]``: one row per distinct (name, hash).

    A model loaded but not run on an image (``"ran": false`` in its summary.json, e.g. the translator on
    the native small-particle route) does not count for that image; summaries without the key count."""
    rows: dict[tuple[str, str], list[str]] = {}
    for im in images:
        models = im.summary.get("models")
        for name, info in (models.items() if isinstance(models, dict) else []):
            if isinstance(info, dict) and info.get("ran") is False:
                continue
            digest = str(info.get("sha256", "")) if isinstance(info, dict) else ""
            rows.setdefault((str(name), digest or "unknown"), []).append(im.name)
    return [(name, digest, names) for (name, digest), names in rows.items()]


def _consistency_findings(images: list[ImageResult]) -> list[Finding]:
    found = []
    for key, values in merged_settings(images):
        if len(values) > 1:
            shown = "; ".join(f"{v} ({len(names)} image(s))" for v, names in values)
            found.append(Finding("All images", "Consistency", f"setting '{key}' differs between images: {shown}"))
    names = [name for name, _, _ in merged_models(images)]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        found.append(Finding("All images", "Consistency", f"model '{name}' has different weight hashes in different images"))
    return found


def collect_findings(analysis: AnalysisFolder) -> list[Finding]:
    """Every warning of the report, failures first, then by category and scope."""
    found = [Finding(f.name, "Failed input", f.error or "failed (no message)", "error") for f in analysis.failed]
    found += _consistency_findings(analysis.images)
    found += _pooled_findings(analysis)
    for image in analysis.images:
        found += image_findings(image)
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    # Stable sort: within a category, the pooled sample first, then images in input order.
    return sorted(found, key=lambda f: (rank.get(f.category, len(rank)), f.scope != POOLED_SCOPE))
