"""srpsa.io calibration: each metadata source written as a real TIFF, priority, and the DPI trap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from srpsa.errors import InputError
from srpsa.io import read_image, resolve_pixel_size, unit_to_um

PIXELS = np.arange(20, dtype=np.uint16).reshape(4, 5)
FEI_TEXT = "[User]\r\nDate=01/02/2020\r\n[Scan]\r\nPixelWidth=1.5e-08\r\nPixelHeight=1.5e-08\r\n"
ZEISS_TEXT = "0\r\nAP_WD\r\nWD = 8.5 mm\r\nAP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 2.5 nm\r\n"


def _fei_tag(text: str = FEI_TEXT) -> tuple:
    return (34682, "s", 0, text, True)  # FEI_HELIOS, ASCII


def _zeiss_tag(text: str = ZEISS_TEXT) -> tuple:
    return (34118, "s", 0, text, True)  # CZ_SEM, ASCII


def _calibration(path: Path) -> tuple[float | None, str]:
    img = read_image(path)
    return img.pixel_size_um, img.pixel_size_source


@pytest.mark.parametrize(("unit", "expected"), [(None, 0.3), ("nm", 0.3e-3), ("mm", 300.0), ("\u00c5", 0.3e-4)])
def test_ome_physical_size(tmp_path: Path, unit: str | None, expected: float) -> None:
    meta = {"axes": "YX", "PhysicalSizeX": 0.3}
    if unit:
        meta["PhysicalSizeXUnit"] = unit
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, PIXELS, metadata=meta)
    value, source = _calibration(path)
    assert source == "ome-xml" and value == pytest.approx(expected, rel=1e-12)


def test_fei(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", PIXELS, extratags=[_fei_tag()])
    value, source = _calibration(tmp_path / "f.tif")
    assert source == "fei" and value == pytest.approx(0.015, rel=1e-12)


def test_zeiss(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "z.tif", PIXELS, extratags=[_zeiss_tag()])
    value, source = _calibration(tmp_path / "z.tif")
    assert source == "zeiss" and value == pytest.approx(0.0025, rel=1e-12)


@pytest.mark.parametrize(("unit", "expected"), [("um", 0.5), ("micron", 0.5), ("\\u00B5m", 0.5), ("nm", 0.5e-3)])
def test_imagej(tmp_path: Path, unit: str, expected: float) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, PIXELS, imagej=True, resolution=(2.0, 2.0), metadata={"unit": unit})
    value, source = _calibration(path)
    assert source == "imagej" and value == pytest.approx(expected, rel=1e-12)


def test_untrusted_resolution_gives_none(tmp_path: Path) -> None:
    # Plain DPI tags, and ImageJ without a unit, are not a calibration.
    tifffile.imwrite(tmp_path / "dpi.tif", PIXELS, resolution=(300, 300), resolutionunit="INCH")
    tifffile.imwrite(tmp_path / "ij.tif", PIXELS, imagej=True, resolution=(2.0, 2.0))
    Image.fromarray(PIXELS.astype(np.uint8)).save(tmp_path / "dpi.png", dpi=(300, 300))
    for name in ("dpi.tif", "ij.tif", "dpi.png"):
        img = read_image(tmp_path / name)
        assert (img.pixel_size_um, img.pixel_size_source) == (None, "none")
        assert any("no pixel size" in w and name in w for w in img.warnings)


def test_priority(tmp_path: Path) -> None:
    # OME beats FEI; FEI beats Zeiss; Zeiss beats ImageJ.
    tifffile.imwrite(tmp_path / "a.ome.tif", PIXELS, metadata={"axes": "YX", "PhysicalSizeX": 0.3},
                     extratags=[_fei_tag()])
    tifffile.imwrite(tmp_path / "b.tif", PIXELS, extratags=[_fei_tag(), _zeiss_tag()])
    tifffile.imwrite(tmp_path / "c.tif", PIXELS, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"},
                     extratags=[_zeiss_tag()])
    assert _calibration(tmp_path / "a.ome.tif")[1] == "ome-xml"
    assert _calibration(tmp_path / "b.tif")[1] == "fei"
    assert _calibration(tmp_path / "c.tif")[1] == "zeiss"
    img = read_image(tmp_path / "b.tif", pixel_size_um=0.1)
    assert (img.pixel_size_um, img.pixel_size_source) == (0.1, "override")
    assert any("differs" in w for w in img.warnings)


def test_unreadable_block_is_skipped_with_warning(tmp_path: Path) -> None:
    bad = "[Scan]\r\nPixelWidth=abc\r\n"
    tifffile.imwrite(tmp_path / "f.tif", PIXELS, extratags=[_fei_tag(bad), _zeiss_tag()])
    img = read_image(tmp_path / "f.tif")
    assert img.pixel_size_source == "zeiss"
    assert any("fei" in w for w in img.warnings)


def test_resolve_pixel_size(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", PIXELS, extratags=[_fei_tag()])
    img = read_image(tmp_path / "f.tif")
    assert resolve_pixel_size(img, None) == (pytest.approx(0.015), "fei")
    assert resolve_pixel_size(img, 0.2) == (0.2, "override")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="f.tif"):
            resolve_pixel_size(img, bad)


def test_unit_to_um() -> None:
    assert unit_to_um("\u00b5m") == unit_to_um("\u03bcm") == unit_to_um("Micron") == 1.0
    assert unit_to_um("nm") == 1e-3 and unit_to_um("m") == 1e6 and unit_to_um("inch") == 25400.0
    assert unit_to_um("pixel") is None and unit_to_um("") is None
