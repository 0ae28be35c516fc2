"""Scoring a detector on images with known circles: validation during training and fine-tuning.

Split from detector_train.py: pooled P/R/F1 and radius errors (:func:`score_detections`), the
threshold grid search (:func:`tune_thresholds`), refinement calibration (:func:`calibrate_refinement`)
and which network is kept (:func:`selection_score`). Validation runs the full multi-scale inference with
the scales chosen from the ground-truth diameter range (2nd-98th percentile), so it measures the network
and the merge, not the size estimator.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.evaluation.matching import match_circles
from srpsa.inference.detect import Candidates, Detector
from srpsa.inference.nms import circle_nms
from srpsa.inference.refine import apply_bias, calibrate_bias, refine_circles
from srpsa.training.detector_data import load_cached

P_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2)) + (0.97, 0.98, 0.99)
NMS_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
EDGE_CHOICES = ("gradient", "outer", "half_max")


@dataclass
class ValImage:
    image: np.ndarray
    circles: np.ndarray  # ground truth with the centre inside the image


def load_val(files: list[Path]) -> list[ValImage]:
    out = []
    for f in files:
        img, circ, _ = load_cached(f)
        h, w = img.shape
        inside = (circ[:, 0] >= -0.5) & (circ[:, 0] < w - 0.5) & (circ[:, 1] >= -0.5) & (circ[:, 1] < h - 0.5)
        out.append(ValImage(img, circ[inside]))
    return out



# -- evaluation ---------------------------------------------------------------------------------------


# Validation never asks for particles below this diameter (px): the detector is meant for 8 px and up,
# and annotated real images hold specks of 2 px that would force a wasteful, noisy upsampled scale.
MIN_VAL_DIAMETER = 8.0


def gt_diameter_range(circles: np.ndarray) -> tuple[float, float]:
    """Diameter range used to pick validation scales: 2nd to 98th percentile of the ground truth."""
    if len(circles) == 0:
        return (10.0, 40.0)
    d = 2.0 * circles[:, 2]
    lo, hi = float(np.percentile(d, 2)), float(np.percentile(d, 98))
    return max(lo, MIN_VAL_DIAMETER), max(hi, MIN_VAL_DIAMETER)


def _interior(circles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (circles[:, 0] - circles[:, 2] >= 0) & (circles[:, 1] - circles[:, 2] >= 0) & (circles[:, 0] + circles[:, 2] <= w - 1) & (circles[:, 1] + circles[:, 2] <= h - 1)


def score_detections(gts: list[np.ndarray], preds: list[np.ndarray], shapes: list[tuple[int, int]]) -> dict[str, float]:
    """Pooled precision/recall/F1 and radius errors of matched particles (interior ones only).

    ``radius_err`` is the median of ``|r_pred / r_gt - 1|``, ``radius_bias`` the median signed error.
    """
    tp = fp = fn = 0
    rel = []
    for gt, pred, shape in zip(gts, preds, shapes):
        m = match_circles(gt, pred) if len(gt) and len(pred) else None
        n_match = m.n_matched if m else 0
        tp += n_match
        fp += len(pred) - n_match
        fn += len(gt) - n_match
        if m and n_match:
            g, p = gt[m.gt_idx], pred[m.pred_idx]
            keep = _interior(g, shape)
            rel.append(p[keep, 2] / g[keep, 2] - 1.0)
    rel_all = np.concatenate(rel) if rel else np.zeros(0)
    prec = tp / max(tp + fp, 1)
    rec = tp / max(tp + fn, 1)
    return {
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "precision": prec,
        "recall": rec,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "radius_err": float(np.median(np.abs(rel_all))) if rel_all.size else float("nan"),
        "radius_err_p90": float(np.percentile(np.abs(rel_all), 90)) if rel_all.size else float("nan"),
        "radius_bias": float(np.median(rel_all)) if rel_all.size else float("nan"),
    }


def collect_candidates(detector: Detector, val: list[ValImage]) -> list[Candidates]:
    """Per-scale candidates of every validation image (scales from its ground-truth diameter range)."""
    out = []
    for v in val:
        scales = detector.resolve_scales(v.image, diameter_range=gt_diameter_range(v.circles))
        out.append(detector.candidates(v.image, scales))
    return out


def tune_thresholds(detector: Detector, val: list[ValImage], cands: list[Candidates]) -> tuple[dict[str, float], dict[str, float]]:
    """Grid search of (p_thresh, nms_thresh) for the best pooled F1; returns (thresholds, metrics).

    NMS is greedy by score, so thresholding after NMS equals NMS after thresholding: each NMS value is
    run once on all candidates and the p grid is swept on its survivors.
    """
    best: tuple[float, dict[str, float], dict[str, float]] | None = None
    gts = [v.circles for v in val]
    shapes = [v.image.shape for v in val]
    floor = detector.cfg.inference.candidate_floor
    for nt in NMS_GRID:
        merged = [circle_nms(c.circles, c.scores, nt, merge=detector.cfg.inference.merge) for c in cands]
        for pt in P_GRID:
            if pt < floor:
                continue
            preds = [mc[ms > pt] for mc, ms in merged]
            m = score_detections(gts, preds, shapes)
            key = m["f1"] - 1e-3 * (0.0 if math.isnan(m["radius_err"]) else m["radius_err"])
            if best is None or key > best[0]:
                best = (key, {"p_thresh": float(pt), "nms_thresh": float(nt)}, m)
    assert best is not None
    return best[1], best[2]


def evaluate(detector: Detector, val: list[ValImage], cands: list[Candidates] | None = None) -> dict[str, Any]:
    """F1 and radius errors at the detector's thresholds, without and with refinement."""
    cands = cands if cands is not None else collect_candidates(detector, val)
    raw, refined = [], []
    for v, c in zip(val, cands):
        circ, _ = detector.merge(c)
        raw.append(circ)
        refined.append(refine_circles(v.image, circ, detector.cfg.refine)[0] if len(circ) else circ)
    gts = [v.circles for v in val]
    shapes = [v.image.shape for v in val]
    return {"raw": score_detections(gts, raw, shapes), "refined": score_detections(gts, refined, shapes)}


