"""Fit the full pipeline's sizing calibration (refinement bias terms on enhanced images of OM images with
known circles); stored as ``full-pipeline.json`` and applied by :class:`srpsa.inference.full.FullPipeline`
(see that module's docstring). Used by ``scripts/calibrate_full_pipeline.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from srpsa.errors import InputError
from srpsa.inference.enhance import output_scales
from srpsa.inference.full import BIAS_KEYS, FullPipeline
from srpsa.inference.refine import refine_circles
from srpsa.io.images import to_gray


def fit_sizing_calibration(pipeline: FullPipeline, images: list[tuple[np.ndarray, np.ndarray]], progress=None) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit the refinement bias terms on enhanced images of OM images with known circles.

    Parameters
    ----------
    pipeline : FullPipeline
        The models to calibrate (its own calibration is ignored).
    images : list of (om, gt)
        OM images (gray) and their ground-truth circles ``(N, 3)`` in OM pixels.

    Returns
    -------
    bias : dict
        ``bias_rel, bias_px, bias_inv, bias_sigma`` for :class:`RefineConfig`.
    report : dict
        Matched particles and the median radius error / bias with the detector's own calibration and
        with the fitted one, on these images.
    """
    from srpsa.evaluation.matching import match_circles
    from srpsa.inference.refine import apply_bias, calibrate_bias

    det = pipeline.sem_detector
    zero = replace(det.cfg.refine, **{k: 0.0 for k in BIAS_KEYS})
    r_edge, r_true, sig = [], [], []
    for i, (om, gt) in enumerate(images):
        om = to_gray(om)
        result, sem_range, _ = pipeline.enhance_for(om)
        sx, sy = output_scales(om.shape, result.image.shape)
        circles = det.detect(result.image, diameter_range=sem_range, refine=False, extend=True).circles
        ref, ok, sigma = refine_circles(result.image, circles, zero, return_sigma=True)
        g = np.asarray(gt, np.float64).reshape(-1, 3)
        g_out = np.column_stack([(g[:, 0] + 0.5) * sx - 0.5, (g[:, 1] + 0.5) * sy - 0.5, g[:, 2] * math.sqrt(sx * sy)])
        m = match_circles(g_out, ref[ok])
        r_edge.append(ref[ok][m.pred_idx, 2])
        sig.append(sigma[ok][m.pred_idx])
        r_true.append(g_out[m.gt_idx, 2])
        if progress:
            progress(i + 1, len(images))
    r_edge, r_true, sig = np.concatenate(r_edge), np.concatenate(r_true), np.concatenate(sig)
    if len(r_edge) < 20:
        raise InputError(f"sizing calibration needs at least 20 matched particles, got {len(r_edge)}")
    bias = calibrate_bias(r_edge, r_true, sigma=sig)

    def summary(cfg) -> dict[str, float]:
        rel = apply_bias(r_edge, cfg, sig) / r_true - 1.0
        return {"median_abs_rel_error": float(np.median(np.abs(rel))), "median_rel_bias": float(np.median(rel)), "mean_rel_bias": float(np.mean(rel))}

    report = {"particles": int(len(r_edge)), "images": len(images), "before": summary(det.cfg.refine), "after": summary(replace(det.cfg.refine, **bias))}
    return {k: float(bias[k]) for k in BIAS_KEYS}, report
