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

Bounded cost (issue 16, docs/decisions.md "Bounded cost"): the translation enlarges at most
``EnhanceConfig.max_upscale`` (3x); particles whose typical size is below ``native_below_px`` (16 px)
skip the GANs and are measured by the OM detector at native scale (``route: native`` in the info); and
when the enhanced image would exceed :data:`srpsa.inference.blocks.BLOCK_PIXELS`, the chain runs block
by block (:func:`srpsa.inference.blocks.detect_in_blocks`), so no upscaled image of the whole frame is
ever made.
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
from srpsa.inference import blocks as B
from srpsa.inference.blocks import block_layout, bounded_detect, detect_in_blocks
from srpsa.inference.detect import Detector
from srpsa.inference.enhance import Enhancer, output_scales, to_input_coordinates
from srpsa.inference.guide import GuideConfig, guide_pass, size_guide
from srpsa.inference.refine import refine_circles
from srpsa.inference.window import centred_window
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

    def size_plan(self, om: np.ndarray, diameter_range: tuple[float, float] | None = None, timer=None):
        """(typical diameter or None, detector range or None, info) in OM px: the user's range or the guide."""
        ctx = timer if timer is not None else (lambda _name: contextlib.nullcontext())
        info: dict[str, Any] = {}
        if diameter_range is not None:
            info["size_from"] = "diameter_range"
            return math.sqrt(diameter_range[0] * diameter_range[1]), diameter_range, info
        with ctx("guide"):
            guide, pass_info = self.guide_pass(om)
        if guide is None:
            info["size_from"] = "estimate"
            return None, None, info
        info["size_from"] = "om_detector"
        info["guide_median_diameter_px"] = guide[0]
        info.update(pass_info)
        return guide[0], guide[1], info

    def enhance_for(self, om: np.ndarray, diameter_range: tuple[float, float] | None = None, timer=None, *, plan=None):
        """The enhanced image and the SEM detector's diameter range on its grid (None: automatic).

        ``plan`` is a :meth:`size_plan` result already made (else it is made here)."""
        ctx = timer if timer is not None else (lambda _name: contextlib.nullcontext())
        d_hint, d_range, info = plan if plan is not None else self.size_plan(om, diameter_range, timer)
        result = self.enhancer.enhance(om, diameter_px=d_hint, timer=timer)
        if info["size_from"] == "om_detector" and self.guide.verify:
            with ctx("verify"):
                check = self._sem_side_guide(om, result.image)
            d_hint, d_range, replan = self._verified(info, d_hint, d_range, check)
            if replan:
                result = self.enhancer.enhance(om, diameter_px=d_hint, timer=timer)
        scale = result.plan.output_scale
        sem_range = None if d_range is None else (d_range[0] * scale, d_range[1] * scale)
        info["enhance"] = result.plan.to_dict() | {"flow": self.enhancer.cfg.flow, "sr_mode": self.enhancer.cfg.sr_mode}
        return result, sem_range, info

    def _verified(self, info: dict, d_hint: float, d_range, check):
        """Apply the SEM-side check: (diameter, range, whether to re-plan)."""
        if check is None:
            return d_hint, d_range, False
        d_sem, range_sem = check
        info["verify_median_diameter_px"] = d_sem
        # Upward only: a too-small OM guide (gaps read as particles) is the failure seen; a too-small
        # SEM-side median means the translation has texture the SEM detector reads as specks, and
        # re-planning on it would blow the image up and flood it with false circles.
        if d_sem > self.guide.verify_ratio * d_hint:
            info["size_from"] = "sem_check"
            return d_sem, range_sem, True
        return d_hint, d_range, False

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
        plan = self.size_plan(om, diameter_range, timer)
        d_hint, d_range, info = plan
        cfg = self.enhancer.cfg
        if (self.om_detector is not None and d_hint is not None and d_range is not None and cfg.flow == "adaptive"
                and d_hint < cfg.native_below_px and not return_image):
            return self._detect_native(om, d_range, info, refine, ctx)
        s_out = self.enhancer.plan(om, d_hint).output_scale if d_hint is not None else None
        if s_out is not None and not (return_image or return_uncalibrated) and cfg.flow == "adaptive":
            d_max = d_range[1] if d_range is not None else 3.0 * d_hint
            layout = block_layout(om.shape, s_out, d_max, context_px=64.0 / s_out, max_pixels=B.BLOCK_PIXELS)
            if layout is not None:
                return self._detect_blocks(om, plan, layout, refine, ctx, timer)
        result, sem_range, info = self.enhance_for(om, diameter_range, timer, plan=plan)
        scale = output_scales(om.shape, result.image.shape)
        with ctx("detect"):
            circles, scores, uncal, use_cal, det_info = self._sem_detect(result.image, sem_range, info, refine, return_uncalibrated)
        info["sem_scales"] = list(det_info.get("scales", []))
        info["sizing_calibration"] = bool(use_cal)
        return FullResult(
            to_input_coordinates(circles, scale), scores, info,
            image=result.image if return_image else None,
            uncalibrated=to_input_coordinates(uncal if uncal is not None else circles, scale) if return_uncalibrated else None,
        )

    def _sem_detect(self, image: np.ndarray, sem_range, info: dict, refine: bool, return_uncalibrated: bool = False):
        """SEM detector on an enhanced image: (circles, scores, uncalibrated circles or None, calibrated?,
        the detection's info)."""
        det = self.sem_detector
        uncal = None
        use_cal = refine and self.calibration is not None and det.cfg.refine.enabled
        # A user's --diameter-range is taken as given; the guide's range is a starting point (and
        # without either, the detector's own default applies: automatic scales may extend).
        extend = True if info["size_from"] in ("om_detector", "sem_check") else None
        circles, scores, det_info = det.detect(image, diameter_range=sem_range, refine=False, extend=extend)
        if refine and det.cfg.refine.enabled and len(circles) and (return_uncalibrated or not use_cal):
            uncal, _ = refine_circles(image, circles, det.cfg.refine)
        if use_cal and len(circles):
            circles, _ = refine_circles(image, circles, replace(det.cfg.refine, **self.calibration.bias))
        elif uncal is not None:
            circles = uncal
        return circles, scores, uncal, use_cal, det_info

    def _detect_native(self, om: np.ndarray, d_range, info: dict, refine: bool, ctx) -> FullResult:
        """Small particles: the OM detector at (or near) native scale, no GANs (module docstring)."""
        det = self.om_detector
        # The guide's range is a starting point (the pyramid may extend); a user's range is taken as given.
        extend = info["size_from"] != "diameter_range"
        with ctx("detect"):
            circles, scores, n_blocks, det_info = bounded_detect(det, om, d_range, refine=refine, extend=extend, max_pixels=B.BLOCK_PIXELS)
        d_typ = info.get("guide_median_diameter_px") or math.sqrt(d_range[0] * d_range[1])
        info["route"] = "native"
        info["route_reason"] = (f"typical diameter {d_typ:.3g} px < {self.enhancer.cfg.native_below_px:g} px: "
                                "OM detector at native scale, no translation")
        info["om_scales"] = list(det_info.get("scales", []))
        info["blocks"] = n_blocks
        info["enhance"] = None
        info["sizing_calibration"] = False
        return FullResult(circles, scores, info)

    def _detect_blocks(self, om: np.ndarray, plan, layout: tuple[int, int], refine: bool, ctx, timer) -> FullResult:
        """Enhance and detect block by block (no upscaled image of the whole frame is ever made)."""
        d_hint, d_range, info = plan
        if info["size_from"] == "om_detector" and self.guide.verify:
            # The SEM-side check reads a window of the enhanced image: enhance only that window.
            s_out = self.enhancer.plan(om, d_hint).output_scale
            ys, xs = centred_window(om.shape, max(self.guide.verify_max_pixels / (s_out * s_out), 64 * 64))
            window = om[ys, xs]
            with ctx("verify"):
                check = self._sem_side_guide(window, self.enhancer.enhance(window, diameter_px=d_hint).image)
            d_hint, d_range, _ = self._verified(info, d_hint, d_range, check)
            d_max = d_range[1] if d_range is not None else 3.0 * d_hint
            layout = block_layout(om.shape, self.enhancer.plan(om, d_hint).output_scale, d_max, context_px=64.0 / s_out,
                                  max_pixels=B.BLOCK_PIXELS) or layout
        plans = []

        def run(block: np.ndarray):
            res = self.enhancer.enhance(block, diameter_px=d_hint, timer=timer)
            sc = res.plan.output_scale
            sem_range = None if d_range is None else (d_range[0] * sc, d_range[1] * sc)
            with ctx("detect"):
                c, s, _, use_cal, det_info = self._sem_detect(res.image, sem_range, info, refine)
            plans.append((res.plan, use_cal, det_info))
            return to_input_coordinates(c, output_scales(block.shape, res.image.shape)), s

        circles, scores, n_blocks = detect_in_blocks(run, om, *layout, nms_thresh=self.sem_detector.nms_thresh)
        info["enhance"] = plans[0][0].to_dict() | {"flow": self.enhancer.cfg.flow, "sr_mode": self.enhancer.cfg.sr_mode}
        info["sem_scales"] = list(plans[0][2].get("scales", []))  # of the first block
        info["sizing_calibration"] = bool(plans[0][1])
        info["blocks"] = n_blocks
        return FullResult(circles, scores, info)


