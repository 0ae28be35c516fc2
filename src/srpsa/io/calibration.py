"""Pixel size (um per pixel) from image metadata, with the source it came from.

Priority (first hit wins): an explicit override > OME-XML ``PhysicalSizeX`` > FEI/Thermo ``[Scan]
PixelWidth`` > Zeiss SEM ``ap_image_pixel_size`` > ImageJ ``unit`` + ``XResolution``. Plain TIFF
``XResolution``/``ResolutionUnit`` (DPI) tags are never used on their own: most software writes 72 or
300 DPI there whatever the pixel size is; ImageJ is the exception because it writes them with a length
unit in its ImageDescription.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tifffile

from srpsa.errors import InputError

if TYPE_CHECKING:  # images.py imports this module; the type is only needed for annotations
    from srpsa.io.images import LoadedImage

#: Values of ``LoadedImage.pixel_size_source`` (and of the source returned by :func:`resolve_pixel_size`).
SOURCES: tuple[str, ...] = ("override", "ome-xml", "fei", "zeiss", "imagej", "none")

# Length units -> micrometres. Exact, case-sensitive symbols first ("Mm" is a megametre, "mm" a
# millimetre, as in the OME UnitsLength enumeration); word forms are looked up lower-cased below.
_UNIT_SYMBOLS: dict[str, float] = {
    "km": 1e9, "m": 1e6, "dm": 1e5, "cm": 1e4, "mm": 1e3,
    "um": 1.0, "\u00b5m": 1.0, "\u03bcm": 1.0,  # micro sign and Greek mu
    "nm": 1e-3, "pm": 1e-6, "fm": 1e-9,
    "\u212b": 1e-4, "\u00c5": 1e-4,  # Angstrom sign and A-ring (same glyph)
    "in": 25400.0, "ft": 304800.0, "thou": 25.4, "mil": 25.4,
}
_UNIT_WORDS: dict[str, float] = {
    "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0, "micrometers": 1.0,
    "micrometres": 1.0, "nanometer": 1e-3, "nanometre": 1e-3, "nanometers": 1e-3, "nanometres": 1e-3,
    "millimeter": 1e3, "millimetre": 1e3, "millimeters": 1e3, "millimetres": 1e3,
    "centimeter": 1e4, "centimetre": 1e4, "meter": 1e6, "metre": 1e6, "meters": 1e6, "metres": 1e6,
    "angstrom": 1e-4, "angstroms": 1e-4, "inch": 25400.0, "inches": 25400.0,
    "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4,  # upper-case spellings such as "UM", "NM"
}

# Errors a malformed metadata block can raise inside tifffile's parsers or ours; such a block is
# skipped with a warning, and the next source is tried.
_METADATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ZeroDivisionError,
                    ET.ParseError, tifffile.TiffFileError)


def unit_to_um(unit: str) -> float | None:
    """Micrometres per ``unit`` (``"nm"`` -> 0.001), or None for a unit that is not a length.

    Accepts SI symbols from km to fm, ``um``/``µm``/``micron``, Angstrom (``Å``, ``angstrom``),
    inch/foot/thou and ImageJ's escaped ``\\u00B5m``.
    """
    u = unit.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    if u in _UNIT_SYMBOLS:
        return _UNIT_SYMBOLS[u]
    return _UNIT_WORDS.get(u.lower())


def is_pixel_size(value: object) -> bool:
    """True for a usable pixel size: a real number (not a bool), finite and > 0 (um/px).

    The one check of a pixel size; callers raise their own error naming their parameter or flag.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0



def missing_calibration_warning(path: str | os.PathLike[str]) -> str:
    """The warning recorded for an image whose metadata holds no trusted pixel size."""
    return (f"{Path(path).name}: no pixel size in the image metadata (looked for OME-XML, FEI, Zeiss and "
            "ImageJ calibration); sizes stay in pixels unless a pixel size (um/px) is given")


def _isotropy_warning(path: Path, source: str, x_um: float, y_um: float | None) -> list[str]:
    if y_um is None or not is_pixel_size(y_um) or math.isclose(x_um, y_um, rel_tol=1e-3):
        return []
    return [f"{path.name}: pixels are not square in the {source} metadata (x {x_um:.6g} um, "
            f"y {y_um:.6g} um); using the x size"]


def _from_ome(tif: tifffile.TiffFile, path: Path) -> tuple[float | None, list[str]]:
    if not tif.is_ome:
        return None, []
    root = ET.fromstring(tif.ome_metadata)
    # The first Pixels element belongs to the first Image, i.e. the page we read. Namespaces differ
    # between OME schema versions, so match the local tag name.
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None, []

    def size(axis: str) -> float | None:
        raw = pixels.attrib.get(f"PhysicalSize{axis}")
        if raw is None:
            return None
        unit = pixels.attrib.get(f"PhysicalSize{axis}Unit", "µm")  # the OME schema's default unit
        factor = unit_to_um(unit)
        if factor is None:
            raise ValueError(f"PhysicalSize{axis}Unit {unit!r} is not a length unit")
        return float(raw) * factor

    x = size("X")
    assert x is not None  # checked above
    return x, _isotropy_warning(path, "OME-XML", x, size("Y"))


def _as_float(value: Any) -> float:
    # tifffile converts INI values to numbers when it can; a value it left as text may carry a unit.
    if isinstance(value, str):
        return float(value.split()[0])
    return float(value)


