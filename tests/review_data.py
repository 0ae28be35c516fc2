"""A small `srpsa analyze` output folder for the review tests (detect-only, a few 96x96 disk images)."""

from __future__ import annotations

import shutil
from pathlib import Path

import json
import math

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from srpsa.cli import main
from srpsa.review.stats import image_statistics

ANALYZE = ["--pipeline", "detect-only", "--bootstrap", "20", "--pixel-size", "0.5", "--workers", "1"]


def disk_image(seed: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Dark disks (r 6-9 px) on a bright background, apart from each other and the border."""
    rng = np.random.default_rng(seed)
    img = np.full(shape, 200, np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centres: list[tuple[float, float]] = []
    while len(centres) < 5:
        cy, cx = rng.uniform(15, shape[0] - 15), rng.uniform(15, shape[1] - 15)
        if all((cy - a) ** 2 + (cx - b) ** 2 > 24**2 for a, b in centres):
            centres.append((cy, cx))
            r = rng.uniform(6, 9)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 60
    return img


def make_analysis(root: Path, n_images: int = 2) -> Path:
    """Images in root/in, analysis in root/out (returned); also writes report.html."""
    src = root / "in"
    src.mkdir(parents=True)
    for seed in range(n_images):
        iio.imwrite(src / f"img{seed}.png", disk_image(seed))
    out = root / "out"
    assert main(["analyze", str(src), "--out", str(out), *ANALYZE]) == 0
    assert main(["report", str(out)]) == 0
    return out


def copy_analysis(template: Path, dest: Path) -> Path:
    """A private copy (the summaries point at the images by absolute path, so those stay shared)."""
    shutil.copytree(template, dest)
    return dest


def approx_equal(a, b, rel=1e-4) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(approx_equal(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def check_consistent(out: Path, name: str) -> pd.DataFrame:
    """summary.json, summary.csv and the report agree with particles.csv; returns the table."""
    from srpsa.report.collect import load_analysis

    table = pd.read_csv(out / name / "particles.csv")
    summary = json.loads((out / name / "summary.json").read_text())
    stats = image_statistics(table, summary["pixel_size_um"], summary["settings"])
    assert summary["count"] == stats.count == len(table)
    assert summary["count_used"] == stats.count_used
    assert approx_equal(summary["statistics"], stats.statistics)
    row = pd.read_csv(out / "summary.csv").set_index("image").loc[name]
    assert row["count"] == len(table) and row["count_used"] == stats.count_used
    assert row["Q0_d50"] == pytest.approx(stats.statistics["Q0"]["d50"], rel=1e-4)
    analysis = load_analysis(out)
    image = next(im for im in analysis.images if im.name == name)
    assert image.notes == []  # the report found nothing stale
    assert image.count == len(table)
    # report.html was rewritten after the image's summary (save rebuilds it last)
    assert (out / "report.html").stat().st_mtime_ns >= (out / name / "summary.json").stat().st_mtime_ns
    return table
