"""`srpsa analyze` for one image: load -> (translate -> super-resolve) -> detect -> statistics -> outputs.

The function :func:`analyze_image` is what a worker runs (locally, in a process pool, or on a Dask
worker); it takes only picklable settings and returns a small result dict, so every scheduler gives the
same files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from srpsa.errors import ParameterError, SrpsaError
from srpsa.inference import defaults as D
from srpsa.io.calibration import is_pixel_size

MODALITIES = ("om", "sem")
PIPELINES = ("full", "detect-only")


@dataclass(frozen=True)
class AnalyzeSettings:
    """Everything that decides an analysis result (saved in each summary.json); defaults: defaults.py.

    Bad values raise :class:`~srpsa.errors.ParameterError` naming the field (the CLI shows its flag).
    """

    modality: str = D.MODALITY
    pipeline: str = D.PIPELINE  # OM input: "full" (through the GANs) or "detect-only"
    pixel_size_um: float | None = None  # explicit override of the file's calibration
    weights: str | None = None  # weights root (None: $SRPSA_WEIGHTS_DIR or the shipped weights)
    diameter_range: tuple[float, float] | None = None
    diameter_unit: str = D.DIAMETER_UNIT  # unit of diameter_range: "px" or "um"
    include_edge: bool = D.INCLUDE_EDGE  # ISO 13322-1: border-cut particles are excluded from statistics
    refine: bool = D.REFINE  # sub-pixel radial edge refinement after the network
    bootstrap: int = D.BOOTSTRAP  # resamples for the 95 % confidence intervals (0: none)
    seed: int = D.SEED
    prune_weak: bool = D.PRUNE_WEAK  # self-check drops structureless circles when they are many (quality.py)
    enhance_flow: str = D.ENHANCE_FLOW  # full pipeline: "adaptive" (scale follows the particles) or "paper"
    backend: str = D.BACKEND  # detector engine: "auto", "torch" or "onnx"; recorded resolved
    enhance_sr: str = D.ENHANCE_SR  # full pipeline: "none" (detector reads the translation) or "model" (ESRGAN)
    # largest declared image size decoded; does not change results, so resume ignores it
    max_pixels: int = D.MAX_PIXELS
    # pre-flight memory limit in GB (inference/budget.py); does not change results, so resume ignores it
    max_memory_gb: float = D.MAX_MEMORY_GB
    shape: bool = True  # shape descriptors and flags per particle (srpsa.psd.shape)
    exclude_flagged: bool = False  # statistics leave out particles flagged by shape
    exports: tuple[str, ...] = ()  # interchange files (srpsa.io.exports.EXPORTS); not part of the result
    meta: tuple[tuple[str, str], ...] = ()  # sample metadata (srpsa.io.meta), copied into summary.json
    spec: str = ""  # specification checked per image (srpsa.psd.spec), e.g. "D50=400..450,CV<15"
    roi: str | None = None  # field of view: "auto" or a mask file (srpsa.inference.fov); cut particles -> edge

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ParameterError("modality", f"must be one of {', '.join(MODALITIES)}, got '{self.modality}'")
        if self.pipeline not in PIPELINES:
            raise ParameterError("pipeline", f"must be one of {', '.join(PIPELINES)}, got '{self.pipeline}'")
        if self.pixel_size_um is not None and not is_pixel_size(self.pixel_size_um):
            raise ParameterError("pixel_size_um", f"must be > 0 (a finite number of um per pixel), got {self.pixel_size_um}")
        from srpsa.inference.backend import BACKEND_CHOICES, resolve_backend

        if self.backend not in BACKEND_CHOICES:
            raise ParameterError("backend", f"must be one of {', '.join(BACKEND_CHOICES)}, got '{self.backend}'")
        # Recorded resolved: summary.json says which engine ran.
        object.__setattr__(self, "backend", resolve_backend(self.backend))
        from srpsa.inference.enhance import FLOWS, SR_MODES

        if self.enhance_flow not in FLOWS:
            raise ParameterError("enhance_flow", f"must be one of {', '.join(FLOWS)}, got '{self.enhance_flow}'")
        if self.enhance_sr not in SR_MODES:
            raise ParameterError("enhance_sr", f"must be one of {', '.join(SR_MODES)}, got '{self.enhance_sr}'")
        if self.diameter_unit not in ("px", "um"):
            raise ParameterError("diameter_unit", f"must be 'px' or 'um', got '{self.diameter_unit}'")
        if self.diameter_range is not None:
            try:
                lo, hi = (float(v) for v in self.diameter_range)
            except (TypeError, ValueError):
                raise ParameterError("diameter_range", f"must be two numbers (MIN, MAX), got {self.diameter_range!r}") from None
            if not (0 < lo < hi) or not math.isfinite(hi):
                raise ParameterError("diameter_range", f"needs finite 0 < MIN < MAX, got {lo} {hi}")
            object.__setattr__(self, "diameter_range", (lo, hi))
            if self.diameter_unit == "px":
                from srpsa.inference.limits import check_diameter_range_px

                check_diameter_range_px(lo, hi)
        from srpsa.inference.budget import valid_max_memory

        if not valid_max_memory(self.max_memory_gb):
            raise ParameterError("max_memory_gb", f"must be a positive number of GB, got {self.max_memory_gb!r}")
        from srpsa.io.exports import parse_exports

        exports = self.exports if isinstance(self.exports, str) else ",".join(self.exports)
        object.__setattr__(self, "exports", parse_exports(exports))
        from srpsa.psd.spec import parse_spec

        parse_spec(self.spec)  # a bad --spec fails before any work
        from srpsa.inference.fov import check_roi_setting

        check_roi_setting(self.roi)
        if self.roi and self.roi != "auto":  # recorded absolute, so resume and workers find the same file
            object.__setattr__(self, "roi", str(Path(self.roi).resolve()))
        if self.exclude_flagged and not self.shape:
            raise ParameterError("exclude_flagged", "needs the shape flags; drop --no-shape (shape=False)")
        if not (isinstance(self.max_pixels, int) and self.max_pixels > 0):
            raise ParameterError("max_pixels", f"must be a positive number of pixels, got {self.max_pixels}")
        if not (isinstance(self.bootstrap, int) and self.bootstrap >= 0):
            raise ParameterError("bootstrap", f"must be a whole number >= 0, got {self.bootstrap!r}")


@dataclass
class StageTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.t0

        return _Ctx()


def output_names(images: list[Path]) -> list[str]:
    """Output folder name per image: its stem when safe and unique, else cleaned and tagged (names.py)."""
    from srpsa.inference.names import safe_output_names

    return safe_output_names(images)


def is_done(out: Path) -> bool:
    """An image is finished when its summary.json exists: it is written last, atomically."""
    return (out / "summary.json").is_file()


def analyze_image(image_path: str | Path, out: str | Path, settings: AnalyzeSettings) -> dict:
    """Analyse one image and write ``out/`` (particles.csv, overlay.png, psd.png, summary.json).

    ``srpsa analyze`` per image: read -> :meth:`srpsa.Analyzer.analyze` -> :meth:`srpsa.Result.save`.
    Returns the summary dict. Raises :class:`SrpsaError` for bad input or missing models.
    """
    from srpsa.inference.analyzer import Analyzer

    image_path = Path(image_path)
    t0 = time.perf_counter()
    # Models are cached per process (analyzer.py), so an Analyzer per image does not reload them.
    analyzer = Analyzer(settings=settings)
    loading = time.perf_counter() - t0
    result = analyzer.analyze(image_path)
    result.summary["seconds"]["total"] = round(result.summary["seconds"]["total"] + loading, 4)  # as before: all of it
    result.save(out, title=image_path.name)
    return result.summary


def analyze_image_safe(image_path: str | Path, out: str | Path, settings: AnalyzeSettings) -> dict:
    """Worker entry: never raises; returns {'path', 'status': ok|error, 'error', 'summary'}."""
    try:
        summary = analyze_image(image_path, out, settings)
        return {"path": str(image_path), "status": "ok", "error": "", "summary": summary}
    except SrpsaError as exc:
        return {"path": str(image_path), "status": "error", "error": str(exc), "summary": None}
    except Exception as exc:  # a bug on one image must not lose the rest of the batch
        return {"path": str(image_path), "status": "error", "error": f"internal error: {type(exc).__name__}: {exc}", "summary": None}
