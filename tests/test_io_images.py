"""srpsa.io images and file discovery: formats, normalisation rules, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from srpsa.errors import InputError
from srpsa.io import (
    LUMA_WEIGHTS,
    SUPPORTED_SUFFIXES,
    iter_image_files,
    read_image,
    read_image_shape,
    resolve_pixel_size,
)

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)


def _luma(rgb01: np.ndarray) -> np.ndarray:
    return rgb01 @ np.asarray(LUMA_WEIGHTS)


# ------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_gray8_lossless_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"g{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, GRAY8)
    else:
        Image.fromarray(GRAY8).save(path)
    img = read_image(path)
    assert img.data.dtype == np.float32 and img.data.shape == (6, 7) and img.shape == (6, 7)
    np.testing.assert_allclose(img.data, GRAY8 / 255.0, atol=1e-6)
    assert img.rgb is None and img.bit_depth == 8
    assert img.pixel_size_um is None and img.pixel_size_source == "none"


def test_16bit_divided_by_dtype_max_not_image_max(tmp_path: Path) -> None:
    data = np.array([[0, 1000], [32768, 40000]], dtype=np.uint16)
    for name in ("a.png", "a.tif"):
        path = tmp_path / name
        cv2.imwrite(str(path), data) if name.endswith(".png") else tifffile.imwrite(path, data)
        img = read_image(path)
        assert img.bit_depth == 16
        np.testing.assert_allclose(img.data, data / 65535.0, rtol=1e-6)


def test_rgb_to_gray_bt601_and_rgb_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.png"
    Image.fromarray(RGB8).save(path)
    img = read_image(path)
    np.testing.assert_allclose(img.rgb, RGB8 / 255.0, atol=1e-6)
    np.testing.assert_allclose(img.data, _luma(RGB8 / 255.0), atol=1e-6)
    assert img.data.min() >= 0 and img.data.max() <= 1


def test_16bit_rgb_png_keeps_precision(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 3), dtype=np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 1000, 20000, 65535
    path = tmp_path / "c16.png"
    cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV wants BGR
    img = read_image(path)
    assert img.bit_depth == 16
    np.testing.assert_allclose(img.rgb[0, 0], [1000 / 65535, 20000 / 65535, 1.0], rtol=1e-6)


def test_rgba_alpha_dropped_with_warning_only_if_transparent(tmp_path: Path) -> None:
    rgba = np.dstack([RGB8, np.full((6, 7), 255, np.uint8)])
    opaque, clear = tmp_path / "o.png", tmp_path / "t.png"
    Image.fromarray(rgba).save(opaque)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(clear)
    a, b = read_image(opaque), read_image(clear)
    np.testing.assert_allclose(b.rgb, RGB8 / 255.0, atol=1e-6)  # not composited
    assert not any("alpha" in w for w in a.warnings)
    assert any("alpha" in w for w in b.warnings)


def test_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "g.JPG"  # suffix matching is case-insensitive
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(path, format="JPEG", quality=95)
    img = read_image(path)
    np.testing.assert_allclose(img.data, 128 / 255.0, atol=3 / 255.0)


def test_tiff_float_in_range_kept_out_of_range_rescaled(tmp_path: Path) -> None:
    inside = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    tifffile.imwrite(tmp_path / "in.tif", inside)
    tifffile.imwrite(tmp_path / "out.tif", inside * 4 - 1)
    a, b = read_image(tmp_path / "in.tif"), read_image(tmp_path / "out.tif")
    np.testing.assert_array_equal(a.data, inside)
    np.testing.assert_allclose(b.data, inside, atol=1e-6)
    assert a.bit_depth == 32
    assert any("rescaled" in w for w in b.warnings) and not any("rescaled" in w for w in a.warnings)


def test_tiff_multipage_first_page_with_warning(tmp_path: Path) -> None:
    stack = np.stack([GRAY8, 255 - GRAY8, GRAY8])
    tifffile.imwrite(tmp_path / "m.tif", stack, photometric="minisblack")
    img = read_image(tmp_path / "m.tif")
    np.testing.assert_allclose(img.data, GRAY8 / 255.0, atol=1e-6)
    assert any("3 pages" in w for w in img.warnings)


def test_tiff_rgb_planar_and_lzw_fallback(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "p.tif", np.moveaxis(RGB8, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(read_image(tmp_path / "p.tif").rgb, RGB8 / 255.0, atol=1e-6)
    # LZW needs the optional imagecodecs package in tifffile; Pillow decodes it instead.
    Image.fromarray(RGB8).save(tmp_path / "lzw.tiff", compression="tiff_lzw")
    np.testing.assert_allclose(read_image(tmp_path / "lzw.tiff").rgb, RGB8 / 255.0, atol=1e-6)


def test_ome_tiff_pixels(tmp_path: Path) -> None:
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, GRAY8, metadata={"axes": "YX"})
    np.testing.assert_allclose(read_image(path).data, GRAY8 / 255.0, atol=1e-6)


def test_override_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "g.png"
    Image.fromarray(GRAY8).save(path)
    img = read_image(path, pixel_size_um=0.5)
    assert (img.pixel_size_um, img.pixel_size_source) == (0.5, "override")
    assert not any("no pixel size" in w for w in img.warnings)
    assert read_image_shape(path) == (6, 7)
    assert resolve_pixel_size(read_image(path), 2.0) == (2.0, "override")
    with pytest.raises(InputError, match="g.png"):
        read_image(path, pixel_size_um=-1)


# ---------------------------------------------------------------------------------- bad input
def _one_line_error(path: Path, match: str) -> None:
    with pytest.raises(InputError) as info:
        read_image(path)
    msg = str(info.value)
    assert "\n" not in msg and path.name in msg and match in msg, msg


def test_bad_inputs(tmp_path: Path) -> None:
    _one_line_error(tmp_path / "missing.png", "not found")
    _one_line_error(tmp_path, "directory")
    (tmp_path / "text.png").write_text("this is not a picture")
    _one_line_error(tmp_path / "text.png", "not an image")
    (tmp_path / "text.tif").write_text("this is not a picture")
    _one_line_error(tmp_path / "text.tif", "TIFF")
    (tmp_path / "zero.png").write_bytes(b"")
    _one_line_error(tmp_path / "zero.png", "empty")
    (tmp_path / "a.xyz").write_bytes(b"abc")
    _one_line_error(tmp_path / "a.xyz", "unsupported image suffix")
    nan = np.zeros((4, 4), np.float32)
    nan[1, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    _one_line_error(tmp_path / "nan.tif", "NaN")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated(tmp_path: Path, suffix: str) -> None:
    full = tmp_path / f"full{suffix}"
    noise = RNG.integers(0, 256, (32, 32), dtype=np.uint8)
    tifffile.imwrite(full, noise) if suffix == ".tif" else Image.fromarray(noise).save(full)
    cut = tmp_path / f"cut{suffix}"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    _one_line_error(cut, "truncated")


# ----------------------------------------------------------------------------- file discovery
def test_iter_image_files(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ("b.PNG", "a.tif", "sub/c.jpeg", "sub/deeper/d.Tiff", "notes.txt", "._b.png", ".hidden/e.png"):
        (tmp_path / rel).write_bytes(b"x")
    found = iter_image_files([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.tif", "b.PNG", "sub/c.jpeg", "sub/deeper/d.Tiff"]
    # explicit files keep their order; duplicates are dropped
    assert iter_image_files([tmp_path / "b.PNG", tmp_path / "a.tif", tmp_path / "b.PNG"]) == [
        tmp_path / "b.PNG", tmp_path / "a.tif"]
    assert ".tif" in SUPPORTED_SUFFIXES and ".jpg" in SUPPORTED_SUFFIXES
    with pytest.raises(InputError, match="nope"):
        iter_image_files([tmp_path / "nope"])
    with pytest.raises(InputError, match="notes.txt"):
        iter_image_files([tmp_path / "notes.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image"):
        iter_image_files([tmp_path / "empty"])
