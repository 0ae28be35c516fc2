"""Read microscope images and normalise them to float32 gray in [0, 1], with their pixel size.

Conversion rules (also in docs/formats.md):

- integers are divided by the largest value of their stored bit depth (255, 65535, or 2**BitsPerSample - 1
  for a TIFF such as 12-bit), never by the image's own maximum, so intensities of images taken with the
  same settings stay comparable; signed integers are clipped at 0 first;
- floats already within [0, 1] are kept; otherwise they are min-max rescaled, with a warning; NaN or
  infinite values are an error;
- colour is turned into gray with the ITU-R BT.601 luma weights 0.299 R + 0.587 G + 0.114 B, applied to
  the stored (gamma-encoded) values; the colour image is kept in ``LoadedImage.rgb``;
- alpha is dropped, not composited: transparent pixels keep their stored colour (a warning says so when
  the image is not fully opaque);
- a multi-page file gives its first page, with a warning; stored pixel order is kept (EXIF orientation
  is ignored, so annotations made on the stored pixels stay aligned).

TIFF pixels are decoded with tifffile (which also gives the calibration metadata); compressions it
cannot decode without the optional ``imagecodecs`` package (LZW, JPEG) fall back to Pillow. PNG, JPEG
and BMP are decoded with Pillow, except 16-bit colour PNG, which Pillow reduces to 8 bits and OpenCV
keeps.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from srpsa.errors import InputError
from srpsa.io.calibration import check_pixel_size, missing_calibration_warning, pixel_size_from_tiff
from srpsa.io.contrast import low_contrast_warning
from srpsa.io.files import SUPPORTED_SUFFIXES, TIFF_SUFFIXES, check_file
from srpsa.io.guard import DEFAULT_MAX_PIXELS, check_declared_size, pillow_limit

#: ITU-R BT.601 luma weights for R, G, B (the same as OpenCV's and Pillow's RGB -> L conversion).
#: skimage.color.rgb2gray uses BT.709 instead; we state ours explicitly so the choice is visible.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

# Decoder errors that mean "this file is not a valid image of its kind". Pillow raises SyntaxError for
# some broken PNG chunks and DecompressionBombError (not an OSError) for absurd sizes.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError,
                  Image.DecompressionBombError, tifffile.TiffFileError)


@dataclass
class LoadedImage:
    """An image normalised for processing, with its calibration.

    Attributes
    ----------
    data
        float32 gray image, shape (H, W), values in [0, 1].
    rgb
        float32 colour image, shape (H, W, 3), values in [0, 1], or None for a gray file.
    path
        The file read.
    shape
        ``(H, W)``.
    bit_depth
        Bits per sample as stored (1, 8, 16, 32, 64, or e.g. 12 for a 12-bit TIFF).
    pixel_size_um
        Pixel size in um/px, or None if unknown.
    pixel_size_source
        Where it came from: ``"override"``, ``"ome-xml"``, ``"fei"``, ``"zeiss"``, ``"imagej"`` or ``"none"``.
    warnings
        One-line notes on what was done to the data (first page of many, rescaled floats, dropped
        alpha, missing calibration ...).
    """

    data: np.ndarray
    rgb: np.ndarray | None
    path: Path
    shape: tuple[int, int]
    bit_depth: int
    pixel_size_um: float | None
    pixel_size_source: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Pixels:
    """Decoded samples before normalisation: gray (H, W) or RGB (H, W, 3), plus optional alpha."""

    colour: np.ndarray
    alpha: np.ndarray | None
    full_scale: float | None  # the value meaning "full intensity" for unsigned integers
    bit_depth: int


class _NeedsPillow(Exception):
    """tifffile read the TIFF structure but cannot turn this page into gray/RGB itself."""


def _reason(exc: BaseException) -> str:
    """An exception as one short line for a message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _unsigned_full_scale(dtype: np.dtype, bits: int | None = None) -> float:
    if bits is not None and 1 < bits < dtype.itemsize * 8:
        return float(2**bits - 1)
    return float(np.iinfo(dtype).max)


