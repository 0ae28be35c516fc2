"""Tiled inference: exact reconstruction, seamless stitching, odd sizes, scales, bounded memory."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from srpsa.errors import InputError
from srpsa.inference.tiling import apply_tiled, iter_tiles


def _image(h: int, w: int, c: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 150),
    w=st.integers(1, 150),
    c=st.sampled_from([None, 1, 3]),
    tile=st.sampled_from([16, 32, 48]),
    overlap_frac=st.sampled_from([0.0, 0.25, 0.5]),
    batch=st.sampled_from([1, 3]),
)
def test_identity_reproduces_image(h, w, c, tile, overlap_frac, batch):
    img = _image(h, w, c)
    out = apply_tiled(img, lambda t: t, tile=tile, overlap=int(tile * overlap_frac), batch_size=batch)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, img, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 120), w=st.integers(1, 120), tile=st.sampled_from([16, 40]), overlap=st.integers(0, 15))
def test_iter_tiles_cover_image_with_bounded_tiles(h, w, tile, overlap):
    covered = np.zeros((h, w), int)
    for rows, cols in iter_tiles((h, w), tile, overlap):
        assert rows.stop - rows.start == min(tile, h) and cols.stop - cols.start == min(tile, w)
        assert rows.stop <= h and cols.stop <= w
        covered[rows, cols] += 1
    assert covered.min() >= 1


def test_no_seams_for_translation_equivariant_functions():
    img = _image(301, 467, seed=1)  # not divisible by the tile size
    blur = lambda t: ndimage.gaussian_filter(t, 2.0, truncate=3.0, mode="reflect")  # radius 6 < margin 16
    kernel = np.random.default_rng(2).random((3, 3)).astype(np.float32)
    conv = lambda t: cv2.filter2D(t, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    for fn in (blur, conv):
        whole = fn(img)
        out = apply_tiled(img, fn, tile=128, overlap=64)
        diff = np.abs(out - whole)[8:-8, 8:-8].max()
        print(f"seam max |tiled - whole| = {diff:.2e}")
        assert diff < 1e-4


def test_scale_up_and_down():
    img = _image(100, 77, seed=3)
    up = lambda t: cv2.resize(t, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    out = apply_tiled(img, up, tile=32, overlap=8, scale=2)
    np.testing.assert_allclose(out, up(img), atol=1e-6)

    half = lambda t: t.reshape(t.shape[0] // 2, 2, t.shape[1] // 2, 2).mean(axis=(1, 3))
    even = img[:, :76]
    out = apply_tiled(even, half, tile=32, overlap=8, scale=0.5)
    np.testing.assert_allclose(out, half(even), atol=1e-6)
    # Odd size with a fractional scale: output is round(size * scale), origins stay aligned.
    assert apply_tiled(img, half, tile=32, overlap=8, scale=0.5).shape == (50, 38)
    # Batched call with a channel change (e.g. detector heads) and a batch dimension.
    quarter = lambda b: np.repeat(b[:, ::4, ::4, None], 4, axis=3)
    assert apply_tiled(img, quarter, tile=32, overlap=8, scale=0.25, batch_size=4).shape == (25, 19, 4)


def test_pre_resize_and_bad_arguments():
    img = _image(64, 96, seed=4)
    out = apply_tiled(img, lambda t: t, tile=32, overlap=8, pre_resize=0.5)
    np.testing.assert_allclose(out, cv2.resize(img, (48, 32), interpolation=cv2.INTER_AREA), atol=1e-6)
    with pytest.raises(InputError, match="overlap"):
        apply_tiled(img, lambda t: t, tile=32, overlap=32)
    with pytest.raises(InputError, match="image"):
        apply_tiled(np.zeros((2, 2, 2, 2)), lambda t: t)
    with pytest.raises(ValueError, match="fn returned"):
        apply_tiled(img, lambda t: t[:-1], tile=32, overlap=8)


def test_memory_bounded_for_full_size_micrograph():
    img = np.zeros((3168, 4752), np.float32)  # the paper's image size
    tracemalloc.start()
    try:
        out = apply_tiled(img, lambda t: t, tile=512, overlap=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    budget = img.nbytes + out.nbytes
    print(f"peak traced {peak / 1e6:.0f} MB for input+output {budget / 1e6:.0f} MB")
    assert peak < 1.5 * budget
