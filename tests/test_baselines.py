"""Classical baselines: OpenCV Hough circles and the ImageJ-style watershed, with their grid search."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from srpsa.baselines import (
    HoughParams,
    WatershedParams,
    hough_detect,
    load_hough_params,
    load_watershed_params,
    save_hough_params,
    save_watershed_params,
    tune_hough,
    tune_watershed,
    watershed_detect,
)
from srpsa.baselines.watershed import detect_polarity
from srpsa.errors import InputError
from srpsa.evaluation import evaluate_image


def disc_image(seed: int, n: int = 20, size: int = 256, dark: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Filled anti-aliased discs (cv2.circle, sub-pixel centres), blurred, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    bg, fg = (0.75, 0.3) if dark else (0.25, 0.7)
    img = np.full((size, size), bg, np.float32)
    circles: list[tuple[float, float, float]] = []
    while len(circles) < n:
        r = rng.uniform(7, 12)
        x, y = rng.uniform(r + 2, size - r - 2, 2)
        if all((x - cx) ** 2 + (y - cy) ** 2 > (r + cr + 2) ** 2 for cx, cy, cr in circles):
            circles.append((x, y, r))
    for x, y, r in circles:  # shift=4: coordinates in 1/16 px
        cv2.circle(img, (round(x * 16), round(y * 16)), round(r * 16), fg, -1, lineType=cv2.LINE_AA, shift=4)
    img = cv2.GaussianBlur(img, (0, 0), 1.2) + rng.normal(0, 0.05, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), np.array(circles)


@pytest.fixture(scope="module")
def train_test():
    return disc_image(1), disc_image(2)


# Small grids keep the suite fast; the default grids are exercised by benchmarks.
SMALL_HOUGH_GRID = {
    "gradient_alt": {"dp": (1.0,), "param1": (150.0, 300.0), "param2": (0.6, 0.85), "min_dist_frac": (1.0,), "blur_sigma": (1.0,)},
    "gradient": {"dp": (1.5,), "param1": (100.0,), "param2_frac": (0.3, 0.5), "min_dist_frac": (1.0,), "blur_sigma": (1.0,)},
}


def test_hough_tuned_on_one_image_finds_discs_on_another(train_test, tmp_path):
    (train, gt_train), (test, gt_test) = train_test
    best, table = tune_hough([train], [gt_train], grid=SMALL_HOUGH_GRID, time_budget_s=60)
    assert table.iloc[0]["f1"] == table["f1"].max()
    assert set(table["stage"]) == {"coarse", "fine"} and set(table["method"]) == {"gradient", "gradient_alt"}
    circles, scores = hough_detect(test, best)
    assert circles.shape[1] == 3 and scores.shape == (len(circles),)
    assert np.all((scores >= 0) & (scores <= 1))
    met = evaluate_image(gt_test, circles).metrics
    assert met.f1 >= 0.9, met
    assert abs(met.radius_mean_rel_error) < 0.1

    save_hough_params(tmp_path / "hough.json", best)
    assert load_hough_params(tmp_path / "hough.json") == best


def test_hough_centres_use_pixel_centre_convention():
    # A disc rendered by area coverage at a sub-pixel position, pixel centres at integer coordinates.
    size, (cx, cy, r) = 64, (31.3, 28.6, 10.0)
    sub = (np.arange(size * 8) + 0.5) / 8 - 0.5
    yy, xx = np.meshgrid(sub, sub, indexing="ij")
    cover = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).reshape(size, 8, size, 8).mean(axis=(1, 3))
    img = (0.8 - 0.5 * cover).astype(np.float32)
    params = HoughParams(method="gradient_alt", dp=1.0, param1=200, param2=0.8, min_radius_px=6, max_radius_px=14, blur_sigma=1.0)
    circles, _ = hough_detect(img, params)
    assert len(circles) == 1
    assert np.hypot(circles[0, 0] - cx, circles[0, 1] - cy) < 0.6
    assert abs(circles[0, 2] - r) < 0.5


def test_hough_params_validation_and_json_errors(tmp_path):
    with pytest.raises(InputError):
        HoughParams(method="nope")
    with pytest.raises(InputError):
        HoughParams(method="gradient_alt", param2=5)
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "HoughParams", "params": {"dp": 1.0, "colour": 3}}')
    with pytest.raises(InputError, match="unknown"):
        load_hough_params(bad)
    save_watershed_params(tmp_path / "ws.json", WatershedParams())
    with pytest.raises(InputError, match="expected HoughParams"):
        load_hough_params(tmp_path / "ws.json")
    with pytest.raises(InputError):
        tune_hough([np.zeros((8, 8), np.float32)], [np.zeros((0, 3))])


def _two_touching_discs(dark: bool) -> np.ndarray:
    img = np.full((64, 96), 0.8 if dark else 0.2, np.float32)
    for x in (35, 58):  # r = 12 each, centres 23 px apart: the discs overlap by 1 px
        cv2.circle(img, (x, 32), 12, 0.2 if dark else 0.8, -1)
    return img


@pytest.mark.parametrize("dark", [True, False])
def test_watershed_splits_two_touching_discs(dark):
    img = _two_touching_discs(dark)
    circles, scores = watershed_detect(img, WatershedParams())
    assert len(circles) == 2
    order = np.argsort(circles[:, 0])
    assert np.allclose(circles[order, 0], [35, 58], atol=1.0)
    assert np.allclose(circles[:, 1], 32, atol=0.5)
    assert np.allclose(circles[:, 2], 12, atol=1.0)
    assert np.all(scores > 0.9)
    merged, _ = watershed_detect(img, WatershedParams(split=False))
    assert len(merged) == 1


def test_watershed_polarity_auto():
    img = _two_touching_discs(dark=True)
    assert detect_polarity(img, 0.5) == "dark"
    assert detect_polarity(1 - img, 0.5) == "bright"
    assert len(watershed_detect(np.full((16, 16), 0.5, np.float32), WatershedParams())[0]) == 0


def test_watershed_tuning(train_test, tmp_path):
    (train, gt_train), (test, gt_test) = train_test
    grid = {"blur_sigma": (1.0,), "threshold": ("otsu", "li"), "min_peak_frac": (0.5, 1.0), "min_area_frac": (0.25,)}
    best, table = tune_watershed([train], [gt_train], grid=grid, time_budget_s=60)
    assert best.polarity == "dark"
    assert evaluate_image(gt_test, watershed_detect(test, best)[0]).metrics.f1 >= 0.9
    save_watershed_params(tmp_path / "ws.json", best)
    assert load_watershed_params(tmp_path / "ws.json") == best


def test_tuning_is_reproducible_across_threads_and_budgets(train_test):
    (train, gt_train), _ = train_test
    grid = {"gradient_alt": {"dp": (1.0,), "param1": (150.0, 300.0), "param2": (0.6, 0.85), "min_dist_frac": (1.0,), "blur_sigma": (1.0,)}}
    one, t1 = tune_hough([train], [gt_train], grid=grid, refine=False)
    two, t2 = tune_hough([train], [gt_train], grid=grid, refine=False, n_jobs=2)
    assert one == two and len(t1) == len(t2) == 4
    _, t0 = tune_hough([train], [gt_train], grid=grid, time_budget_s=0.0)
    assert 1 <= len(t0) < 4  # out of time at once: only the first batch is scored
