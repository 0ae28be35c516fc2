"""srpsa.report.figures: files exist, are PNGs of the expected size, and are written atomically."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from srpsa.errors import InputError
from srpsa.report.figures import DPI, PSD_FIGSIZE, COMPARISON_FIGSIZE, plot_kde_comparison, plot_overlay, plot_psd


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header (IHDR is always the first chunk)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def only_file(folder: Path) -> Path:
    files = list(folder.iterdir())
    assert len(files) == 1, f"temporary files left behind: {files}"
    return files[0]


def test_plot_psd_writes_png_of_fixed_size(tmp_path):
    d = np.random.default_rng(0).lognormal(2.0, 0.3, 300)
    target = tmp_path / "psd.png"
    plot_psd(d, target, unit="px", title="sample.tif")
    assert only_file(tmp_path) == target and target.stat().st_size > 10_000
    assert png_size(target) == (round(PSD_FIGSIZE[0] * DPI), round(PSD_FIGSIZE[1] * DPI))


@pytest.mark.parametrize("sample", [[], [4.0], [2.0, 2.0, 2.0]])
def test_plot_psd_degenerate_samples(tmp_path, sample):
    plot_psd(np.asarray(sample), tmp_path / "psd.png")
    assert png_size(only_file(tmp_path))[0] > 0


def test_plot_kde_comparison(tmp_path):
    rng = np.random.default_rng(1)
    series = {"GT (SEM)": rng.lognormal(2, 0.3, 400), "SR-PSA": rng.lognormal(2.05, 0.3, 300), "YOLOv5": [9.0, 11.0]}
    target = tmp_path / "fig9.png"
    plot_kde_comparison(series, target, title="Primary")
    assert only_file(tmp_path) == target
    assert png_size(target) == (round(COMPARISON_FIGSIZE[0] * DPI), round(COMPARISON_FIGSIZE[1] * DPI))
    with pytest.raises(InputError):
        plot_kde_comparison({}, tmp_path / "none.png")


def test_overlay_draws_circles_and_edge_colour(tmp_path):
    img = np.full((120, 160), 0.5, np.float32)
    circles = np.array([[60.0, 60.0, 20.0], [155.0, 30.0, 10.0]])
    target = tmp_path / "overlay.png"
    plot_overlay(img, circles, target, edge=np.array([False, True]))
    assert png_size(target) == (160, 120)
    import cv2

    bgr = cv2.imread(str(target))
    ring = bgr[60, 80]  # right-most point of the interior circle: green
    assert ring[1] > 150 and ring[0] < 150 and ring[2] < 150
    assert tuple(bgr[55, 60]) == (128, 128, 128)  # inside the disc, untouched
    edge_ring = bgr[30, 145]  # left-most point of the border circle: magenta
    assert edge_ring[0] > 150 and edge_ring[2] > 150 and edge_ring[1] < 150
    assert only_file(tmp_path) == target


def test_overlay_downscales_rgb_and_accepts_scores(tmp_path):
    img = np.random.default_rng(0).random((300, 500, 3), dtype=np.float32)
    circles = np.array([[100.0, 100.0, 30.0], [400.0, 200.0, 50.0]])
    target = tmp_path / "o.png"
    plot_overlay(img, circles, target, scores=np.array([0.2, 0.9]), max_size=200)
    assert png_size(target) == (200, 120)
    plot_overlay(img, np.zeros((0, 3)), target, max_size=200)  # no detections: still a picture
    assert png_size(target) == (200, 120)


def test_overlay_large_image_many_circles_is_fast(tmp_path):
    rng = np.random.default_rng(0)
    img = np.zeros((3168, 4752), np.float32)
    n = 20000
    circles = np.column_stack([rng.uniform(0, 4752, n), rng.uniform(0, 3168, n), rng.uniform(4, 30, n)])
    start = time.perf_counter()
    plot_overlay(img, circles, tmp_path / "big.png", edge=rng.random(n) < 0.05)
    # About 0.5 s on one core; the bound only catches a per-circle matplotlib regression.
    assert time.perf_counter() - start < 10.0
    assert png_size(tmp_path / "big.png") == (2048, 1365)


def test_bad_inputs_leave_nothing_behind(tmp_path):
    with pytest.raises(InputError):
        plot_overlay(np.zeros((4, 4, 2)), np.zeros((0, 3)), tmp_path / "o.png")
    with pytest.raises(InputError):
        plot_overlay(np.zeros((8, 8)), np.zeros((0, 3)), tmp_path / "o.unknownext")
    with pytest.raises(InputError):
        plot_overlay(np.zeros((8, 8)), np.zeros((2, 3)), tmp_path / "o.png", edge=np.zeros(3, bool))
    with pytest.raises(InputError):
        plot_psd([1.0, -1.0], tmp_path / "p.png")
    assert list(tmp_path.iterdir()) == []
