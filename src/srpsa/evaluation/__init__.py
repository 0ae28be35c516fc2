"""Detection evaluation: one-to-one circle matching, detection metrics and size-distribution comparison.

Rules and definitions are written up in ``docs/evaluation.md``.
"""

from srpsa.evaluation.compare import (
    compare_size_distributions,
    detection_count_table,
    diameters_of,
    paper_layout,
    to_markdown,
)
from srpsa.evaluation.detection_report import DetectionReport, evaluate_detections
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR, MatchResult, match_circles
from srpsa.evaluation.metrics import (
    DetectionMetrics,
    ImageEvaluation,
    aggregate,
    evaluate_image,
    evaluate_many,
    per_image_table,
)

__all__ = [
    "DEFAULT_MATCH_FACTOR",
    "DetectionMetrics",
    "DetectionReport",
    "ImageEvaluation",
    "MatchResult",
    "aggregate",
    "compare_size_distributions",
    "detection_count_table",
    "diameters_of",
    "evaluate_detections",
    "evaluate_image",
    "evaluate_many",
    "match_circles",
    "paper_layout",
    "per_image_table",
    "to_markdown",
]
