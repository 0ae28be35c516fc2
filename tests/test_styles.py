"""The appearance-randomised training renderer (srpsa.synth.styles)."""

from __future__ import annotations

import numpy as np
import pytest

from srpsa.synth.styles import MAX_TRAIN_SEED, render_style_image
from srpsa.training.detector_data import synth_sample


def test_deterministic_and_in_range() -> None:
    a = render_style_image(3, (160, 200))
    b = render_style_image(3, (160, 200))
    assert a.image.shape == (160, 200) and a.image.dtype == np.float32
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.circles, b.circles)
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    c = a.circles
    assert len(c) > 0
    assert np.all((c[:, 0] > -0.5) & (c[:, 0] < 199.5) & (c[:, 1] > -0.5) & (c[:, 1] < 159.5))
    assert np.all(c[:, 2] >= 1.5)


def test_styles_differ_between_seeds() -> None:
    looks = {tuple(sorted(render_style_image(s, (96, 96)).style.items()))[:3] for s in range(8)}
    assert len(looks) > 1


def test_particles_are_visible_where_labelled() -> None:
    # Over many images the mean intensity inside labelled discs differs from a ring just outside them.
    diffs = []
    for s in range(12):
        im = render_style_image(s, (192, 192))
        yy, xx = np.mgrid[0:192, 0:192]
        for x, y, r in im.circles[:5]:
            d = np.hypot(xx - x, yy - y)
            inner, outer = im.image[d < 0.7 * r], im.image[(d > 1.3 * r) & (d < 1.8 * r)]
            if len(inner) > 4 and len(outer) > 4:
                diffs.append(abs(float(inner.mean() - outer.mean())))
    assert np.median(diffs) > 0.02


def test_benchmark_seeds_refused() -> None:
    with pytest.raises(ValueError):
        render_style_image(MAX_TRAIN_SEED)


def test_training_source_mixture() -> None:
    s = synth_sample("styles+styles", "om", 5)
    assert s.name == "styles-5" and s.image.ndim == 2
