"""Refuse images whose declared size is too large, before a single pixel is decoded.

A few kilobytes of compressed TIFF tiles or PNG rows can declare 60000 x 60000 pixels; decoding them
would take gigabytes. The declared size is read from the header only (tifffile's page tags, Pillow's
``Image.open``, which parses the header and decodes nothing) and compared with one pixel limit, the
same for every format: by default Pillow's own refusal threshold (``2 * PIL.Image.MAX_IMAGE_PIXELS``,
178,956,970 px, about 13378^2). ``srpsa analyze --max-pixels N`` changes it, and Pillow is told the
same limit while it decodes, so one number governs every decoder.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import tifffile
from PIL import Image

from srpsa.errors import InputError

#: Pillow's own refusal threshold (DecompressionBombError above 2 * MAX_IMAGE_PIXELS = 2 * 89,478,485).
DEFAULT_MAX_PIXELS: int = 178_956_970

# Pillow keeps its limit as a module global. Two threads of one process (Dask's threaded scheduler, a
# server) that each changed and restored it could interleave and leave another thread's value behind for
# good; the lock makes change-decode-restore one step. Reentrant: declared_pixels nests inside a read.
_PILLOW_LOCK = threading.RLock()


def declared_pixels(path: Path, tiff: bool) -> int:
    """Pixels per plane times planes that ``path``'s header declares for the first page/frame.

    Raises whatever the header parser raises for a broken file; the caller's decoder reports that.
    """
    if tiff:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return int(page.imagelength) * int(page.imagewidth) * max(1, int(page.imagedepth or 1))
    with pillow_limit(None), Image.open(path) as im:  # header only; the limit is ours, checked below
        width, height = im.size
        return int(width) * int(height)


def check_declared_size(path: Path, tiff: bool, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise :class:`InputError` if the image declares more than ``max_pixels`` pixels.

    A header that cannot be parsed is left to the decoder, which names the problem precisely.
    """
    try:
        n = declared_pixels(path, tiff)
    except Exception:  # noqa: BLE001 - broken headers are reported by the real decoder next
        return
    if n > max_pixels:
        side = int(math.sqrt(n))
        raise InputError(
            f"{path}: image declares {n:,} pixels (about {side}^2), more than the limit of {max_pixels:,} "
            "(--max-pixels N raises it)"
        )


@contextlib.contextmanager
def pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Let Pillow decode up to ``max_pixels`` (None: no limit) inside the block, then restore its own.

    Pillow keeps the limit as a module global; a lock serialises the blocks of all threads so each
    restores exactly what it found.
    """
    with _PILLOW_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; our check already refused.
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before
