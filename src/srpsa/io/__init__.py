"""Input/output: images with calibration, circle annotations, atomic writes.

See docs/formats.md for the supported formats, the gray conversion and the coordinate conventions.

The names below are imported on first use (PEP 562): ``import srpsa.io.atomic`` from another module
then does not pay for OpenCV, Pillow, tifffile and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # annotations
    "FORMATS": "annotations",
    "polygon_to_circle": "annotations",
    "read_circle_sets": "annotations",
    "read_circles": "annotations",
    "write_circle_sets": "annotations",
    "write_circles": "annotations",
    # atomic writes
    "atomic_open": "atomic",
    "atomic_path": "atomic",
    "atomic_write_bytes": "atomic",
    "atomic_write_text": "atomic",
    # calibration
    "SOURCES": "calibration",
    "check_pixel_size": "calibration",
    "missing_calibration_warning": "calibration",
    "pixel_size_from_tiff": "calibration",
    "resolve_pixel_size": "calibration",
    "unit_to_um": "calibration",
    # files
    "SUPPORTED_SUFFIXES": "files",
    "check_file": "files",
    "is_image_file": "files",
    "iter_image_files": "files",
    # images
    "LUMA_WEIGHTS": "images",
    "LoadedImage": "images",
    "load_array": "images",
    "to_gray": "images",
    "read_image": "images",
    "read_image_shape": "images",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
    from srpsa.io.annotations import (
        FORMATS,
        polygon_to_circle,
        read_circle_sets,
        read_circles,
        write_circle_sets,
        write_circles,
    )
    from srpsa.io.atomic import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text
    from srpsa.io.calibration import (
        SOURCES,
        check_pixel_size,
        missing_calibration_warning,
        pixel_size_from_tiff,
        resolve_pixel_size,
        unit_to_um,
    )
    from srpsa.io.files import SUPPORTED_SUFFIXES, check_file, is_image_file, iter_image_files
    from srpsa.io.images import LUMA_WEIGHTS, LoadedImage, load_array, read_image, read_image_shape, to_gray
