"""Report figures: PSD panels (Q0 and Q3), detection overlay, and the paper's Fig. 9 KDE comparison.

Plots use matplotlib's object API with the Agg canvas (no pyplot state, safe in worker processes);
the overlay is drawn with OpenCV on a uint8 copy because tens of thousands of circles as matplotlib
patches would take minutes. Every file is written through :func:`srpsa.io.atomic.atomic_path`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from srpsa.errors import InputError
from srpsa.io.atomic import atomic_path
from srpsa.psd.kde import kde
from srpsa.psd.statistics import size_statistics, validate_diameters, weighted_percentile, weights_for

# Fixed size (no bbox_inches="tight") so the PNG has predictable pixel dimensions: 1320 x 540 and 900 x 540.
PSD_FIGSIZE = (11.0, 4.5)
COMPARISON_FIGSIZE = (7.5, 4.5)
DPI = 120

# BGR colours for the overlay: interior particles green (or coloured by score), border particles magenta.
_INTERIOR_BGR = (60, 220, 60)
_EDGE_BGR = (255, 0, 255)
_FOV_BGR = (255, 255, 0)  # cyan: the field of view of --roi auto
# Sub-pixel drawing: OpenCV takes fixed-point coordinates with this many fractional bits.
_SHIFT = 4


def unit_label(unit: str) -> str:
    """Axis label form of a unit string (``"um"`` -> ``"µm"``)."""
    return "\u00b5m" if unit in ("um", "µm", "micron", "microns") else unit


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    canvas = FigureCanvasAgg(fig)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in canvas.get_supported_filetypes():
        raise InputError(f"cannot write a figure with the extension of {path}; use .png, .svg or .pdf")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format=fmt)


def _psd_panel(ax, d: np.ndarray, weighting: str, unit: str, ci: Mapping | None = None) -> None:
    """Histogram + KDE (left axis, density) and cumulative undersize (right axis, %) of one weighting."""
    name = "Q0 (number)" if weighting == "number" else "Q3 (volume)"
    ax.set_title(f"{name}-weighted")
    ax.set_xlabel(f"Equivalent circle diameter ({unit_label(unit)})")
    ax.set_ylabel("Density")
    if d.size == 0:
        ax.text(0.5, 0.5, "no particles", ha="center", va="center", transform=ax.transAxes)
        return
    w = weights_for(d, weighting)
    stats = size_statistics(d, weighting=weighting, unit=unit)
    # Bin edges come from the number list for both panels so Q0 and Q3 bars are comparable.
    edges = np.histogram_bin_edges(d, bins="auto") if np.ptp(d) > 0 else np.array([d[0] * 0.95, d[0] * 1.05])
    if edges.size > 202:  # 'auto' can explode for long tails; a readable histogram needs few bars
        edges = np.linspace(d.min(), d.max(), 201)
    ax.hist(d, bins=edges, weights=w, density=True, color="0.8", edgecolor="0.55", linewidth=0.5, label="histogram")
    grid, dens, method = kde(d, weights=w)
    ax.plot(grid, dens, color="C0", linewidth=1.8, label=f"KDE ({method.split(' (')[0]})")
    ax.axvline(stats.mode, color="C0", linestyle=":", linewidth=1)
    ax.set_ylim(bottom=0)
    ax.set_xlim(max(0.0, float(grid[0])), float(grid[-1]))

    cum = ax.twinx()
    order = np.argsort(d, kind="stable")
    xs = d[order]
    ws = np.ones_like(xs) if w is None else w[order]
    # The plotted curve is exactly the interpolation that defines D10/D50/D90 (midpoint positions).
    pos = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    cum.plot(xs, 100.0 * pos, color="C3", linewidth=1.4, label="cumulative undersize")
    for q in (10.0, 50.0, 90.0):
        dq = float(weighted_percentile(d, q, weights=w))
        cum.plot([dq, dq], [0, q], color="C3", linestyle="--", linewidth=0.8)
        cum.annotate(f"D{q:.0f}", (dq, q), xytext=(3, 2), textcoords="offset points", fontsize=7, color="C3")
        lo_hi = (ci or {}).get(f"d{q:.0f}")
        if lo_hi and all(v is not None and np.isfinite(v) for v in lo_hi):  # 95 % bootstrap CI whisker
            cum.errorbar([dq], [q], xerr=[[max(dq - lo_hi[0], 0.0)], [max(lo_hi[1] - dq, 0.0)]], fmt="none", ecolor="C3", capsize=3, linewidth=1)
    cum.set_ylim(0, 100)
    cum.set_ylabel("Cumulative undersize (%)")

    mean_name = "mean" if weighting == "number" else "D[4,3]"
    text = (
        f"n = {stats.n}\n{mean_name} = {stats.mean:.3g}\nD10 = {stats.d10:.3g}\nD50 = {stats.d50:.3g}\n"
        f"D90 = {stats.d90:.3g}\nmode = {stats.mode:.3g}\nCV = {stats.cv:.3g} %"
    )
    ax.text(0.98, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    handles = ax.get_legend_handles_labels()[0] + cum.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right", fontsize=8, framealpha=0.8)


def plot_psd(
    diameters: np.ndarray, path: str | os.PathLike[str], *, unit: str = "um", title: str | None = None,
    ci: Mapping[str, Mapping] | None = None,
) -> None:
    """Write the particle size distribution figure: Q0 (left) and Q3 (right) panels.

    Each panel shows the histogram and the ISJ KDE (density, left axis) and the cumulative undersize
    curve with the D10/D50/D90 marks (percent, right axis). An empty sample gives labelled empty panels.
    ``ci`` ({"number"|"volume": {"d10": (lo, hi), ...}}, as in summary.json) adds 95 % CI whiskers.
    """
    d = validate_diameters(diameters)
    fig = Figure(figsize=PSD_FIGSIZE, dpi=DPI)
    axes = fig.subplots(1, 2)
    for ax, weighting in zip(axes, ("number", "volume")):
        _psd_panel(ax, d, weighting, unit, (ci or {}).get(weighting))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_kde_comparison(
    series: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    unit: str = "um",
    title: str | None = None,
    weighting: str = "number",
) -> None:
    """Write ISJ KDE curves of several size samples on one axis (paper Fig. 9: GT vs predictions).

    ``series`` maps a legend label (e.g. ``"GT (SEM)"``, ``"SR-PSA"``) to its diameters. A label whose
    KDE fell back from ISJ says so in the legend; an empty sample is listed as "no particles".
    """
    if not series:
        raise InputError("plot_kde_comparison needs at least one series of diameters")
    fig = Figure(figsize=COMPARISON_FIGSIZE, dpi=DPI)
    ax = fig.subplots()
    lo, hi = np.inf, -np.inf
    for i, (label, values) in enumerate(series.items()):
        d = validate_diameters(values)
        if d.size == 0:
            ax.plot([], [], color=f"C{i}", label=f"{label} (no particles)")
            continue
        grid, dens, method = kde(d, weights=weights_for(d, weighting))
        note = "" if method == "ISJ" else f", {method.split(' (')[0]}"
        ax.plot(grid, dens, color=f"C{i}", linewidth=1.8, label=f"{label} (n={d.size}{note})")
        lo, hi = min(lo, float(grid[0])), max(hi, float(grid[-1]))
    if np.isfinite(lo):
        ax.set_xlim(max(0.0, lo), hi)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"Equivalent circle diameter ({unit_label(unit)})")
    ax.set_ylabel("Density" if weighting == "number" else "Volume-weighted density")
    ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def _to_uint8_rgb(image: np.ndarray, max_size: int) -> tuple[np.ndarray, float]:
    """Downscale (area averaging) so the long side is at most ``max_size``; return uint8 RGB and scale."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or img.size == 0:
        raise InputError(f"overlay image must be (H, W) gray or (H, W, 3) RGB, got shape {img.shape}")
    h, w = img.shape[:2]
    scale = min(1.0, max_size / max(h, w))
    if img.dtype != np.uint8:
        img = img.astype(np.float32, copy=False)
        if np.issubdtype(np.asarray(image).dtype, np.integer):
            img = img / float(np.iinfo(np.asarray(image).dtype).max)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if img.dtype != np.uint8:
        img = (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img), scale


