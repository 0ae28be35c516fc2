"""Detection block by block, so that no stage ever holds more than one block's working images.

A detector's pyramid level at scale ``s`` and the enhance chain's upscaled image both grow with the
image (``s^2`` times its pixels); on a 2048x2048 frame of 7 px disks the upscaled SEM-like image alone
took gigabytes (issue 16). :func:`detect_in_blocks` runs any ``detect(sub_image) -> (circles, scores)``
on overlapping blocks of the input image and keeps each circle in the one block whose *core* holds its
centre (widened by a quarter radius). The overlap (``margin``) is at least a particle diameter plus the
detector's context, so every particle whose centre lies in a core is wholly inside its block and is seen
as in a single pass; a particle kept by two blocks near a seam is answered once by the circle NMS.

Written here, not taken from a library: the blocks must carry circle detections with their own seam
rule; Dask's ``map_overlap`` returns arrays, not variable-length detection lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from srpsa.inference.nms import circle_nms


def block_grid(length: int, core: int) -> list[tuple[int, int]]:
    """Core intervals ``[a, b)`` of about equal length <= ``core`` that tile ``[0, length)``."""
    n = max(1, math.ceil(length / max(core, 1)))
    edges = np.linspace(0, length, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def detect_in_blocks(
    detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    image: np.ndarray,
    core: int,
    margin: int,
    nms_thresh: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Circles ``(N, 3)`` and scores of ``detect`` run block by block over ``image``; also the number of
    blocks. ``core`` is the block side without its margins (px of ``image``)."""
    h, w = image.shape[:2]
    circles, scores = [], []
    rows, cols = block_grid(h, core), block_grid(w, core)
    for y0, y1 in rows:
        for x0, x1 in cols:
            ya, yb, xa, xb = max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin), min(w, x1 + margin)
            c, s = detect(image[ya:yb, xa:xb])
            c = np.asarray(c, np.float64).reshape(-1, 3).copy()
            c[:, 0] += xa
            c[:, 1] += ya
            # pixel centres at integers: the core [a, b) owns centres in [a - 0.5, b - 0.5), widened by a
            # quarter radius (two blocks may place a seam particle's centre on either side of the seam;
            # the NMS below keeps one of the two); the outer blocks also own what lies beyond the border
            tol = 0.25 * c[:, 2]
            lx, hx = (-np.inf if x0 == 0 else x0 - 0.5), (np.inf if x1 == w else x1 - 0.5)
            ly, hy = (-np.inf if y0 == 0 else y0 - 0.5), (np.inf if y1 == h else y1 - 0.5)
            own = (c[:, 0] >= lx - tol) & (c[:, 0] < hx + tol) & (c[:, 1] >= ly - tol) & (c[:, 1] < hy + tol)
            circles.append(c[own])
            scores.append(np.asarray(s, np.float64).reshape(-1)[own])
    c, s = np.concatenate(circles), np.concatenate(scores)
    n_blocks = len(rows) * len(cols)
    if n_blocks > 1 and len(c):
        order = np.argsort(-s, kind="stable")
        c, s = circle_nms(c[order], s[order], nms_thresh)
    return c, s, n_blocks


#: Working-grid pixels one block may hold (a pyramid level, an upscaled image): 16 Mpx of float32 is
#: 64 MB a copy, and a stage keeps a few copies (input, network maps, refinement samples).
BLOCK_PIXELS = 16_000_000


def block_layout(shape: tuple[int, ...], scale: float, d_max_px: float, context_px: float = 0.0,
                 max_pixels: int = BLOCK_PIXELS) -> tuple[int, int] | None:
    """``(core, margin)`` in input px for work at ``scale`` x the input grid, or None when the whole
    image fits in one block. The margin holds the largest particle (``d_max_px``) plus ``context_px``."""
    h, w = shape[:2]
    if h * w * scale * scale <= max_pixels:
        return None
    margin = int(math.ceil(1.25 * d_max_px + context_px)) + 8
    side = int(math.sqrt(max_pixels) / scale)
    core = max(side - 2 * margin, 2 * margin, 64)
    return core, margin


def bounded_detect(detector, image: np.ndarray, diameter_range: tuple[float, float], *, refine: bool = True,
                   extend: bool | None = True, max_pixels: int = BLOCK_PIXELS) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """``detector.detect(image, diameter_range=...)``, block by block when its finest pyramid level
    (one more step when the pyramid may extend) would exceed ``max_pixels``; also the number of blocks and
    the detection info (``Detection.info``; of the first block when there are several)."""
    from srpsa.inference.scale import choose_scales

    inf = detector.cfg.inference
    scales = choose_scales(float(diameter_range[0]), float(diameter_range[1]), inf)
    top = min(max(scales) * (inf.scale_step if extend else 1.0), inf.max_scale)
    context = inf.tile_margin / max(min(scales), 1e-6)
    layout = block_layout(image.shape, top, diameter_range[1], context, max_pixels)
    infos: list[dict] = []

    def run(sub: np.ndarray):
        found = detector.detect(sub, diameter_range=diameter_range, refine=refine, extend=extend)
        infos.append(dict(found.info))
        return found.circles, found.scores

    if layout is None:
        c, s = run(image)
        return c, s, 1, infos[0]
    c, s, n = detect_in_blocks(run, image, *layout, nms_thresh=detector.nms_thresh)
    return c, s, n, infos[0] if infos else {}
