"""The SEM detector's polarity decision (srpsa.inference.polarity) and the sparse-particle fixes in
srpsa.inference.detect / scale (issue 13). Synthetic, fast: a stand-in detector, no network."""

from __future__ import annotations

import numpy as np
import pytest

from srpsa.inference.detect import Detection
from srpsa.inference.robust import rerefine_failed, robust_stats
from srpsa.inference.polarity import PolarityConfig, decide_polarity, invert, median_radial_f, polarity_detect
from srpsa.inference.scale import estimate_diameter_range
from srpsa.models.detector import image_stats
from srpsa.models.detector_config import RefineConfig

CENTRES = [(40.0 + 60 * i, 40.0 + 60 * j) for i in range(4) for j in range(4)]


def disks(dark: bool, r: float = 12.0, size: int = 256, noise: float = 0.02) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size), 0.2, np.float32)
    for cx, cy in CENTRES:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 0.8
    img += np.random.default_rng(1).normal(0, noise, img.shape).astype(np.float32)
    img = np.clip(img, 0, 1)
    return 1.0 - img if dark else img


class BrightBlobDetector:
    """Stands in for the SEM detector: finds the disks when they are bright, else circles on the ground."""

    def detect(self, image, diameter_range=None, refine=True, **_):
        h, w = image.shape
        on = np.array([(cx, cy, 12.0) for cx, cy in CENTRES if cx < w and cy < h])
        bright = on.size and float(np.mean([image[int(cy), int(cx)] for cx, cy, _ in on])) > float(np.median(image))
        circles = on if bright else on + [30.0, 30.0, 0.0]  # between the disks: nothing round there
        circles = circles[(circles[:, 0] < w - 12) & (circles[:, 1] < h - 12)]
        return Detection(circles, np.ones(len(circles)), {"scales": [1.0]})


def test_invert_keeps_unit_range():
    img = np.array([[0.0, 0.25], [1.0, 0.5]], np.float32)
    assert np.allclose(invert(img), 1.0 - img)
    assert np.allclose(invert(invert(img)), img)


def test_radial_f_is_high_on_particles_and_low_between():
    img = disks(dark=False)
    on = np.array([(cx, cy, 12.0) for cx, cy in CENTRES])
    off = on + [30.0, 30.0, 0.0]
    assert median_radial_f(img, on) > 50
    assert median_radial_f(img, off[:9]) < 6


@pytest.mark.parametrize("dark", [False, True])
def test_decide_polarity_inverts_dark_particles_only(dark):
    flip, info, reuse = decide_polarity(BrightBlobDetector(), disks(dark))
    assert flip is dark
    assert info["polarity"] == ("inverted" if dark else "as is")
    t = info["polarity_test"]
    assert (t["median_radial_f_inverted"] > 2 * t["median_radial_f_as_is"]) is dark
    assert reuse is not None  # the window was the whole image: its pass is reused, not recomputed


def test_polarity_needs_a_clear_margin():
    # an image in the training polarity is kept unless the inverse is ratio times better
    flip, info, _ = decide_polarity(BrightBlobDetector(), disks(True), cfg=PolarityConfig(ratio=1e9))
    assert not flip and info["polarity"] == "as is"


def test_polarity_detect_returns_circles_on_the_dark_disks():
    circles, scores, info = polarity_detect(BrightBlobDetector(), disks(True))
    assert info["polarity"] == "inverted" and info["size_from"] == "estimate"
    d = np.hypot(*(circles[:, None, :2] - np.array(CENTRES)[None]).transpose(2, 0, 1)).min(axis=1)
    assert len(circles) >= 9 and d.max() < 1e-6


def test_robust_stats_widen_the_spread_for_sparse_particles():
    img = np.ones((512, 512), np.float32)
    yy, xx = np.mgrid[0:512, 0:512]
    for cx, cy in [(100, 100), (300, 200), (400, 420)]:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 16] = 0.0  # 0.03 % of the pixels
    assert image_stats(img)[1] == pytest.approx(1e-3)  # the 0.5-99.5 range is the background's alone
    assert robust_stats(img) == (1.0, pytest.approx(1.0))
    normal = disks(False)
    assert robust_stats(normal) == image_stats(normal)  # an ordinary image keeps its statistics


