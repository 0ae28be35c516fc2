"""Detection metrics from a circle matching: counts, precision/recall/F1, "% detected", size and position errors.

Conventions (all NaN-free, see ``docs/evaluation.md``):

- ``precision = TP / (TP + FP)``, or 1 when there are no (counted) predictions: nothing was claimed wrongly;
- ``recall = TP / (TP + FN)``, or 1 when there is no (counted) ground truth: nothing could be missed;
- ``F1 = 2 P R / (P + R)``, 0 when ``P + R = 0``;
- ``percent_detected = 100 * n_pred / n_gt`` (the paper's Table 6; a count ratio, not a recall), 100 when
  both are 0 and ``None`` when only ``n_gt`` is 0;
- size and position errors are over matched pairs only and ``None`` when nothing matched.

Aggregation over images pools the counts and the matched pairs (micro-average), so a large image weighs
more than a small one and an image with no particles cannot produce an undefined mean.

Border handling (``ignore_border=True``): a ground-truth circle that touches the image frame is "don't
care": a prediction matched to it counts neither as TP nor FP, and if unmatched it is not a FN; an
unmatched prediction that touches the frame is not a FP. Matching itself always uses every circle, so a
border particle cannot be matched twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from srpsa.errors import InputError
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR, MatchResult, as_circles, match_circles
from srpsa.psd.particles import edge_flags


@dataclass(frozen=True)
class DetectionMetrics:
    """Counts and scores of a detection run (one image or pooled over many).

    Relative radius errors are fractions (0.05 = 5 %); ``radius_rmse_px`` and ``centre_median_px`` are pixels.
    """

    n_images: int
    n_gt: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    percent_detected: float | None
    radius_median_abs_rel_error: float | None
    radius_mean_rel_error: float | None  # signed: > 0 means predicted circles are too large (bias)
    radius_rmse_px: float | None
    centre_median_error_px: float | None
    n_gt_ignored: int = 0
    n_pred_ignored: int = 0
    match_factor: float = DEFAULT_MATCH_FACTOR

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ImageEvaluation:
    """Evaluation of one image: the matching, which circles were counted, and the matched-pair errors.

    Keep it to pool several images with :func:`aggregate`.
    """

    name: str
    match: MatchResult
    tp: int
    fp: int
    fn: int
    n_gt_ignored: int
    n_pred_ignored: int
    radius_gt: np.ndarray = field(repr=False)  # r of the counted (TP) pairs, GT side
    radius_pred: np.ndarray = field(repr=False)
    centre_error: np.ndarray = field(repr=False)
    match_factor: float = DEFAULT_MATCH_FACTOR

    @property
    def metrics(self) -> DetectionMetrics:
        return aggregate([self])


def evaluate_image(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    match_factor: float = DEFAULT_MATCH_FACTOR,
    image_shape: tuple[int, int] | None = None,
    ignore_border: bool = False,
    name: str = "",
) -> ImageEvaluation:
    """Match ``pred`` to ``gt`` and count TP/FP/FN for one image.

    Parameters
    ----------
    gt, pred : np.ndarray, shape (N, 3)
        Circles ``[x, y, r]`` in pixels.
    match_factor : float
        Admissible centre distance as a fraction of the ground-truth radius.
    image_shape : (H, W), optional
        Needed only when ``ignore_border`` is true.
    ignore_border : bool
        Do not count circles cut by the image frame either way (see module docstring). Default: count all.
    name : str
        Label for per-image tables.
    """
    gt = as_circles(gt, "ground-truth circles")
    pred = as_circles(pred, "predicted circles")
    m = match_circles(gt, pred, factor=match_factor)

    if ignore_border:
        if image_shape is None:
            raise InputError("ignoring border particles needs the image size (height, width)")
        gt_edge = edge_flags(gt, image_shape)
        pred_edge = edge_flags(pred, image_shape)
    else:
        gt_edge = np.zeros(len(gt), dtype=bool)
        pred_edge = np.zeros(len(pred), dtype=bool)

    counted = ~gt_edge[m.gt_idx]  # a pair on a don't-care GT circle counts neither way
    un_gt = m.unmatched_gt()
    un_pred = m.unmatched_pred()
    tp = int(counted.sum())
    fn = int((~gt_edge[un_gt]).sum())
    fp = int((~pred_edge[un_pred]).sum())
    n_gt_ignored = int(gt_edge.sum())
    n_pred_ignored = int((~counted).sum() + pred_edge[un_pred].sum())

    g, p = m.gt_idx[counted], m.pred_idx[counted]
    return ImageEvaluation(
        name=name,
        match=m,
        tp=tp,
        fp=fp,
        fn=fn,
        n_gt_ignored=n_gt_ignored,
        n_pred_ignored=n_pred_ignored,
        radius_gt=gt[g, 2],
        radius_pred=pred[p, 2],
        centre_error=m.distances[counted],
        match_factor=float(match_factor),
    )


def aggregate(evaluations: Iterable[ImageEvaluation]) -> DetectionMetrics:
    """Pool per-image evaluations: counts are summed and errors taken over all matched pairs."""
    evals = list(evaluations)
    tp = sum(e.tp for e in evals)
    fp = sum(e.fp for e in evals)
    fn = sum(e.fn for e in evals)
    factors = {e.match_factor for e in evals}
    if len(factors) > 1:
        raise InputError(f"cannot pool evaluations made with different match factors: {sorted(factors)}")
    r_gt = np.concatenate([e.radius_gt for e in evals]) if evals else np.zeros(0)
    r_pred = np.concatenate([e.radius_pred for e in evals]) if evals else np.zeros(0)
    c_err = np.concatenate([e.centre_error for e in evals]) if evals else np.zeros(0)
    return metrics_from_counts(
        tp,
        fp,
        fn,
        r_gt,
        r_pred,
        c_err,
        n_images=len(evals),
        n_gt_ignored=sum(e.n_gt_ignored for e in evals),
        n_pred_ignored=sum(e.n_pred_ignored for e in evals),
        match_factor=factors.pop() if factors else DEFAULT_MATCH_FACTOR,
    )


def metrics_from_counts(
    tp: int,
    fp: int,
    fn: int,
    radius_gt: np.ndarray,
    radius_pred: np.ndarray,
    centre_error: np.ndarray,
    *,
    n_images: int = 1,
    n_gt_ignored: int = 0,
    n_pred_ignored: int = 0,
    match_factor: float = DEFAULT_MATCH_FACTOR,
) -> DetectionMetrics:
    """Scores from pooled counts and matched-pair arrays (the formulas in the module docstring)."""
    n_gt, n_pred = tp + fn, tp + fp
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_gt if n_gt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    if n_gt:
        percent = 100.0 * n_pred / n_gt
    else:
        percent = 100.0 if n_pred == 0 else None

    radius_gt = np.asarray(radius_gt, dtype=np.float64)
    radius_pred = np.asarray(radius_pred, dtype=np.float64)
    if radius_gt.size:
        rel = (radius_pred - radius_gt) / radius_gt
        mare = float(np.median(np.abs(rel)))
        bias = float(np.mean(rel))
        rmse = float(np.sqrt(np.mean((radius_pred - radius_gt) ** 2)))
        centre = float(np.median(centre_error))
    else:
        mare = bias = rmse = centre = None
    return DetectionMetrics(
        n_images=int(n_images),
        n_gt=int(n_gt),
        n_pred=int(n_pred),
        tp=int(tp),
        fp=int(fp),
        fn=int(fn),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        percent_detected=percent,
        radius_median_abs_rel_error=mare,
        radius_mean_rel_error=bias,
        radius_rmse_px=rmse,
        centre_median_error_px=centre,
        n_gt_ignored=int(n_gt_ignored),
        n_pred_ignored=int(n_pred_ignored),
        match_factor=float(match_factor),
    )


def evaluate_many(
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    match_factor: float = DEFAULT_MATCH_FACTOR,
    shapes: dict[str, tuple[int, int]] | None = None,
    ignore_border: bool = False,
) -> tuple[DetectionMetrics, list[ImageEvaluation]]:
    """Evaluate ``(name, gt, pred)`` triples and pool them; returns ``(pooled metrics, per-image evaluations)``."""
    evals = [
        evaluate_image(
            gt,
            pred,
            match_factor=match_factor,
            image_shape=(shapes or {}).get(name),
            ignore_border=ignore_border,
            name=name,
        )
        for name, gt, pred in pairs
    ]
    return aggregate(evals), evals


def per_image_table(evaluations: Iterable[ImageEvaluation]):
    """One row of :class:`DetectionMetrics` per image, as a pandas DataFrame indexed by image name."""
    import pandas as pd

    rows = [{"image": e.name, **e.metrics.to_dict()} for e in evaluations]
    columns = ["image", *DetectionMetrics.__dataclass_fields__]
    return pd.DataFrame(rows, columns=columns).set_index("image")