def _split(arr: np.ndarray, has_alpha: bool, colour: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Split (H, W, S) samples into colour (gray or the first three) and alpha (the next one)."""
    if arr.ndim == 2:
        return arr, None
    n = 3 if colour else 1
    main = arr[..., :n] if colour else arr[..., 0]
    alpha = arr[..., n] if has_alpha and arr.shape[-1] > n else None
    return main, alpha


# --------------------------------------------------------------------------------------------- TIFF
_ALPHA_EXTRASAMPLES = {1, 2}  # associated and unassociated alpha; 0 = unspecified extra channel


def _tiff_page_pixels(page: tifffile.TiffPage, path: Path, warnings: list[str]) -> _Pixels:
    photometric = int(page.photometric)
    if photometric not in (0, 1, 2, 3):  # MINISWHITE, MINISBLACK, RGB, PALETTE
        raise _NeedsPillow(f"photometric {page.photometric!r}")
    arr = page.asarray()
    axes = page.axes
    # Keep Y, X and samples; take the first plane of any other axis (e.g. a volumetric page's Z).
    for i in reversed(range(len(axes))):
        if axes[i] not in "YXS":
            warnings.append(f"{path.name}: page has a {axes[i]} axis of length {arr.shape[i]}; using the first plane")
            arr = np.take(arr, 0, axis=i)
    axes = "".join(a for a in axes if a in "YXS")
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    extras = [int(e) for e in (page.extrasamples or ())]
    has_alpha = bool(extras) and extras[0] in _ALPHA_EXTRASAMPLES
    bits = int(page.bitspersample)

    if photometric == 3:
        if page.colormap is None:
            raise _NeedsPillow("palette image without a colour map")
        index = arr if arr.ndim == 2 else arr[..., 0]
        rgb = np.ascontiguousarray(np.moveaxis(np.take(page.colormap, index, axis=1), 0, -1))  # (3, N) lookup
        # Some writers store 8-bit values in the (16-bit by specification) colour map.
        full = 255.0 if rgb.max() <= 255 else 65535.0
        return _Pixels(rgb, None, full, 8 if full == 255.0 else 16)

    colour, alpha = _split(arr, has_alpha, colour=photometric == 2)
    if photometric == 2 and colour.ndim != 3:
        raise _NeedsPillow("RGB page without three samples")
    full = _unsigned_full_scale(colour.dtype, bits) if colour.dtype.kind == "u" else None
    if photometric == 0:  # MINISWHITE: 0 is white
        if colour.dtype.kind == "u":
            colour = full - colour
        elif colour.dtype.kind == "b":
            colour = ~colour
        else:
            raise _NeedsPillow("MinIsWhite with signed or float samples")
    return _Pixels(colour, alpha, full, bits)


def _check_tiff_complete(page: tifffile.TiffPage, path: Path) -> None:
    # tifffile does not fail on strips past the end of a cut file; it may return zeros instead.
    size = path.stat().st_size
    for offset, count in zip(page.dataoffsets, page.databytecounts):
        if count and offset + count > size:
            raise InputError(f"{path}: truncated TIFF (image data runs past the end of the file)")


def _read_tiff(path: Path, warnings: list[str]) -> tuple[_Pixels, float | None, str]:
    try:
        tif = tifffile.TiffFile(path)
    except _DECODE_ERRORS as exc:
        raise InputError(f"{path}: not a readable TIFF file ({_reason(exc)})") from exc
    with tif:
        try:
            n_pages = len(tif.pages)
            page = tif.pages[0]
        except _DECODE_ERRORS as exc:
            raise InputError(f"{path}: corrupt TIFF structure ({_reason(exc)})") from exc
        value, source, notes = pixel_size_from_tiff(tif, path)
        warnings.extend(notes)
        if n_pages > 1:
            warnings.append(f"{path.name}: file has {n_pages} pages; using the first")
        _check_tiff_complete(page, path)
        try:
            pixels = _tiff_page_pixels(page, path, warnings)
        except (_NeedsPillow, *_DECODE_ERRORS) as exc:
            # Typically a compression that needs the optional imagecodecs package (LZW, JPEG) or a
            # colour space (CMYK, YCbCr) that Pillow converts for us.
            try:
                pixels = _read_pillow(path, warnings, count_frames=False)
            except InputError as pil_exc:
                raise InputError(f"{path}: cannot decode TIFF image data ({_reason(exc)})") from pil_exc
    return pixels, value, source


# ------------------------------------------------------------------------------- PNG / JPEG / BMP
def _png_is_16bit_colour(path: Path) -> bool:
    """Whether a PNG's header says 16-bit RGB, RGBA or gray+alpha, which Pillow cuts to 8 bits."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return False
    bit_depth, colour_type = head[24], head[25]
    return bit_depth == 16 and colour_type in (2, 4, 6)


def _read_opencv_16bit(path: Path) -> _Pixels:
    # imdecode from bytes rather than imread(path): imread cannot open non-ASCII paths on Windows.
    arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"{path}: corrupt 16-bit PNG (OpenCV could not decode it)")
    full = 65535.0
    if arr.ndim == 2:
        return _Pixels(arr, None, full, 16)
    if arr.shape[-1] == 2:  # gray + alpha
        return _Pixels(arr[..., 0], arr[..., 1], full, 16)
    rgb = arr[..., 2::-1]  # OpenCV stores BGR(A)
    alpha = arr[..., 3] if arr.shape[-1] == 4 else None
    if alpha is not None and np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        # OpenCV expands gray+alpha to BGRA; give it back as gray.
        return _Pixels(np.ascontiguousarray(rgb[..., 0]), alpha, full, 16)
    return _Pixels(np.ascontiguousarray(rgb), alpha, full, 16)