def plot_overlay(
    image: np.ndarray,
    circles: np.ndarray,
    path: str | os.PathLike[str],
    *,
    edge: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    max_size: int = 2048,
    ids: np.ndarray | None = None,
    pixel_size_um: float | None = None,
    fov_circle: tuple[float, float, float] | None = None,
) -> None:
    """Write the image with the detected circles drawn on it (PNG or any format OpenCV writes).

    Parameters
    ----------
    image : ndarray
        Gray (H, W) or RGB (H, W, 3), float in [0, 1] (uint8/uint16 also accepted).
    circles : ndarray, shape (N, 3)
        ``[x, y, r]`` in image pixels (pixel centres at integer coordinates).
    edge : ndarray of bool, shape (N,), optional
        Border-touching particles, drawn in magenta (they are excluded from the statistics by default).
    scores : ndarray, shape (N,), optional
        Detection confidences in [0, 1]; interior circles are then coloured by score (viridis, bright =
        confident) instead of plain green.
    max_size : int
        The image is downscaled (area averaging) so its long side is at most this many pixels.
    ids, pixel_size_um : optional
        Particle ids written at the circle centres, and a scale bar when calibrated (report/annotate.py).
    fov_circle : (x, y, R), optional
        The field of view found by ``--roi auto`` (inference/fov.py), drawn in cyan: particles cut by it
        are marked edge like border ones.
    """
    if max_size < 16:
        raise InputError(f"max_size must be at least 16 pixels, got {max_size}")
    if not cv2.haveImageWriter(str(path)):
        raise InputError(f"cannot write an image with the extension of {path}; use .png")
    c = np.asarray(circles, dtype=np.float64)
    c = c.reshape(0, 3) if c.size == 0 else c
    if c.ndim != 2 or c.shape[1] != 3:
        raise InputError(f"circles must have shape (N, 3) = [x, y, r], got {c.shape}")
    n = len(c)
    is_edge = np.zeros(n, bool) if edge is None else np.asarray(edge, dtype=bool).ravel()
    if is_edge.size != n:
        raise InputError(f"edge flags have {is_edge.size} values for {n} circles")
    rgb, scale = _to_uint8_rgb(image, max_size)
    canvas = np.ascontiguousarray(rgb[:, :, ::-1])  # OpenCV draws and writes BGR

    if n:
        # Pixel (i, j) covers [j - 0.5, j + 0.5], so the scaling is about the image corner (-0.5, -0.5).
        xy = ((c[:, :2] + 0.5) * scale - 0.5) * (1 << _SHIFT)
        rad = c[:, 2] * scale * (1 << _SHIFT)
        centres = np.rint(xy).astype(np.int64).tolist()
        radii = np.rint(np.maximum(rad, 1.0)).astype(np.int64).tolist()
        if scores is None:
            colours = [_INTERIOR_BGR] * n
        else:
            s = np.asarray(scores, dtype=np.float64).ravel()
            if s.size != n:
                raise InputError(f"scores have {s.size} values for {n} circles")
            # The dark low end of viridis is hard to see on microscope images, so it starts at 0.3.
            rgba = colormaps["viridis"](0.3 + 0.7 * np.clip(np.nan_to_num(s), 0.0, 1.0))
            colours = [tuple(int(v) for v in row) for row in np.rint(rgba[:, 2::-1] * 255).astype(int)]
        thickness = max(1, round(max(canvas.shape[:2]) / 1500))
        edge_list = is_edge.tolist()
        for (cx, cy), r, colour, on_edge in zip(centres, radii, colours, edge_list):
            cv2.circle(canvas, (cx, cy), r, _EDGE_BGR if on_edge else colour, thickness, cv2.LINE_AA, _SHIFT)

    if fov_circle is not None:
        fx, fy, fr = (float(v) for v in fov_circle)
        centre = tuple(int(v) for v in np.rint((np.array([fx, fy]) + 0.5) * scale * (1 << _SHIFT) - 0.5 * (1 << _SHIFT)))
        cv2.circle(canvas, centre, int(round(fr * scale * (1 << _SHIFT))), _FOV_BGR,
                   max(1, round(max(canvas.shape[:2]) / 800)), cv2.LINE_AA, _SHIFT)
    if ids is not None and n:
        from srpsa.report.annotate import draw_ids

        draw_ids(canvas, (c[:, :2] + 0.5) * scale - 0.5, c[:, 2] * scale, np.asarray(ids).ravel())
    if pixel_size_um and canvas.shape[1] >= 200:
        from srpsa.report.annotate import draw_scale_bar

        draw_scale_bar(canvas, pixel_size_um / scale)
    n_edge = int(is_edge.sum())
    if canvas.shape[1] >= 320:  # a legend on a thumbnail would hide the particles
        legend = f"{n} circles" + (f", {n_edge} on border (magenta)" if n_edge else "")
        font_scale = max(0.4, max(canvas.shape[:2]) / 2000)
        org = (8, 8 + round(22 * font_scale))
        # Dark outline under light text: readable on both bright SEM and dark OM backgrounds.
        cv2.putText(canvas, legend, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, legend, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), canvas):
            raise InputError(f"could not write overlay image {path}")
