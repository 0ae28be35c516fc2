"""Run an image-to-image function on overlapping tiles and stitch the outputs with feathered weights.

Every model in srpsa (translation, super-resolution, detection) sees fixed-size tiles, while the inputs
are arbitrarily large micrographs (the paper's are 4752 x 3168 px). :func:`apply_tiled` is the one place
that splits, runs and stitches, so all models share the same border handling and memory bound.

Tiling scheme (per axis, in input pixels after ``pre_resize``):

- tiles of ``tile`` pixels start every ``tile - overlap`` pixels; the last tile is shifted inward so it
  ends at the image border (no padding when the image is at least one tile long);
- an axis shorter than one tile is reflect-padded to the tile length and the output cropped back;
- with a fractional ``scale`` (e.g. 0.25 for the detector's stride-4 output grid) tile starts are kept on
  multiples of ``q``, the smallest integer with ``q * scale`` integral, so every tile output lands on
  whole output pixels (the axis is reflect-padded at its far end to a multiple of ``q`` if needed).

Blending: each tile output is multiplied by a separable window and added into a float32 accumulator;
the accumulated weights normalise the sum. Along an edge that touches the image border the window is 1
(nothing to blend with, and the function's own border handling is what a whole-image run would use).
Along an edge inside the image the window is ``1e-8`` in a margin of ``margin`` pixels (outputs there
see the artificial tile border) and then rises linearly to 1 across the rest of the overlap. The window
is therefore > 0 everywhere and, for a translation-equivariant function whose receptive-field radius is
below ``margin``, the stitched result equals the whole-image result.

Memory: besides the input, only the output accumulator (float32), one float32 weight plane of the output
size and one batch of tiles are held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction

import cv2
import numpy as np

from srpsa.errors import InputError

__all__ = ["apply_tiled", "iter_tiles", "tile_starts"]

# Weight given to outputs in the discarded margin: > 0 so a weight sum can never be 0, small enough
# that a wrong value there cannot move the float32 result.
_MARGIN_WEIGHT = 1e-8


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles along one axis.

    Parameters
    ----------
    length
        Axis length in pixels.
    tile
        Tile length. An axis no longer than one tile gets the single start 0.
    overlap
        Pixels shared by neighbouring tiles (``0 <= overlap < tile``).
    align
        Starts are multiples of ``align``; the stride is rounded down to a multiple of it (so the
        overlap may grow slightly). ``length - tile`` must itself be a multiple of ``align``.

    Returns
    -------
    list of int
        Increasing starts; the last one is ``max(0, length - tile)``.
    """
    if length <= tile:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    last = length - tile
    starts = list(range(0, last, stride))
    starts.append(last)
    return starts


def iter_tiles(
    shape: tuple[int, ...], tile: int | tuple[int, int], overlap: int | tuple[int, int] = 0, align: int = 1
) -> Iterator[tuple[slice, slice]]:
    """Yield ``(row_slice, col_slice)`` of overlapping tiles covering an image of ``shape``.

    Tiles are ``tile`` pixels (clipped to the image when an axis is shorter than a tile), start every
    ``tile - overlap`` pixels and the last one in each axis is shifted inward to end at the border.
    Rows are the outer loop. Only the first two entries of ``shape`` are used.
    """
    th, tw = _pair(tile, "tile")
    oh, ow = _pair(overlap, "overlap")
    _check_tile(th, oh)
    _check_tile(tw, ow)
    height, width = int(shape[0]), int(shape[1])
    for y0 in tile_starts(height, th, oh, align):
        for x0 in tile_starts(width, tw, ow, align):
            yield slice(y0, min(y0 + th, height)), slice(x0, min(x0 + tw, width))


