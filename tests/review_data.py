"""A small `srpsa analyze` output folder for the review tests (detect-only, a few 96x96 disk images)."""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from srpsa.cli import main

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
