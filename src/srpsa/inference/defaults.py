"""The defaults of one analysis: one table read by :class:`~srpsa.inference.pipeline.AnalyzeSettings`,
:func:`srpsa.analyze` / :class:`srpsa.Analyzer` and the ``srpsa analyze`` flags, so they cannot drift apart.

Kept free of imports: the CLI reads it to build its options before anything heavy is loaded.
"""

from __future__ import annotations

MODALITY = "om"  # "om" or "sem"
PIPELINE = "full"  # OM input: "full" (through the GANs, docs/decisions.md) or "detect-only"
ENHANCE_FLOW = "adaptive"  # full pipeline: "adaptive" (scale follows the particles) or "paper"
# full pipeline: "none" (the SEM detector reads the translation, docs/decisions.md) or "model" (ESRGAN
# stage in between, the paper's chain)
ENHANCE_SR = "none"
BACKEND = "auto"  # "auto" (onnx when onnxruntime is installed, else torch), "torch" or "onnx"
DIAMETER_UNIT = "px"  # unit of diameter_range: "px" or "um"
INCLUDE_EDGE = False  # ISO 13322-1: border-cut particles are excluded from statistics
REFINE = True  # sub-pixel radial edge refinement after the network
BOOTSTRAP = 1000  # resamples for the 95 % confidence intervals (0: none)
SEED = 0
# self-check (inference/quality.py): when a quarter or more of the circles show no radial structure, drop
# those (detections on texture); off keeps every circle the detector gave
PRUNE_WEAK = True
# largest declared image size decoded (= srpsa.io.guard.DEFAULT_MAX_PIXELS, Pillow's limit; not imported
# here to keep this module free of imports; tests/test_api.py checks they agree)
MAX_PIXELS = 178_956_970

#: AnalyzeSettings fields that choose the models (fixed per Analyzer); the others may change per image.
MODEL_KEYS = ("modality", "pipeline", "weights", "enhance_flow", "enhance_sr", "backend")
