"""The full OM pipeline as one call: (OM detector guide) -> translate -> super-resolve -> SEM detector.

The enhance chain's working scale and the SEM detector's pyramid both depend on the particle size. The
generic size estimate (:mod:`srpsa.inference.scale`) reads transmitted-light particles poorly: the bright
lens spot inside each sphere, rings and dense packing pull it 2-4x off, and a wrong working scale up-
samples the particles past what the GANs were trained on (the failure on the tertiary preset, see
docs/decisions.md). The OM-direct detector was trained on exactly these images and finds them at
F1 ~1 on the simulator presets, so its detections are a far better size guide: their median diameter
sets the enhance scale and the centre of the SEM detector's starting pyramid (median / 3 to median x 3,
``range_factor``; the detector's adaptive extension adds scales when detections say the sizes go on).
Not the detections' extremes: out of its training domain the OM detector's false positives sit in the
tails.
It runs at most once per image, without refinement, and the pipeline falls back to the generic estimate
when it finds fewer than ``min_guide_particles``.

Sizing through the GANs: the SEM detector's refinement was calibrated on simulator SEM images, whose
edges differ from the generators' output, and the difference depends on the microscope style (-11 % to
+4 % median radius bias across simulator styles, docs/gans.md). A *sizing calibration* re-fits the
refinement's bias terms on enhanced images of OM images with known radii - meant for a lab's own
annotated images (``scripts/calibrate_full_pipeline.py --annotated``) - and is stored beside the weights as
``full-pipeline.json`` with the hashes of the four models involved; it is applied only while those
hashes and the enhance flow match. None ships.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from srpsa.errors import InputError
from srpsa.inference.detect import Detector
from srpsa.inference.enhance import Enhancer, output_scales, to_input_coordinates
from srpsa.inference.guide import GuideConfig, guide_pass, size_guide
from srpsa.inference.refine import refine_circles
from srpsa.io.images import to_gray

CALIBRATION_FILE = "full-pipeline.json"
CALIBRATION_FORMAT = "srpsa-full-pipeline/1"
BIAS_KEYS = ("bias_rel", "bias_px", "bias_inv", "bias_sigma")


def flow_key(flow: str, sr_mode: str = "model") -> str:
    """The enhance chain a sizing calibration belongs to: the flow, plus ``+no-sr`` without the SR stage."""
    return flow if sr_mode == "model" else f"{flow}+no-sr"


@dataclass(frozen=True)
class SizingCalibration:
    """Refinement bias terms for the SEM detector on enhanced images (see the module docstring)."""

    bias: dict[str, float]
    models: dict[str, str]  # model name -> weights sha256 it was fitted with
    flow: str
    meta: dict[str, Any] = field(default_factory=dict)

    def mismatch(self, hashes: dict[str, str], flow: str) -> str | None:
        """Why the calibration does not apply to these models and flow (None: it applies)."""
        if flow != self.flow:
            return f"fitted for the '{self.flow}' flow, not '{flow}'"
        for name, digest in self.models.items():
            if hashes.get(name) != digest:
                return f"fitted with other '{name}' weights"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, "refine": dict(self.bias), "models": dict(self.models), "flow": self.flow, **self.meta}


def load_calibration(path: str | Path) -> SizingCalibration | None:
    """Read ``full-pipeline.json`` (None when absent); a malformed file is an error, not ignored."""
    path = Path(path)
    return parse_calibration(path.read_text(), path) if path.is_file() else None


def parse_calibration(text: str, source: str | Path = CALIBRATION_FILE) -> SizingCalibration:
    """A calibration from its JSON text (``source`` names it in errors)."""
    try:
        data = json.loads(text)
        if data.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        bias = {k: float(data["refine"][k]) for k in BIAS_KEYS}
        models = {str(k): str(v) for k, v in data["models"].items()}
        flow = str(data["flow"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{source}: not a valid full-pipeline calibration ({exc})") from None
    meta = {k: v for k, v in data.items() if k not in ("format", "refine", "models", "flow")}
    return SizingCalibration(bias, models, flow, meta)


@dataclass
class FullResult:
    circles: np.ndarray  # (N, 3) in input OM pixels
    scores: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = None  # the enhanced image, when asked for
    uncalibrated: np.ndarray | None = None  # circles with the detector's own refinement bias, when asked for


class FullPipeline:
    """OM image -> circles in OM pixels through the SEM-like domain."""

    def __init__(
        self,
        enhancer: Enhancer,
        sem_detector: Detector,
        om_detector: Detector | None = None,
        guide: GuideConfig | None = None,
        calibration: SizingCalibration | None = None,
    ) -> None:
        self.enhancer = enhancer
        self.sem_detector = sem_detector
        self.om_detector = om_detector
        self.guide = guide or GuideConfig()
        self.calibration = calibration

    def enhance_for(self, om: np.ndarray, diameter_range: tuple[float, float] | None = None, timer=None):
        """The enhanced image and the SEM detector's diameter range on its grid (None: automatic)."""
        ctx = timer if timer is not None else (lambda _name: contextlib.nullcontext())
        info: dict[str, Any] = {}
        d_hint, d_range = None, diameter_range
        if diameter_range is not None:
            d_hint = math.sqrt(diameter_range[0] * diameter_range[1])
            info["size_from"] = "diameter_range"
        else:
            with ctx("guide"):
                guide, pass_info = self.guide_pass(om)
            if guide is not None:
                d_hint, d_range = guide
                info["size_from"] = "om_detector"
                info["guide_median_diameter_px"] = d_hint
                info.update(pass_info)
            else:
                info["size_from"] = "estimate"
        result = self.enhancer.enhance(om, diameter_px=d_hint, timer=timer)
        if info["size_from"] == "om_detector" and self.guide.verify:
            with ctx("verify"):
                check = self._sem_side_guide(om, result.image)
            if check is not None:
                d_sem, range_sem = check
                info["verify_median_diameter_px"] = d_sem
                # Upward only: a too-small OM guide (gaps read as particles) is the failure seen; a too-small
                # SEM-side median means the translation has texture the SEM detector reads as specks, and
                # re-planning on it would blow the image up and flood it with false circles.
                if d_sem > self.guide.verify_ratio * d_hint:
                    info["size_from"] = "sem_check"
                    d_hint, d_range = d_sem, range_sem
                    result = self.enhancer.enhance(om, diameter_px=d_hint, timer=timer)
        scale = result.plan.output_scale
        sem_range = None if d_range is None else (d_range[0] * scale, d_range[1] * scale)
        info["enhance"] = result.plan.to_dict() | {"flow": self.enhancer.cfg.flow, "sr_mode": self.enhancer.cfg.sr_mode}
        return result, sem_range, info

    def _sem_side_guide(self, om: np.ndarray, enhanced: np.ndarray) -> tuple[float, tuple[float, float]] | None:
        """The size guide read by the SEM detector (automatic range) on a window of the enhanced image,
        in input OM px: (median diameter, range), or None when it finds too few particles."""
        check = size_guide(self.sem_detector, enhanced, replace(self.guide, max_pixels=self.guide.verify_max_pixels))
        if check is None:
            return None
        sx, sy = output_scales(om.shape, enhanced.shape)
        s = math.sqrt(sx * sy)
        return check[0] / s, (check[1][0] / s, check[1][1] / s)

    def size_guide(self, om: np.ndarray) -> tuple[float, tuple[float, float]] | None:
        """(median diameter, (d_min, d_max)) in OM px from the OM detector, or None when unusable."""
        return self.guide_pass(om)[0]

    def guide_pass(self, om: np.ndarray) -> tuple[tuple[float, tuple[float, float]] | None, dict]:
        """:meth:`size_guide` and what its detector pass cost (:func:`srpsa.inference.guide.guide_pass`)."""
        if self.om_detector is None or not self.guide.enabled:
            return None, {}
        return guide_pass(self.om_detector, om, self.guide)

    def detect(
        self,
        om: np.ndarray,
        *,
        diameter_range: tuple[float, float] | None = None,
        refine: bool = True,
        timer=None,
        return_image: bool = False,
        return_uncalibrated: bool = False,
    ) -> FullResult:
        """Detect particles of an OM image through translation and super-resolution.

        ``diameter_range`` (OM px), when the user knows it, replaces the guide. ``return_image`` keeps
        the enhanced image, ``return_uncalibrated`` also the circles refined with the SEM detector's own
        bias terms (for benchmarks of the calibration).
        """
        ctx = timer if timer is not None else (lambda _name: contextlib.nullcontext())
        om = to_gray(om)
        result, sem_range, info = self.enhance_for(om, diameter_range, timer)
        scale = output_scales(om.shape, result.image.shape)
        det = self.sem_detector
        uncal = None
        with ctx("detect"):
            use_cal = refine and self.calibration is not None and det.cfg.refine.enabled
            # A user's --diameter-range is taken as given; the guide's range is a starting point (and
            # without either, the detector's own default applies: automatic scales may extend).
            extend = True if info["size_from"] in ("om_detector", "sem_check") else None
            circles, scores, det_info = det.detect(result.image, diameter_range=sem_range, refine=False, extend=extend)
            if refine and det.cfg.refine.enabled and len(circles) and (return_uncalibrated or not use_cal):
                uncal, _ = refine_circles(result.image, circles, det.cfg.refine)
            if use_cal and len(circles):
                circles, _ = refine_circles(result.image, circles, replace(det.cfg.refine, **self.calibration.bias))
            elif uncal is not None:
                circles = uncal
        info["sem_scales"] = list(det_info.get("scales", []))
        info["sizing_calibration"] = bool(use_cal)
        return FullResult(
            to_input_coordinates(circles, scale), scores, info,
            image=result.image if return_image else None,
            uncalibrated=to_input_coordinates(uncal if uncal is not None else circles, scale) if return_uncalibrated else None,
        )