_PILLOW_GRAY_MODES = {"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def _pillow_pixels(im: Image.Image) -> _Pixels:
    mode = im.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("La",):
        im = im.convert("LA")
    elif mode in ("RGBa",):
        im = im.convert("RGBA")
    elif mode not in _PILLOW_GRAY_MODES | {"LA", "RGB", "RGBA"}:
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...
    arr = np.asarray(im)
    if not arr.dtype.isnative:  # "I;16B" arrives big-endian
        arr = arr.astype(arr.dtype.newbyteorder("="))
    bits = 1 if arr.dtype == bool else arr.dtype.itemsize * 8
    full = float(np.iinfo(arr.dtype).max) if arr.dtype.kind == "u" else None
    if im.mode == "LA":
        return _Pixels(arr[..., 0], arr[..., 1], full, bits)
    if im.mode == "RGBA":
        return _Pixels(arr[..., :3], arr[..., 3], full, bits)
    return _Pixels(arr, None, full, bits)


def _read_pillow(path: Path, warnings: list[str], count_frames: bool = True) -> _Pixels:
    try:
        with Image.open(path) as im:
            n_frames = getattr(im, "n_frames", 1)
            im.load()  # decode now: a truncated file fails here rather than later
            pixels = _pillow_pixels(im)
    except UnidentifiedImageError as exc:
        raise InputError(f"{path}: not an image file (content is not a format Pillow recognises)") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: image too large to decode safely ({_reason(exc)})") from exc
    except _DECODE_ERRORS as exc:
        raise InputError(f"{path}: truncated or corrupt image ({_reason(exc)})") from exc
    if count_frames and n_frames > 1:
        warnings.append(f"{path.name}: file has {n_frames} frames; using the first")
    if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
        pixels = _read_opencv_16bit(path)  # Pillow validated the file above; OpenCV keeps 16 bits
    return pixels


# ---------------------------------------------------------------------------------- normalisation
def _to_unit(samples: np.ndarray, full_scale: float | None, path: Path, warnings: list[str],
             what: str = "image") -> np.ndarray:
    """Samples of any dtype -> float32 in [0, 1] (see the module docstring for the rules)."""
    kind = samples.dtype.kind
    if kind == "b":
        return samples.astype(np.float32)
    if kind == "u":
        scale = full_scale if full_scale is not None else float(np.iinfo(samples.dtype).max)
        return np.clip(samples.astype(np.float32) / np.float32(scale), 0.0, 1.0)
    if kind == "i":
        if samples.min() < 0:
            warnings.append(f"{path.name}: negative values in the signed {what} were clipped to 0")
        return np.clip(samples.astype(np.float32) / np.float32(np.iinfo(samples.dtype).max), 0.0, 1.0)
    if kind == "f":
        out = samples.astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError(f"{path}: {what} contains NaN or infinite values")
        lo, hi = float(out.min()), float(out.max())
        if lo >= 0.0 and hi <= 1.0:
            return out
        if hi > lo:
            warnings.append(f"{path.name}: float {what} values span [{lo:.6g}, {hi:.6g}], outside [0, 1]; "
                            "rescaled min-max to [0, 1]")
            return ((out - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)
        warnings.append(f"{path.name}: constant float {what} ({lo:.6g}) outside [0, 1]; set to 0")
        return np.zeros_like(out)
    raise InputError(f"{path}: unsupported sample type {samples.dtype} (expected integer or real values)")


def _normalise(pixels: _Pixels, path: Path, warnings: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    colour = pixels.colour
    if colour.ndim not in (2, 3) or (colour.ndim == 3 and colour.shape[-1] != 3):
        raise InputError(f"{path}: unsupported image layout {colour.shape} (expected gray or RGB)")
    if colour.shape[0] == 0 or colour.shape[1] == 0:
        raise InputError(f"{path}: image has no pixels (shape {colour.shape})")
    if pixels.alpha is not None:
        alpha = _to_unit(pixels.alpha, pixels.full_scale, path, [], what="alpha channel")
        if float(alpha.min()) < 1.0:
            warnings.append(f"{path.name}: alpha channel ignored (the image has transparent pixels; "
                            "their stored colour is used)")
    values = _to_unit(colour, pixels.full_scale, path, warnings)
    if values.ndim == 2:
        return np.ascontiguousarray(values), None
    gray = values @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    # The weights sum to 1 only up to rounding; clip so gray stays within [0, 1].
    return np.clip(gray, 0.0, 1.0).astype(np.float32), np.ascontiguousarray(values)


# ------------------------------------------------------------------------------------------ public
def read_image(path: str | os.PathLike[str], *, pixel_size_um: float | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as float32 gray in [0, 1], with its pixel size.

    Parameters
    ----------
    path
        A PNG, JPEG, BMP or TIFF/OME-TIFF file (see :data:`srpsa.io.SUPPORTED_SUFFIXES`).
    pixel_size_um
        Optional pixel size override in um/px; it takes priority over any metadata calibration and is
        recorded with source ``"override"``.
    max_pixels
        Largest declared size (pixels of the first page) that is decoded; larger images are refused
        from their header, before any decoding (:mod:`srpsa.io.guard`).

    Returns
    -------
    LoadedImage
        Gray data, optional RGB, calibration and warnings.

    Raises
    ------
    InputError
        Missing file, directory, empty file, unsupported suffix, content that is not a (complete) image,
        NaN/infinite values, or an invalid ``pixel_size_um``.
    """
    p = check_file(path, "image")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{p}: unsupported image suffix {p.suffix or '(none)'!r} "
                         f"(supported: {', '.join(SUPPORTED_SUFFIXES)})")
    if pixel_size_um is not None:
        pixel_size_um = check_pixel_size(pixel_size_um, f"pixel size override for {p.name}")
    warnings: list[str] = []
    check_declared_size(p, suffix in TIFF_SUFFIXES, max_pixels)
    with pillow_limit(max_pixels):
        if suffix in TIFF_SUFFIXES:
            pixels, value, source = _read_tiff(p, warnings)
        else:
            # PNG/JPEG/BMP carry at most a DPI value (pHYs, JFIF), which is not a trusted calibration.
            pixels = _read_pillow(p, warnings)
            value, source = None, "none"
    gray, rgb = _normalise(pixels, p, warnings)
    note = low_contrast_warning(gray, pixels.bit_depth, p.name)
    if note:
        warnings.append(note)

    if pixel_size_um is not None:
        if value is not None and abs(value - pixel_size_um) > 1e-3 * value:
            warnings.append(f"{p.name}: pixel size override {pixel_size_um:.6g} um differs from the "
                            f"{source} metadata ({value:.6g} um); using the override")
        value, source = pixel_size_um, "override"
    elif value is None:
        warnings.append(missing_calibration_warning(p))
    return LoadedImage(data=gray, rgb=rgb, path=p, shape=(int(gray.shape[0]), int(gray.shape[1])),
                       bit_depth=pixels.bit_depth, pixel_size_um=value, pixel_size_source=source,
                       warnings=warnings)


def to_gray(image: np.ndarray) -> np.ndarray:
    """float32 ``(H, W)`` from a gray or colour array: the project's one gray conversion.

    Colour ``(H, W, 3|4)`` becomes BT.601 luma (:data:`LUMA_WEIGHTS`, alpha dropped); integers are
    divided by their type's maximum; floats are kept as they are (callers pass [0, 1] data). Already
    gray float32 input is returned as is (no copy). Raises :class:`InputError` for another layout, no
    pixels or NaN/infinite values.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3]
        if arr.dtype.kind in "ui":
            arr = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
        arr = arr.astype(np.float32, copy=False) @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    elif arr.ndim != 2:
        raise InputError(f"image must be (H, W) gray or (H, W, 3) RGB, got shape {arr.shape}")
    elif arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    if arr.size == 0:
        raise InputError("image is empty")
    arr = np.asarray(arr, np.float32)
    if not np.all(np.isfinite(arr)):
        raise InputError("image contains NaN or infinite values")
    return arr


def load_array(array: np.ndarray, *, pixel_size_um: float | None = None, name: str = "array") -> LoadedImage:
    """An in-memory image (``(H, W)`` gray or ``(H, W, 3|4)`` colour; bool, integer or float samples)
    normalised by the same rules as :func:`read_image`, so an array and the file it came from give the
    same gray data. Integers are scaled by their type's maximum (no bit depth is stored in an array).

    ``pixel_size_um`` (um/px) is the calibration; without it the result is uncalibrated (sizes in px,
    with the same warning a file without calibration gets). ``name`` names the image in warnings.

    Raises
    ------
    InputError
        Not an array of that layout, no pixels, NaN/infinite values, or an invalid ``pixel_size_um``.
    """
    arr = np.asarray(array)
    label = Path(name)
    if arr.dtype.kind not in "buif":
        raise InputError(f"image: unsupported sample type {arr.dtype} (expected integer or real values)")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise InputError(f"image must be (H, W) gray or (H, W, 3) RGB, got shape {arr.shape}")
    if pixel_size_um is not None:
        pixel_size_um = check_pixel_size(pixel_size_um, "pixel_size_um")
    warnings: list[str] = []
    colour, alpha = (arr, None) if arr.ndim == 2 else (arr[..., :3], arr[..., 3] if arr.shape[-1] == 4 else None)
    bits = 1 if arr.dtype.kind == "b" else arr.dtype.itemsize * 8
    gray, rgb = _normalise(_Pixels(colour, alpha, None, bits), label, warnings)
    note = low_contrast_warning(gray, bits, name)
    if note:
        warnings.append(note)
    source = "override" if pixel_size_um is not None else "none"
    if pixel_size_um is None:
        warnings.append(missing_calibration_warning(label))
    return LoadedImage(data=gray, rgb=rgb, path=label, shape=(int(gray.shape[0]), int(gray.shape[1])),
                       bit_depth=bits, pixel_size_um=pixel_size_um, pixel_size_source=source, warnings=warnings)


def read_image_shape(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header without decoding the pixels.

    Raises
    ------
    InputError
        If the file is missing or not a readable image.
    """
    p = check_file(path, "image")
    try:
        if p.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(p) as tif:
                page = tif.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        with Image.open(p) as im:
            width, height = im.size
            return int(height), int(width)
    except _DECODE_ERRORS as exc:
        raise InputError(f"{p}: not a readable image ({_reason(exc)})") from exc