def test_scale_estimate_sees_sparse_small_disks():
    img = np.ones((1024, 1024), np.float32)
    yy, xx = np.mgrid[0:1024, 0:1024]
    rng = np.random.default_rng(3)
    for cx, cy in rng.uniform(40, 984, (25, 2)):
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 25] = 0.0  # 10 px disks on 0.2 % of the pixels
    (lo, hi), conf = estimate_diameter_range(img)
    assert np.isfinite(lo) and lo <= 10 <= hi and conf > 0


def test_rerefine_failed_recovers_radii_from_the_typical_one():
    img = disks(dark=True, noise=0.0)
    truth = np.array([(cx, cy, 12.0) for cx, cy in CENTRES])
    start = truth.copy()
    start[:4, 2] = 5.0  # the network's radius far off: the edge lies outside the search window
    cfg = RefineConfig()
    from srpsa.inference.refine import refine_circles

    refined, ok = refine_circles(img, start, cfg)
    assert not ok[:4].any() and ok[4:].all()
    fixed, ok2, n = rerefine_failed(img, refined, ok, cfg)
    assert n == 4 and ok2.all()
    assert np.allclose(fixed[:, 2], 12.0, atol=0.6)
    # too few refined circles: nothing to restart from, nothing changes
    same, ok3, n3 = rerefine_failed(img, refined[:6], ok[:6], cfg)
    assert n3 == 0 and np.array_equal(same, refined[:6])


def test_self_check_removes_blank_circles_even_when_few():
    from srpsa.inference.quality import self_check

    img = disks(dark=True, noise=0.0)  # a perfectly flat ground, as the ideal ISO TR 19672 frames
    on = np.array([(cx, cy, 12.0) for cx, cy in CENTRES])
    blank = np.array([[70.0, 70.0, 5.0], [130.0, 190.0, 5.0]])  # 2 of 18: far below the weak share rule
    keep, q = self_check(img, np.vstack([on, blank]))
    assert keep[:16].all() and not keep[16:].any()
    assert q.status == "ok" and q.metrics["removed_blank"] == 2
    keep_all, _ = self_check(img, np.vstack([on, blank]), prune=False)  # --keep-weak keeps everything
    assert keep_all.all()
    noisy = disks(dark=True, noise=0.02)  # real images are never blank: nothing removed
    assert self_check(noisy, np.vstack([on, blank]))[0].all()


def test_self_check_flags_a_sample_too_small_for_5_percent():
    from srpsa.inference.quality import assess

    img = disks(dark=True)
    even = np.array([(cx, cy, 12.0) for cx, cy in CENTRES])
    assert assess(img, even).status == "ok"  # 16 equal particles: the median is known to far better than 5 %
    uneven = even[:5] * [1, 1, 0] + np.array([[0, 0, r] for r in (6.0, 9.0, 12.0, 16.0, 20.0)])
    q = assess(img, uneven)
    assert q.status == "doubtful" and any("too few to know the median size" in r for r in q.reasons)
    assert q.metrics["count_needed"] > 5


@pytest.mark.parametrize("inverted", [False, True])
def test_sem_modality_records_polarity_and_finds_dark_particles(inverted):
    """Real SEM detector on a simulator SEM image (training polarity) and on its inverse (dark particles)."""
    from dataclasses import replace

    from srpsa.inference.analyzer import Analyzer
    from srpsa.inference.pipeline import AnalyzeSettings
    from srpsa.synth import make_pair, preset

    cfg = preset("primary")
    cfg = replace(cfg, height=256, width=256, fiducials=replace(cfg.fiducials, count=0))
    cfg = replace(cfg, misregistration=replace(cfg.misregistration, enabled=False))
    pair = make_pair(cfg, 3)
    img = np.clip(pair.sem, 0, 1).astype(np.float32)
    img = 1.0 - img if inverted else img
    result = Analyzer(settings=AnalyzeSettings(modality="sem", bootstrap=0)).analyze(img)
    det = result.summary["detect"]
    assert det["polarity"] == ("inverted" if inverted else "as is")
    assert set(det["polarity_test"]) >= {"median_radial_f_as_is", "median_radial_f_inverted", "window"}
    assert result.summary["count"] > 0.5 * len(pair.gt)
