"""Shape descriptors and flags (srpsa.psd.shape)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from srpsa.psd.particles import edge_flags
from srpsa.psd.shape import EXCLUDED_FLAGS, FLAGS, SHAPE_COLUMNS, flag_shares, shape_table


def _canvas(h: int = 200, w: int = 300) -> np.ndarray:
    return np.full((h, w), 200.0, np.float32)


def _disc(img: np.ndarray, x: float, y: float, r: float, value: float = 40.0, ax: float = 1.0) -> None:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    img[((xx - x) / ax) ** 2 + (yy - y) ** 2 < r * r] = value


def test_disc_is_round_with_feret_equal_diameter() -> None:
    img = _canvas()
    _disc(img, 100.3, 90.6, 25.0)
    df = shape_table(img, np.array([[100.3, 90.6, 25.0]]), pixel_size_um=0.5)
    assert list(df.columns) == SHAPE_COLUMNS
    row = df.iloc[0]
    assert row.circularity > 0.97 and row.aspect_ratio < 1.05 and row.solidity > 0.98
    assert row.feret_max_px == pytest.approx(50.0, rel=0.03) and row.feret_min_px == pytest.approx(50.0, rel=0.03)
    assert row.feret_max_um == pytest.approx(row.feret_max_px * 0.5)
    assert row.flag == "ok"


def test_bright_on_dark_and_ellipse_is_non_round() -> None:
    img = np.full((200, 300), 20.0, np.float32)
    _disc(img, 150, 100, 22.0, value=230.0, ax=1.6)  # ellipse 70 x 44 px
    df = shape_table(img, np.array([[150, 100, 28.0]]))
    row = df.iloc[0]
    assert row.aspect_ratio == pytest.approx(1.6, rel=0.06)
    assert row.feret_max_px == pytest.approx(70.4, rel=0.04) and row.feret_min_px == pytest.approx(44.0, rel=0.05)
    assert row.flag == "non_round"


def test_fused_pair_under_one_circle_is_agglomerate() -> None:
    img = _canvas()
    _disc(img, 130, 100, 20.0)
    _disc(img, 165, 100, 20.0)
    df = shape_table(img, np.array([[130, 100, 20.0]]))  # the detector saw only one of them
    assert df.iloc[0].flag == "agglomerate"


def test_touching_detected_pair_split_and_overlapping_is_occluded() -> None:
    img = _canvas()
    _disc(img, 100, 100, 20.0)
    _disc(img, 140, 100, 20.0)  # touching
    _disc(img, 220, 100, 20.0)
    _disc(img, 245, 100, 15.0)  # 15-px disc half under the 20-px one
    circles = np.array([[100, 100, 20.0], [140, 100, 20.0], [220, 100, 20.0], [245, 100, 15.0]])
    df = shape_table(img, circles)
    assert list(df.flag[:2]) == ["ok", "ok"]
    assert df.circularity[:2].min() > 0.9
    assert df.flag[3] == "occluded"


def test_noise_is_low_contrast_small_and_edge() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(128, 20, (200, 300)).astype(np.float32)
    circles = np.array([[100, 100, 20.0], [200, 100, 2.0], [5, 100, 20.0]])
    df = shape_table(img, circles, edge=edge_flags(circles, img.shape))
    assert list(df.flag) == ["low_contrast", "small", "occluded"]
    assert np.isnan(df.circularity[1])


def test_empty_and_shares() -> None:
    df = shape_table(_canvas(), np.zeros((0, 3)))
    assert list(df.columns) == SHAPE_COLUMNS and len(df) == 0
    shares = flag_shares(pd.Series(["ok", "ok", "non_round", "small"]))
    assert set(shares) == set(FLAGS) and shares["ok"] == 0.5 and shares["agglomerate"] == 0.0
    assert "small" not in EXCLUDED_FLAGS


@pytest.mark.parametrize("size", ["7px", "10px", "15px", "30px", "55px", "90px"])
def test_iso_disks_circularity(real_data, size: str) -> None:
    """ISO TR 19672 reference disks: every resolved disk reads circularity >= 0.95 and flag ok."""
    base = real_data / "iso_tr19672" / f"monodisperse_n100_{size}"
    img = np.asarray(Image.open(base.with_suffix(".png")))
    circles = pd.read_csv(base.with_suffix(".csv"))[["x", "y", "r"]].to_numpy()
    df = shape_table(img, circles, edge=edge_flags(circles, img.shape))
    assert len(df) == len(circles) > 80
    assert df.circularity.min() >= 0.95
    assert (df.flag == "ok").all()
