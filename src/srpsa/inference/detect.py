"""Multi-scale SR-PSA inference: pyramid -> tiled network -> decode -> merge (NMS) -> refinement.

Paper 3.4 / 5.2.3: the full-resolution image is fed at 1/4 and 1/8 scale and the outputs are merged.
Here the scales come from, in order of precedence: ``scales=`` given by the caller; the caller's
``diameter_range=(min, max)`` px through :func:`srpsa.inference.scale.choose_scales`; the automatic size
estimate (:func:`srpsa.inference.scale.estimate_diameter_range`) when ``inference.auto_scale`` is on
and the estimate is confident; otherwise the configured ``inference.scales`` (paper: 0.25, 0.125).

Each scale's detections are mapped back to full-resolution pixels (x = column, y = row, pixel centres
at integers), kept only if their apparent radius lies in the band that scale is responsible for, and all
scales are merged with :func:`srpsa.inference.nms.circle_nms`. Large images go through
:func:`srpsa.inference.tiling.apply_tiled` (bounded memory, exact for a receptive field below the margin).

The network runs on an inference backend (:mod:`srpsa.inference.backend`): eager PyTorch (``"torch"``,
the default) or ONNX Runtime (``"onnx"``, 1.7-2x faster on a plain CPU; docs/speed.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch

from srpsa.errors import InputError
from srpsa.inference.backend import Runner, make_runner, module_hash
from srpsa.inference.nms import circle_nms, suppress_clusters
from srpsa.inference.refine import refine_circles
from srpsa.inference.robust import rerefine_failed, robust_stats
from srpsa.inference.scale import choose_scales, estimate_diameter_range
from srpsa.inference.tiling import apply_tiled
from srpsa.io.images import to_gray
from srpsa.models.detector import SRPSADetector, decode_maps, normalise_image
from srpsa.models.detector_config import STRIDE, DetectorConfig

log = logging.getLogger(__name__)

# An automatic size estimate below this confidence is not trusted: the configured scales are used.
MIN_ESTIMATE_CONFIDENCE = 0.2


def _with_pinned(scales: list[float], inf) -> list[float]:
    """``scales`` plus each of ``inf.pinned_scales`` not within half a pyramid step of one of them."""
    out = [float(s) for s in scales]
    for p in inf.pinned_scales:
        if all(abs(np.log(p / s)) > 0.5 * np.log(inf.scale_step) for s in out):
            out.append(float(p))
    return sorted(out, reverse=True)


class Detection(NamedTuple):
    """What :meth:`Detector.detect` returns: circles, scores and what was decided for this image.

    ``info``: ``scales`` (the pyramid used), ``scales_from`` (argument / diameter_range / estimate /
    config), ``scales_added`` (adaptive extension), the size estimate and ``refined_fraction`` when made.
    Index or unpack it like a tuple: ``circles, scores, info = detector.detect(image)``.
    """

    circles: np.ndarray  # (N, 3) x, y, r in input pixels, by decreasing score
    scores: np.ndarray  # (N,)
    info: dict[str, Any]


@dataclass
class Candidates:
    """Per-scale detections of one image before thresholding and merging (full-resolution pixels)."""

    circles: np.ndarray  # (N, 3)
    scores: np.ndarray  # (N,)
    scale_index: np.ndarray  # (N,) index into ``scales``
    scales: list[float] = field(default_factory=list)


class Detector:
    """A trained SR-PSA detector ready for inference.

    Parameters
    ----------
    model : SRPSADetector
    cfg : DetectorConfig
        The configuration it was trained with (inference and refinement sections are used here).
    thresholds : dict, optional
        ``{"p_thresh": float, "nms_thresh": float}`` chosen on validation data; defaults to the
        config's ``inference.p_thresh`` / ``inference.nms_thresh``.
    device : str
        ``"cpu"`` or ``"cuda"``.
    backend : str
        ``"torch"`` or ``"onnx"`` (CPU only), see :mod:`srpsa.inference.backend`.
    threads : int, optional
        Intra-op threads of the backend (default: torch's current setting).
    weights_dir : Path, optional
        The folder ``model`` was loaded from (:meth:`load` sets it): the ONNX export is cached there.
    weights_hash : str, optional
        sha256 of the weights (:func:`srpsa.inference.weights.weights_hash`), naming the ONNX export;
        default: a hash of the model's state dict.
    """

    def __init__(
        self,
        model: SRPSADetector,
        cfg: DetectorConfig,
        thresholds: dict[str, float] | None = None,
        device: str = "cpu",
        *,
        backend: str = "torch",
        threads: int | None = None,
        weights_dir: str | Path | None = None,
        weights_hash: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        th = thresholds or {}
        self.p_thresh = float(th.get("p_thresh", cfg.inference.p_thresh))
        self.nms_thresh = float(th.get("nms_thresh", cfg.inference.nms_thresh))
        self.backend = backend
        self.runner: Runner = self._make_runner(backend, threads, Path(weights_dir) if weights_dir else None, weights_hash)

    def _make_runner(self, backend: str, threads: int | None, weights_dir: Path | None, weights_hash: str | None) -> Runner:
        in_ch = int(getattr(getattr(self.model, "cfg", None), "in_channels", 1))
        return make_runner(
            self.model,
            backend,
            cache_dir=weights_dir,
            # Hashing the state dict costs a few ms; only the ONNX cache needs it.
            weights_hash=weights_hash or (module_hash(self.model) if backend == "onnx" else ""),
            example_shape=(1, in_ch, 64, 64),
            threads=threads,
            name="detector",
            device=self.device,
            # Not channels-last: its oneDNN kernels give results that change with the thread count
            # (~3e-6), so a 2-worker run would no longer write the same files as a 1-worker run.
            channels_last=False,
        )

    @classmethod
    def load(cls, weights_dir: str | Path, device: str = "cpu", backend: str = "torch", threads: int | None = None) -> Detector:
        """Load ``detector.safetensors`` + ``detector.json`` from ``weights_dir`` (sha256 checked).

        ``backend="onnx"`` exports the network once into ``weights_dir`` (or the user cache folder when
        that is read-only) and reuses the export while the weights are unchanged.
        """
        from srpsa.inference.weights import weights_hash
        from srpsa.models.detector_release import load_weights

        model, cfg, meta = load_weights(weights_dir)
        digest = weights_hash(Path(weights_dir)) if backend == "onnx" else None
        return cls(model, cfg, meta.get("thresholds"), device=device, backend=backend, threads=threads, weights_dir=weights_dir, weights_hash=digest)

    @property
    def thresholds(self) -> dict[str, float]:
        return {"p_thresh": self.p_thresh, "nms_thresh": self.nms_thresh}

    # -- scales -----------------------------------------------------------------------------------
    def resolve_scales(
        self, image: np.ndarray, scales: list[float] | tuple[float, ...] | None = None, diameter_range: tuple[float, float] | None = None
    ) -> list[float]:
        """The pyramid scales for ``image`` (see the module docstring for the precedence)."""
        return self.plan_scales(image, scales, diameter_range)[0]

    def plan_scales(
        self, image: np.ndarray, scales: list[float] | tuple[float, ...] | None = None, diameter_range: tuple[float, float] | None = None
    ) -> tuple[list[float], dict[str, Any]]:
        """The pyramid scales for ``image`` and where they came from (:class:`Detection` ``info``)."""
        inf = self.cfg.inference
        if scales is not None:
            scales = [float(s) for s in scales]
            if not scales or any(not np.isfinite(s) or s <= 0 for s in scales):
                raise InputError(f"scales must be positive numbers, got {scales}")
            return sorted(scales, reverse=True), {"scales_from": "argument"}
        if diameter_range is not None:
            d_min, d_max = (float(v) for v in diameter_range)
            return choose_scales(d_min, d_max, inf), {"scales_from": "diameter_range", "diameter_range": [d_min, d_max]}
        info: dict[str, Any] = {}
        if inf.auto_scale:
            (d_lo, d_hi), conf = estimate_diameter_range(image, inf.auto_range_factor)
            info = {"estimated_diameter_range_px": [d_lo, d_hi], "estimate_confidence": conf}
            if np.isfinite(d_lo) and conf >= MIN_ESTIMATE_CONFIDENCE:
                info["scales_from"] = "estimate"
                return _with_pinned(choose_scales(d_lo, d_hi, inf), inf), info
            log.info("particle size estimate not confident (%.2f): using the configured scales %s", conf, inf.scales)
        info["scales_from"] = "config"
        return _with_pinned([float(s) for s in inf.scales], inf), info

    # -- network ----------------------------------------------------------------------------------
    def predict_maps(self, image: np.ndarray, stats: tuple[float, float] | None = None) -> np.ndarray:
        """Network output ``(4, ceil(H/4), ceil(W/4))`` for an image at network scale, tiled.

        ``stats`` are the normalisation statistics (default: of ``image`` itself).
        """
        inf = self.cfg.inference
        norm = normalise_image(image, stats if stats is not None else robust_stats(image))
        h, w = norm.shape
        ph, pw = -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE
        if (ph, pw) != (h, w):  # pad to whole cells so no centre near the far border is lost
            norm = cv2.copyMakeBorder(norm, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
        # A small image is one tile of its own size (no padding to a full tile).
        tile = (min(inf.tile, ph), min(inf.tile, pw))
        margin = inf.tile_margin
        overlap = (min(2 * margin + STRIDE, tile[0] - STRIDE), min(2 * margin + STRIDE, tile[1] - STRIDE))
        batch = 4 if self.device.type == "cuda" else 1

        def run(tiles: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(tiles, np.float32)
            x = x[None, None] if x.ndim == 2 else x[:, None]
            out = np.moveaxis(self.runner(x), 1, -1)  # (B, h, w, 4)
            return out[0] if tiles.ndim == 2 else out

        maps = apply_tiled(norm, run, tile=tile, overlap=overlap, scale=1.0 / STRIDE, batch_size=batch,
                           margin=min(margin, min(overlap) // 2 - 1))
        return np.moveaxis(maps, -1, 0)

    def candidates(self, image: np.ndarray, scales: list[float], cache: dict[float, tuple] | None = None) -> Candidates:
        """Detections of every scale above ``inference.candidate_floor``, in full-resolution pixels.

        ``cache`` (scale -> raw detections) lets a caller add scales without recomputing the others.
        """
        inf = self.cfg.inference
        img = to_gray(image)
        cache = {} if cache is None else cache
        stats = None
        scales = sorted(scales, reverse=True)
        all_c, all_s, all_i = [], [], []
        for k, s in enumerate(scales):
            if s not in cache:
                stats = stats or robust_stats(img)
                cache[s] = self._scale_detections(img, s, stats)
            full, score, r_cells = cache[s]
            lo, hi = inf.valid_band
            keep = np.ones(len(full), bool)
            if len(scales) > 1:
                # The largest scale also answers for anything smaller, the smallest for anything larger.
                if k > 0:
                    keep &= r_cells >= lo
                if k < len(scales) - 1:
                    keep &= r_cells <= hi
            all_c.append(full[keep])
            all_s.append(score[keep])
            all_i.append(np.full(int(keep.sum()), k))
        return Candidates(np.concatenate(all_c), np.concatenate(all_s), np.concatenate(all_i), scales)

    def _scale_detections(self, img: np.ndarray, s: float, stats: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One scale: (circles in full-resolution px, scores, radius in output cells at that scale)."""
        h, w = img.shape
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        if min(sh, sw) < 2 * STRIDE:  # nothing detectable at a few pixels
            return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        scaled = cv2.resize(img, (sw, sh), interpolation=interp) if (sh, sw) != (h, w) else img
        maps = self.predict_maps(scaled, stats)
        circ, score = decode_maps(maps, max_radius=self.model.cfg.max_radius, p_thresh=self.cfg.inference.candidate_floor)
        inside = (circ[:, 0] < sw - 0.5) & (circ[:, 1] < sh - 0.5)  # not a centre in the padding
        circ, score = circ[inside], score[inside]
        sx, sy = sw / w, sh / h
        full = np.column_stack([(circ[:, 0] + 0.5) / sx - 0.5, (circ[:, 1] + 0.5) / sy - 0.5, circ[:, 2] / np.sqrt(sx * sy)])
        return full, score, circ[:, 2] / STRIDE

    def _extend_pyramid(self, img: np.ndarray, cands: Candidates, p_thresh: float, cache: dict,
                        max_rounds: int = 2) -> tuple[Candidates, list[float]]:
        """Add scales beyond the automatic ones while the detections say the sizes continue there.

        Upwards (expensive: ``step^2`` times the pixels): if at least ``inference.extend_fraction`` of
        the confident detections at the largest scale sit below the target band (smaller particles may
        be missed), the scale ``step`` times larger is added (up to ``max_scale``). Downwards (cheap):
        ``extend_down_fraction`` of them above the band at the smallest scale suffices, so a coarse
        minority is not lost. The size estimate is only a starting point: particles with inner
        structure, clusters and broad or bimodal distributions can mislead it.
        """
        inf = self.cfg.inference
        lo, hi = inf.target_band
        added: list[float] = []
        for _ in range(max_rounds):
            scales = sorted(cands.scales, reverse=True)
            conf = cands.scores > p_thresh
            n_conf = int(conf.sum())
            if n_conf == 0:
                break
            cells = cands.circles[:, 2] * np.asarray(cands.scales)[cands.scale_index] / STRIDE
            top = conf & (cands.scale_index == 0)
            bottom = conf & (cands.scale_index == len(scales) - 1)
            n_min = inf.extend_min_count
            extra = []
            if (top & (cells < lo)).sum() >= max(n_min, inf.extend_fraction * n_conf) and scales[0] * inf.scale_step <= inf.max_scale + 1e-9:
                extra.append(scales[0] * inf.scale_step)
            if (bottom & (cells > hi)).sum() >= max(n_min, inf.extend_down_fraction * n_conf) and scales[-1] / inf.scale_step >= inf.min_scale - 1e-9:
                extra.append(scales[-1] / inf.scale_step)
            if not extra:
                break
            cands = self.candidates(img, scales + extra, cache)
            added.extend(extra)
        return cands, added

    def merge(self, cands: Candidates, p_thresh: float | None = None, nms_thresh: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Threshold and merge candidates of all scales with circle NMS."""
        p_t = self.p_thresh if p_thresh is None else p_thresh
        n_t = self.nms_thresh if nms_thresh is None else nms_thresh
        keep = cands.scores > p_t
        circles, scores = circle_nms(cands.circles[keep], cands.scores[keep], n_t, merge=self.cfg.inference.merge)
        return suppress_clusters(circles, scores, self.cfg.inference.cluster_cover)

    # -- the public call --------------------------------------------------------------------------
    def detect(
        self,
        image: np.ndarray,
        *,
        scales: list[float] | tuple[float, ...] | None = None,
        diameter_range: tuple[float, float] | None = None,
        refine: bool = True,
        p_thresh: float | None = None,
        nms_thresh: float | None = None,
        extend: bool | None = None,
    ) -> Detection:
        """Detect circular particles.

        Parameters
        ----------
        image : np.ndarray
            ``(H, W)`` gray (``(H, W, 3)`` becomes luma, :func:`srpsa.io.to_gray`), any real dtype; float images are
            expected in [0, 1], integer images are scaled by their type's maximum.
        scales : sequence of float, optional
            Pyramid scales (1 = full resolution); overrides everything else.
        diameter_range : (min, max), optional
            Expected particle diameters in full-resolution pixels; the scales are chosen to cover them.
        refine : bool
            Re-measure every circle on the full-resolution image (:mod:`srpsa.inference.refine`), if the
            config's ``refine.enabled`` also allows it.
        p_thresh, nms_thresh : float, optional
            Override the stored thresholds.
        extend : bool, optional
            Let the pyramid grow beyond the chosen scales when the detections say the sizes continue
            (``inference.adaptive_scales``). Default: for automatic scales only, not for explicit
            ``scales`` or ``diameter_range``.

        Returns
        -------
        Detection
            ``circles`` float64 ``(N, 3)`` ``[x, y, r]`` in input-image pixels (x = column, y = row), by
            decreasing score; ``scores`` float64 ``(N,)``; ``info`` what was decided (scales ...).
        """
        img = to_gray(image)
        use, info = self.plan_scales(img, scales, diameter_range)
        cache: dict[float, tuple] = {}
        cands = self.candidates(img, use, cache)
        if extend is None:
            extend = info.get("scales_from") in ("estimate", "config")
        if extend and self.cfg.inference.adaptive_scales:
            cands, added = self._extend_pyramid(img, cands, self.p_thresh if p_thresh is None else p_thresh, cache)
            if added:
                info["scales_added"] = added
        info["scales"] = list(cands.scales)
        circles, scores = self.merge(cands, p_thresh, nms_thresh)
        if refine and self.cfg.refine.enabled and len(circles):
            circles, ok = refine_circles(img, circles, self.cfg.refine)
            circles, ok, n_retry = rerefine_failed(img, circles, ok, self.cfg.refine)
            info["refined_fraction"] = float(ok.mean())
            if n_retry:
                info["rerefined"] = n_retry
        tiny = circles[:, 2] < MIN_CIRCLE_RADIUS_PX if len(circles) else np.zeros(0, bool)
        if tiny.any():  # not a measurement: the network's radius collapsed (seen off ideal 7 px disks)
            circles, scores = circles[~tiny], scores[~tiny]
            info["dropped_below_1px"] = int(tiny.sum())
        return Detection(circles, scores, info)


# A circle of radius below 1 px is no particle measurement (the resolved range starts at ~5 px diameter);
# out of domain the network emits a few near-0 radii beside real particles (ISO TR 19672 7 px disks).
MIN_CIRCLE_RADIUS_PX = 1.0