def apply_tiled(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    tile: int | tuple[int, int] = 512,
    overlap: int | tuple[int, int] = 64,
    scale: float = 1,
    pre_resize: float = 1.0,
    batch_size: int = 1,
    out_dtype: np.dtype | type = np.float32,
    margin: int | None = None,
) -> np.ndarray:
    """Apply ``fn`` to overlapping tiles of ``image`` and stitch the results with feathered blending.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` array (any real dtype; tiles are passed to ``fn`` in this dtype).
    fn
        With ``batch_size == 1``: maps one tile ``(h, w[, C])`` to ``(round(h*scale), round(w*scale)[, C'])``.
        With ``batch_size > 1``: maps a stack ``(B, h, w[, C])`` to ``(B, ho, wo[, C'])``. All tiles
        have the same shape (short images are padded), so batches can go straight to a model.
    tile, overlap
        Tile size and overlap in pixels of the (resized) input; an int or ``(rows, cols)``.
    scale
        Output pixels per input pixel of ``fn`` (4 for x4 super-resolution, 0.25 for the detector's grid).
    pre_resize
        Resize the input by this factor before tiling (the paper's 1024 -> 512 option is 0.5). The
        output then has ``round(round(H * pre_resize) * scale)`` rows (likewise columns).
    batch_size
        Tiles per call of ``fn``.
    out_dtype
        dtype of the returned array (accumulation is always float32).
    margin
        Pixels (input, after resize) at interior tile edges whose outputs get a negligible weight;
        default ``overlap // 4``. Must be below ``overlap / 2`` so every pixel keeps a full-weight tile.

    Returns
    -------
    numpy.ndarray
        The stitched output, ``(Ho, Wo)`` or ``(Ho, Wo, C')``.

    Raises
    ------
    InputError
        For an image that is not 2-D/3-D or empty, or invalid tiling arguments.
    ValueError
        If ``fn`` returns an array of the wrong shape (a bug in ``fn``, not in the input).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image: expected a non-empty (H, W) or (H, W, C) array, got shape {image.shape}")
    th, tw = _pair(tile, "tile")
    oh, ow = _pair(overlap, "overlap")
    _check_tile(th, oh)
    _check_tile(tw, ow)
    if not scale > 0 or not np.isfinite(scale):
        raise InputError(f"scale: must be a positive number, got {scale}")
    if not pre_resize > 0 or not np.isfinite(pre_resize):
        raise InputError(f"pre_resize: must be a positive number, got {pre_resize}")
    if batch_size < 1:
        raise InputError(f"batch_size: must be >= 1, got {batch_size}")
    mh = oh // 4 if margin is None else int(margin)
    mw = ow // 4 if margin is None else int(margin)
    if mh < 0 or mw < 0 or (oh > 0 and 2 * mh >= oh) or (ow > 0 and 2 * mw >= ow):
        raise InputError(f"margin: must be >= 0 and below overlap/2, got {margin} with overlap {overlap}")

    if pre_resize != 1.0:
        image = _resize(image, pre_resize)
    height, width = image.shape[:2]

    q = _alignment(scale)
    if th % q or tw % q:
        raise InputError(f"tile: {tile} times scale {scale} is not a whole number of output pixels")
    # Virtual padded size: at least one tile, and a multiple of q so all tile starts are aligned.
    ph = max(th, -(-height // q) * q)
    pw = max(tw, -(-width // q) * q)
    oh_out, ow_out = round(th * scale), round(tw * scale)
    ys, xs = tile_starts(ph, th, oh, q), tile_starts(pw, tw, ow, q)
    wy = {y0: _window(oh_out, round(oh * scale), round(mh * scale), y0 > 0, y0 + th < ph) for y0 in ys}
    wx = {x0: _window(ow_out, round(ow * scale), round(mw * scale), x0 > 0, x0 + tw < pw) for x0 in xs}

    acc: np.ndarray | None = None
    weight = np.zeros((round(ph * scale), round(pw * scale)), np.float32)
    batch: list[tuple[int, int]] = []

    def flush() -> None:
        nonlocal acc
        tiles = [_extract(image, y0, x0, th, tw) for y0, x0 in batch]
        outs = fn(np.stack(tiles)) if batch_size > 1 else fn(tiles[0])[None]
        outs = np.asarray(outs)
        if outs.shape[0] != len(batch) or outs.shape[1:3] != (oh_out, ow_out) or outs.ndim not in (3, 4):
            got = outs.shape if batch_size > 1 else outs.shape[1:]
            raise ValueError(f"fn returned shape {got}; expected {(oh_out, ow_out)} (+ channels) per tile")
        if acc is None:
            acc = np.zeros(weight.shape + outs.shape[3:], np.float32)
        for (y0, x0), out in zip(batch, outs):
            w2 = np.outer(wy[y0], wx[x0])
            ry, rx = round(y0 * scale), round(x0 * scale)
            region = (slice(ry, ry + oh_out), slice(rx, rx + ow_out))
            acc[region] += out * (w2 if out.ndim == 2 else w2[..., None])
            weight[region] += w2
        batch.clear()

    for y0 in ys:
        for x0 in xs:
            batch.append((y0, x0))
            if len(batch) == batch_size:
                flush()
    if batch:
        flush()
    assert acc is not None  # at least one tile always exists

    acc /= weight if acc.ndim == 2 else weight[..., None]
    del weight
    out_h, out_w = round(height * scale), round(width * scale)
    if acc.shape[:2] != (out_h, out_w):
        acc = acc[:out_h, :out_w]
    return np.ascontiguousarray(acc, dtype=out_dtype)


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{name}: expected an int or (rows, cols), got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _check_tile(tile: int, overlap: int) -> None:
    if tile < 1:
        raise InputError(f"tile: must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise InputError(f"overlap: must be >= 0 and smaller than the tile ({tile}), got {overlap}")


def _alignment(scale: float) -> int:
    """Smallest q such that q * scale is (close to) an integer, so tile origins map to whole pixels."""
    frac = Fraction(scale).limit_denominator(64)
    if abs(float(frac) - scale) > 1e-9 * max(1.0, scale):
        raise InputError(f"scale: {scale} is not a ratio of small integers (needed to align output tiles)")
    return frac.denominator


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # INTER_AREA averages when shrinking (no aliasing); linear when enlarging (no overshoot).
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    src = image.astype(np.float32, copy=False) if image.dtype not in (np.uint8, np.uint16, np.float32) else image
    out = cv2.resize(src, size, interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[..., None]
    return out


def _extract(image: np.ndarray, y0: int, x0: int, th: int, tw: int) -> np.ndarray:
    """Copy a tile, reflect-padding the part that lies beyond the bottom/right of the image."""
    height, width = image.shape[:2]
    patch = image[y0 : min(y0 + th, height), x0 : min(x0 + tw, width)]
    pad_y, pad_x = th - patch.shape[0], tw - patch.shape[1]
    if pad_y or pad_x:
        widths = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (image.ndim - 2)
        # 'symmetric' repeats the edge pixel but, unlike 'reflect', works for a 1-pixel axis.
        mode = "reflect" if min(patch.shape[:2]) > 1 else "symmetric"
        return np.pad(patch, widths, mode=mode)
    return np.array(patch, copy=True)


def _window(length: int, overlap: int, margin: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D blending weights for a tile of ``length`` output pixels.

    Edges inside the image (``ramp_start`` / ``ramp_end``) get ``_MARGIN_WEIGHT`` over ``margin`` pixels
    and then a linear rise to 1 over the remaining ``overlap - 2 * margin`` pixels; edges on the image
    border keep weight 1.
    """
    w = np.ones(length, np.float32)
    if overlap <= 0:
        return w
    ramp = max(1, overlap - 2 * margin)
    i = np.arange(length, dtype=np.float64)
    # (i - margin + 0.5) / ramp is the fraction of the ramp a pixel centre has climbed.
    rise = np.clip((i - margin + 0.5) / ramp, _MARGIN_WEIGHT, 1.0).astype(np.float32)
    if ramp_start:
        w = np.minimum(w, rise)
    if ramp_end:
        w = np.minimum(w, rise[::-1])
    return w