def calibrate_refinement(detector: Detector, val: list[ValImage], cands: list[Candidates]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Choose the edge criterion and its bias correction on matched validation particles.

    For each criterion: refine the network's circles with zero bias, fit :func:`calibrate_bias` on the
    matched interior particles, and score the median relative radius error with and without the
    correction (a correction that does not lower the median is not used). The best combination wins;
    if no refinement beats the network's own radii, refinement is switched off (``enabled = False``).
    Returns (refine settings to apply, per-criterion report).
    """
    base = detector.cfg.refine
    report: dict[str, Any] = {}
    dets = [detector.merge(c)[0] for c in cands]
    net_err = score_detections([v.circles for v in val], dets, [v.image.shape for v in val])["radius_err"]
    best: tuple[float, dict[str, Any]] = (net_err if not math.isnan(net_err) else math.inf, {"enabled": False})
    zero = {"bias_rel": 0.0, "bias_px": 0.0, "bias_inv": 0.0, "bias_sigma": 0.0}
    for edge in EDGE_CHOICES:
        rcfg = dataclasses.replace(base, enabled=True, edge=edge, **zero)
        r_edge, r_true, sig = [], [], []
        for v, circ in zip(val, dets):
            if not len(circ) or not len(v.circles):
                continue
            ref, ok, sigma = refine_circles(v.image, circ, rcfg, return_sigma=True)
            m = match_circles(v.circles, ref)
            g, p, okm = v.circles[m.gt_idx], ref[m.pred_idx], ok[m.pred_idx]
            keep = okm & _interior(g, v.image.shape)
            r_edge.append(p[keep, 2])
            r_true.append(g[keep, 2])
            sig.append(sigma[m.pred_idx][keep])
        if not r_edge or sum(len(a) for a in r_edge) < 10:
            continue
        re, rt, sg = np.concatenate(r_edge), np.concatenate(r_true), np.concatenate(sig)
        bias = calibrate_bias(re, rt, sigma=sg)
        corrected = apply_bias(re, dataclasses.replace(rcfg, **bias), sg)
        err_cal = float(np.median(np.abs(corrected / rt - 1)))
        err_raw = float(np.median(np.abs(re / rt - 1)))
        report[edge] = {"n": int(len(re)), "radius_err_uncalibrated": err_raw, "radius_err_calibrated": err_cal,
                        "mean_bias_calibrated": float(np.mean(corrected / rt - 1)), **bias}
        for err, b in ((err_raw, zero), (err_cal, bias)):
            if err < best[0]:
                best = (err, {"enabled": True, "edge": edge, **b})
    report["network_radius_err"] = net_err
    return best[1], report


def selection_score(metrics: dict[str, Any]) -> float:
    """Which epoch's network is kept: validation F1 minus half the network's median radius error.

    F1 saturates early on easy data while the radii keep improving; the radius term breaks such ties
    (an F1 gain of 0.02 is worth a radius error gain of 0.04).
    """
    raw = metrics["raw"]
    err = raw["radius_err"]
    return float(raw["f1"] - 0.5 * (1.0 if math.isnan(err) else err))
