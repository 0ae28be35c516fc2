"""Save a reviewed image: particles.csv with a ``source`` column, review.json, and every file derived
from the table (summary.json, overlay.png, psd.png, the folder's summary.csv and report.html).

Order and locking: the image's own files are rewritten under a per-image lock
(``<image>/.review.lock``), each atomically; the folder tables and the report are rebuilt under a
folder lock (``.review.lock``), so two tabs or two images saved at once never interleave. A save names
the particles.csv version it started from; a stale one is refused (409) and changes nothing.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from srpsa.io.atomic import atomic_open, atomic_write_text
from srpsa.psd.particles import PARTICLE_COLUMNS, particle_table
from srpsa.review.folder import AUTO_COPY, REVIEW_FILE, ImageEntry, read_particles, version_of
from srpsa.review.stats import image_statistics, updated_summary

LOCK_NAME = ".review.lock"
LOCK_TIMEOUT_S = 60.0
MAX_CIRCLES = 200_000
_SAME = 1e-4  # px: particles.csv holds 4 decimals, so an untouched circle comes back within this


class BadRequest(ValueError):
    """The save request is malformed (HTTP 400)."""


class Conflict(RuntimeError):
    """The save cannot apply to the current files (HTTP 409)."""


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{where} must be a finite number, got {value!r}")
    return float(value)


def parse_request(body: object, shape: tuple[int, int]) -> tuple[str, list[dict]]:
    """(base version, circles) from the JSON body, or BadRequest naming the bad field."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object with 'version' and 'circles'")
    version, circles = body.get("version"), body.get("circles")
    if not isinstance(version, str) or not version:
        raise BadRequest("'version' must be the particles.csv version the page loaded")
    if not isinstance(circles, list):
        raise BadRequest("'circles' must be a list of {id, x, y, r}")
    if len(circles) > MAX_CIRCLES:
        raise BadRequest(f"'circles' has {len(circles)} entries, more than {MAX_CIRCLES}")
    h, w = shape
    out = []
    for k, c in enumerate(circles):
        where = f"circles[{k}]"
        if not isinstance(c, dict):
            raise BadRequest(f"{where} must be an object {{id, x, y, r}}")
        x, y, r = (_number(c.get(key), f"{where}.{key}") for key in ("x", "y", "r"))
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise BadRequest(f"{where}: centre ({x:g}, {y:g}) is outside the {w}x{h} image")
        if not (0.5 <= r <= max(h, w)):
            raise BadRequest(f"{where}.r must be between 0.5 and {max(h, w)} px, got {r:g}")
        ident = c.get("id")
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int)):
            raise BadRequest(f"{where}.id must be an integer id of the loaded table or null, got {ident!r}")
        out.append({"id": ident, "x": x, "y": y, "r": r})
    return version, out


def _circle(row: pd.Series) -> dict:
    return {"id": int(row["id"]), "x": float(row["x_px"]), "y": float(row["y_px"]), "r": float(row["r_px"])}


def reviewed_table(base: pd.DataFrame, circles: list[dict], shape: tuple[int, int], pixel_size_um: float | None) -> tuple[pd.DataFrame, dict]:
    """The new particles.csv table and what changed relative to ``base``.

    A circle whose id is in ``base`` and whose x, y, r are unchanged keeps its row (score, extra
    columns, source); a changed one becomes ``edited`` (``added`` stays ``added``) and loses the
    columns measured on the old circle; a circle without id is ``added`` with no detector score.
    """
    by_id = {int(i): k for k, i in enumerate(base["id"])}
    seen: set[int] = set()
    rows, added, edited = [], [], []
    for k, c in enumerate(circles):
        ident = c["id"]
        if ident is None:
            rows.append((None, "added", True))
            added.append({"x": c["x"], "y": c["y"], "r": c["r"]})
            continue
        if ident not in by_id:
            raise BadRequest(f"circles[{k}].id {ident} is not in the loaded table")
        if ident in seen:
            raise BadRequest(f"circles[{k}].id {ident} appears twice")
        seen.add(ident)
        old = base.iloc[by_id[ident]]
        same = all(abs(c[key] - float(old[col])) <= _SAME for key, col in (("x", "x_px"), ("y", "y_px"), ("r", "r_px")))
        if same:
            rows.append((by_id[ident], str(old["source"]), False))
        else:
            source = "added" if old["source"] == "added" else "edited"
            rows.append((by_id[ident], source, True))
            edited.append({"from": _circle(old), "to": {"x": c["x"], "y": c["y"], "r": c["r"]}})
    deleted = [_circle(base.iloc[k]) for i, k in by_id.items() if i not in seen]

    xyr = np.array([[c["x"], c["y"], c["r"]] for c in circles], dtype=np.float64).reshape(-1, 3)
    score = np.array([np.nan if k is None else float(base.iloc[k]["score"]) if "score" in base.columns else np.nan
                      for k, _, _ in rows], dtype=np.float64)
    table = particle_table(xyr, score, shape, pixel_size_um)
    table["source"] = [s for _, s, _ in rows]
    extra = [c for c in base.columns if c not in PARTICLE_COLUMNS and c != "source"]
    for col in extra:  # per-circle measurements of other steps: valid only for untouched circles
        values = base[col].tolist()
        table[col] = [None if changed else values[k] for k, _, changed in rows]
    changes = {"added": added, "deleted": deleted, "edited": edited}
    return table, changes


