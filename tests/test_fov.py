"""Field of view (--roi auto|MASK.png): eyepiece field detection and particles cut by it."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from srpsa.errors import InputError
from srpsa.inference.fov import SHRINK, FieldOfView, apply_roi, check_roi_setting, field_of_view, outside_fov
from srpsa.psd.particles import particle_table

H, W, CX, CY, R = 330, 400, 210.0, 170.0, 150.0


def _eyepiece(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    rho = np.hypot(xx - CX, yy - CY) / R
    img = np.where(rho < 1, 0.07 * (1.2 - 0.3 * rho**2), 0.01)  # dim background, vignette outside
    for _ in range(60):  # bright beads inside the field, some across its rim
        a = rng.uniform(0, 2 * np.pi)
        d = R * np.sqrt(rng.uniform(0, 1.05))
        x, y = CX + d * np.cos(a), CY + d * np.sin(a)
        img[(xx - x) ** 2 + (yy - y) ** 2 < 12**2] = 0.6 * (1.0 if np.hypot(x - CX, y - CY) < R else 0.1)
    return np.clip(img + rng.normal(0, 0.004, img.shape), 0, 1).astype(np.float32)


def test_auto_finds_the_eyepiece_circle() -> None:
    fov = field_of_view(_eyepiece(), "auto")
    assert fov.circle is not None and not fov.warnings
    cx, cy, r = fov.circle
    assert abs(cx - CX) < 3 and abs(cy - CY) < 3
    # the blurred outline sits slightly outside a sharp field edge; the shrink keeps the ROI within 1 % of it
    assert R * (1 - SHRINK) * 0.98 < r <= R * 1.01


def test_auto_without_vignette_uses_whole_image() -> None:
    rng = np.random.default_rng(1)
    fov = field_of_view(rng.uniform(0.4, 0.6, (200, 200)).astype(np.float32), "auto")
    assert fov.circle is None and fov.mask is None and fov.fraction == 1.0
    assert fov.warnings and "whole image" in fov.warnings[0]
    assert field_of_view(np.full((100, 100), 0.5, np.float32), "auto").warnings


def test_cut_by_circle_and_mask(tmp_path) -> None:
    circles = np.array([[200.0, 170.0, 10.0], [200.0, 170.0 + 140.0, 12.0], [20.0, 20.0, 5.0]])
    fov = FieldOfView("auto", (CX, CY, R), None, 0.5, [])
    assert list(outside_fov(circles, fov)) == [False, True, True]
    yy, xx = np.mgrid[:H, :W]
    mask = ((xx - CX) ** 2 + (yy - CY) ** 2 < R**2).astype(np.uint8) * 255
    path = tmp_path / "mask.png"
    iio.imwrite(path, mask)
    mfov = field_of_view(np.zeros((H, W), np.float32), str(path))
    assert list(outside_fov(circles, mfov)) == [False, True, True]
    table = particle_table(circles, None, (H, W), None)
    out, info, warnings = apply_roi(table, np.zeros((H, W), np.float32), str(path))
    assert list(out["edge"]) == [0, 1, 1] and info["count_cut"] == 2 and "field of view" in warnings[-1]
    assert list(table["edge"]) == [0, 0, 0]  # the input table is not modified
    with pytest.raises(InputError, match="--roi: mask .* is 400x330 px, the image 100x100 px"):
        field_of_view(np.zeros((100, 100), np.float32), str(path))
    with pytest.raises(InputError, match="--roi must be 'auto' or a mask"):
        check_roi_setting(str(tmp_path / "missing.png"))


def test_polymer_beads_fields(real_data) -> None:
    """Every polymer-bead photo (eyepiece field cut by the top and bottom of the frame) gives a circle."""
    from srpsa.io import read_image

    paths = sorted((real_data / "polymer_beads_om" / "monodisperse").glob("*.JPG"))[::4]
    assert paths
    for path in paths:
        fov = field_of_view(read_image(path).data, "auto")
        assert fov.circle is not None, path.name
        cx, cy, r = fov.circle
        assert 640 < r < 760 and 600 < cx < 850 and 520 < cy < 760, (path.name, fov.circle)
        assert 0.65 < fov.fraction < 0.85


def test_cli_roi_auto(real_data, tmp_path) -> None:
    from srpsa.cli import main

    image = real_data / "polymer_beads_om" / "monodisperse" / "DSC00002.JPG"
    out = tmp_path / "o"
    assert main(["analyze", str(image), "--out", str(out), "--roi", "auto", "--pipeline", "detect-only", "--bootstrap", "0", "--workers", "1", "--no-shape"]) == 0
    summary = json.loads((out / "DSC00002" / "summary.json").read_text())
    table = pd.read_csv(out / "DSC00002" / "particles.csv")
    roi = summary["roi"]
    assert roi["source"] == "auto" and len(roi["circle"]) == 3
    cx, cy, r = roi["circle"]
    inside = np.hypot(table.x_px - cx, table.y_px - cy) + table.r_px <= r
    assert (table.loc[~inside, "edge"] == 1).all()
    assert summary["count_used"] == int((table["edge"] == 0).sum())
    assert summary["settings"]["roi"] == "auto"


def test_no_false_field_on_other_real_images(real_data) -> None:
    from srpsa.io import read_image

    for path in [real_data / "iso_tr19672" / "monodisperse_n100_30px.png", real_data / "trackpy_brightfield" / "brightfield" / "bf_0000.png",
                 *sorted((real_data / "ampis_powder_sem" / "images").glob("*.png"))[:2]]:
        fov = field_of_view(read_image(path).data, "auto")
        assert fov.circle is None and fov.mask is None and fov.fraction == 1.0, path.name
        assert "whole image" in fov.warnings[0]


def test_overlay_draws_the_field_circle(tmp_path) -> None:
    from srpsa.report.figures import plot_overlay

    img = np.full((H, W), 0.5, np.float32)
    plain, drawn = tmp_path / "plain.png", tmp_path / "fov.png"
    plot_overlay(img, np.zeros((0, 3)), plain)
    plot_overlay(img, np.zeros((0, 3)), drawn, fov_circle=(CX, CY, R))
    cyan = lambda a: (a[..., 0] < 60) & (a[..., 1] > 200) & (a[..., 2] > 200)  # noqa: E731 (RGB)
    assert not cyan(iio.imread(plain)).any()
    ys, xs = np.nonzero(cyan(iio.imread(drawn)))
    assert len(xs) > 500  # a whole ring, not a dot
    rho = np.hypot(xs - CX, ys - CY)
    assert np.all(np.abs(rho - R) < 3)