def _from_fei(tif: tifffile.TiffFile, path: Path) -> tuple[float | None, list[str]]:
    meta = tif.fei_metadata
    if not meta:
        return None, []
    # [Scan] is the calibrated scan of the image; older FEI/Thermo ESEM files use [EScan] instead.
    for section in ("Scan", "EScan"):
        block = meta.get(section)
        if isinstance(block, dict) and "PixelWidth" in block:
            x = _as_float(block["PixelWidth"]) * 1e6  # metres -> um
            y = _as_float(block["PixelHeight"]) * 1e6 if "PixelHeight" in block else None
            return x, _isotropy_warning(path, "FEI", x, y)
    return None, []


_NUMBER_UNIT = re.compile(r"^\s*([-+0-9.eE]+)\s*(\S+)\s*$")


def _from_zeiss(tif: tifffile.TiffFile, path: Path) -> tuple[float | None, list[str]]:
    meta = tif.sem_metadata
    if not meta or "ap_image_pixel_size" not in meta:
        return None, []
    # tifffile parses "Image Pixel Size = 2.5 nm" into ("Image Pixel Size", 2.5, "nm"); when it cannot
    # split number and unit the text is left whole, e.g. ("Image Pixel Size", "2.5nm").
    entry = meta["ap_image_pixel_size"]
    if len(entry) >= 3:
        value, unit = float(entry[1]), str(entry[2])
    else:
        match = _NUMBER_UNIT.match(str(entry[1]))
        if match is None:
            raise ValueError(f"ap_image_pixel_size {entry[1]!r} has no unit")
        value, unit = float(match.group(1)), match.group(2)
    factor = unit_to_um(unit)
    if factor is None:
        raise ValueError(f"ap_image_pixel_size unit {unit!r} is not a length unit")
    return value * factor, []


def _from_imagej(tif: tifffile.TiffFile, path: Path) -> tuple[float | None, list[str]]:
    meta = tif.imagej_metadata
    if not meta or "unit" not in meta:
        return None, []  # without a unit ImageJ itself treats the image as uncalibrated
    factor = unit_to_um(str(meta["unit"]))
    if factor is None:  # "pixel", "pixels" or any non-length unit
        return None, []
    tags = tif.pages[0].tags
    if "XResolution" not in tags:
        return None, []
    num, den = tags["XResolution"].value  # pixels per unit, as a rational
    x = den / num * factor
    y = None
    if "YResolution" in tags:
        ynum, yden = tags["YResolution"].value
        y = yden / ynum * factor if ynum else None
    return x, _isotropy_warning(path, "ImageJ", x, y)


_READERS: tuple[tuple[str, Callable[[tifffile.TiffFile, Path], tuple[float | None, list[str]]]], ...] = (
    ("ome-xml", _from_ome),
    ("fei", _from_fei),
    ("zeiss", _from_zeiss),
    ("imagej", _from_imagej),
)


def pixel_size_from_tiff(tif: tifffile.TiffFile, path: str | os.PathLike[str]) -> tuple[float | None, str, list[str]]:
    """Pixel size stored in an open TIFF's metadata.

    Parameters
    ----------
    tif
        An open :class:`tifffile.TiffFile`.
    path
        The file's path, used in warning messages.

    Returns
    -------
    value : float or None
        Pixel size in um/px, or None when no trusted calibration is present.
    source : str
        ``"ome-xml"``, ``"fei"``, ``"zeiss"``, ``"imagej"`` or ``"none"``.
    warnings : list of str
        Problems met on the way (unreadable blocks, non-square pixels). A missing calibration is not
        among them: see :func:`missing_calibration_warning`.
    """
    p = Path(path)
    warnings: list[str] = []
    for source, reader in _READERS:
        try:
            value, notes = reader(tif, p)
        except _METADATA_ERRORS as exc:
            warnings.append(f"{p.name}: ignoring unreadable {source} calibration ({type(exc).__name__}: {exc})")
            continue
        if value is None:
            continue
        if not is_pixel_size(value):
            warnings.append(f"{p.name}: ignoring {source} pixel size {value!r} (not a positive number)")
            continue
        return value, source, warnings + notes
    return None, "none", warnings


def check_pixel_size(value: float, name: str = "pixel size") -> float:
    """Return ``value`` as a float after checking it is a finite positive number (um/px).

    Raises
    ------
    InputError
        If it is not.
    """
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: {value!r} is not a number (um per pixel)") from exc
    if not is_pixel_size(v):
        raise InputError(f"{name}: {value!r} must be a finite number > 0 (um per pixel)")
    return v


def resolve_pixel_size(loaded: LoadedImage, override: float | None) -> tuple[float | None, str]:
    """Pixel size to use for ``loaded``: the override if given, else the one read from its metadata.

    Parameters
    ----------
    loaded
        An image returned by :func:`srpsa.io.read_image`.
    override
        Pixel size in um/px given by the user, or None.

    Returns
    -------
    value : float or None
        um per pixel, None when neither an override nor metadata calibration exists.
    source : str
        ``"override"`` or ``loaded.pixel_size_source`` (``"ome-xml"``, ``"fei"``, ``"zeiss"``,
        ``"imagej"``, ``"none"``).

    Raises
    ------
    InputError
        If ``override`` is not a finite positive number.
    """
    if override is not None:
        return check_pixel_size(override, f"pixel size override for {Path(loaded.path).name}"), "override"
    return loaded.pixel_size_um, loaded.pixel_size_source