def _append_review(folder: Path, entry: dict) -> dict:
    path = folder / REVIEW_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        doc = {}  # a damaged log is restarted rather than blocking the save; the tables are the truth
    saves = doc.get("saves") if isinstance(doc.get("saves"), list) else []
    doc = {"format": "srpsa-review-1", "saves": [*saves, entry]}
    doc["sources_now"] = entry["sources"]
    doc["last_saved"] = entry["time"]
    atomic_write_text(path, json.dumps(doc, indent=2))
    return doc


def save_image(root: Path, entry: ImageEntry, body: object, *, refresh_folder=None) -> dict:
    """Apply one save request; returns {'version', 'summary', 'changes'}. BadRequest / Conflict otherwise."""
    from srpsa.review.outputs import refresh_folder_outputs, write_image_figures

    if not entry.image_ok:
        raise Conflict(f"the source image {entry.image_path} is missing, so the overlay cannot be redrawn; nothing saved")
    version, circles = parse_request(body, entry.shape)
    folder = entry.folder
    with FileLock(str(folder / LOCK_NAME), timeout=LOCK_TIMEOUT_S):
        current = version_of(folder / "particles.csv")
        if version != current:
            raise Conflict("particles.csv changed since this page loaded it (saved from another tab?); reload the image")
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        base = read_particles(entry)
        table, changes = reviewed_table(base, circles, entry.shape, entry.pixel_size_um)
        settings = summary.get("settings") or {}
        before = image_statistics(base, entry.pixel_size_um, settings)
        after = image_statistics(table, entry.pixel_size_um, settings)
        if not (folder / AUTO_COPY).is_file() and not (base["source"] != "auto").any():
            with atomic_open(folder / AUTO_COPY, "wb") as fh:  # the detector's own table, for before/after
                fh.write((folder / "particles.csv").read_bytes())
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        sources = {s: int((table["source"] == s).sum()) for s in ("auto", "added", "edited")}
        new_summary = updated_summary(summary, before, after)
        new_summary["review"] = {"saved": now, "sources": sources, "log": REVIEW_FILE}
        with atomic_open(folder / "particles.csv", "w", newline="") as fh:
            table.to_csv(fh, index=False, float_format="%.4f")
        write_image_figures(entry, table, after.used_diameters, new_summary)
        _append_review(folder, {
            "time": now, "from_version": version, "to_version": version_of(folder / "particles.csv"),
            "count_before": before.count, "count_after": after.count, "sources": sources,
            **changes,
        })
        # summary.json last, as in analyze: a save interrupted before it leaves the image visibly stale
        # (srpsa report re-derives its statistics from particles.csv and says so).
        atomic_write_text(folder / "summary.json", json.dumps(new_summary, indent=2, default=_json_default))
        new_version = version_of(folder / "particles.csv")
    (refresh_folder or refresh_folder_outputs)(root)
    return {"version": new_version, "summary": new_summary,
            "changes": {k: len(v) for k, v in changes.items()}}


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, (Path, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
