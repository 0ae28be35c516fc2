"""Classical peer baselines, tuned on images with ground truth: OpenCV Hough circles and an
ImageJ-style threshold + watershed pipeline. See ``docs/evaluation.md``."""

from srpsa.baselines.hough import HoughParams, hough_detect, load_hough_params, save_hough_params, tune_hough
from srpsa.baselines.watershed import (
    WatershedParams,
    load_watershed_params,
    save_watershed_params,
    tune_watershed,
    watershed_detect,
)

__all__ = [
    "HoughParams",
    "WatershedParams",
    "hough_detect",
    "load_hough_params",
    "load_watershed_params",
    "save_hough_params",
    "save_watershed_params",
    "tune_hough",
    "tune_watershed",
    "watershed_detect",
]
