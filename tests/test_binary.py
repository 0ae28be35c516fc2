"""Binary (thresholded) images are measured by their outlines, not by a network (inference/binary.py)."""

from __future__ import annotations

import numpy as np
import pytest

from srpsa.inference.binary import MIN_RADIUS_PX, binary_threshold, detect_binary


def _disks(shape, circles, fg=0.0, bg=1.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = np.full(shape, bg, np.float32)
    for x, y, r in circles:
        inside = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        img[inside] = fg
    return img


def test_binary_threshold_accepts_masks_and_refuses_grey_images():
    img = _disks((64, 64), [(20, 20, 6), (44, 40, 8)])
    assert binary_threshold(img) == pytest.approx(0.5)
    assert binary_threshold((img * 140 + 60).astype(np.uint8)) == pytest.approx(130.0)
    noisy = img + np.random.default_rng(0).normal(0, 0.05, img.shape).astype(np.float32)
    assert binary_threshold(noisy) is None
    assert binary_threshold(np.ones((32, 32), np.float32)) is None  # one level: nothing to measure
    blurred = np.clip(np.linspace(0, 1, 64)[None, :].repeat(64, 0), 0, 1).astype(np.float32)
    assert binary_threshold(blurred) is None  # a ramp: many levels


def test_equivalent_circles_of_isolated_and_touching_disks():
    truth = np.array([[30.3, 30.7, 10.0], [51.0, 30.7, 11.0], [100.2, 90.6, 4.0], [70.0, 100.0, 20.0]])  # first two touch
    img = _disks((140, 140), truth)
    circles, scores, info = detect_binary(img, binary_threshold(img))
    assert info["route"] == "binary" and info["polarity"] == "dark"
    assert len(circles) == 4 and np.all(scores == 1)
    for x, y, r in truth:
        k = np.argmin(np.hypot(circles[:, 0] - x, circles[:, 1] - y))
        assert np.hypot(circles[k, 0] - x, circles[k, 1] - y) < 1.0
        assert circles[k, 2] == pytest.approx(r, rel=0.06)


def test_bright_particles_and_specks_below_resolution():
    img = _disks((80, 80), [(20, 20, 8), (60, 60, 1.0)], fg=1.0, bg=0.0)
    circles, _, info = detect_binary(img, binary_threshold(img))
    assert info["polarity"] == "bright"
    assert len(circles) == 1 and circles[0, 2] == pytest.approx(8, rel=0.05)
    assert info["below_resolution"] == 1 and "below" in info["warnings"][0]
    assert MIN_RADIUS_PX > 1.0


def test_analyze_takes_the_binary_route_and_runs_no_model(tmp_path):
    import srpsa

    truth = [(40 + 60 * i, 40 + 60 * j, 12 + i) for i in range(3) for j in range(3)]
    img = (_disks((220, 220), truth) * 255).astype(np.uint8)
    result = srpsa.analyze(img, bootstrap=0)
    assert result.summary["detect"]["route"] == "binary"
    assert not any(m["ran"] for m in result.summary["models"].values())
    assert len(result.particles) == 9
    d = 2 * np.sort(result.particles["r_px"].to_numpy())
    assert np.allclose(d, 2 * np.sort([t[2] for t in truth]), rtol=0.03)
