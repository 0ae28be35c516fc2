"""`srpsa analyze` for one image: load -> (translate -> super-resolve) -> detect -> statistics -> outputs.

The function :func:`analyze_image` is what a worker runs (locally, in a process pool, or on a Dask
worker); it takes only picklable settings and returns a small result dict, so every scheduler gives the
same files.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from srpsa import __version__
from srpsa.errors import InputError, SrpsaError
from srpsa.inference import weights as W
from srpsa.io.atomic import atomic_open, atomic_write_text

MODALITIES = ("om", "sem")
PIPELINES = ("full", "detect-only")


@dataclass(frozen=True)
class AnalyzeSettings:
    """Everything that decides an analysis result (saved in each summary.json)."""

    modality: str = "om"
    pipeline: str = "full"  # OM input: "full" (through the GANs, the default since session 5) or "detect-only"
    pixel_size_um: float | None = None  # explicit override of the file's calibration
    weights: str | None = None  # weights root (None: $SRPSA_WEIGHTS_DIR or the shipped weights)
    diameter_range: tuple[float, float] | None = None
    diameter_unit: str = "px"  # unit of diameter_range: "px" or "um"
    include_edge: bool = False  # ISO 13322-1: border-cut particles are excluded from statistics
    refine: bool = True  # sub-pixel radial edge refinement after the network
    bootstrap: int = 1000  # resamples for the 95 % confidence intervals (0: none)
    seed: int = 0
    enhance_flow: str = "adaptive"  # full pipeline: "adaptive" (scale follows the particles) or "paper"
    backend: str = "torch"  # detector engine: "torch" or "onnx" (ONNX Runtime, faster on CPUs)
    # full pipeline: "none" (the SEM detector reads the translation; default, docs/decisions.md) or "model"
    # (the ESRGAN stage in between, the paper's chain)
    enhance_sr: str = "none"
    # largest declared image size decoded (= srpsa.io.guard.DEFAULT_MAX_PIXELS, not imported here to keep
    # this module light); does not change results, so resume ignores it
    max_pixels: int = 178_956_970
    shape: bool = True  # shape descriptors and flags per particle (srpsa.psd.shape)
    exclude_flagged: bool = False  # statistics leave out particles flagged by shape
    exports: tuple[str, ...] = ()  # interchange files (srpsa.io.exports.EXPORTS); not part of the result
    meta: tuple[tuple[str, str], ...] = ()  # sample metadata (srpsa.io.meta), copied into summary.json
    spec: str = ""  # specification checked per image (srpsa.psd.spec), e.g. "D50=400..450,CV<15"
    roi: str | None = None  # field of view: "auto" or a mask file (srpsa.inference.fov); cut particles -> edge

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise InputError(f"--modality must be one of {', '.join(MODALITIES)}, got '{self.modality}'")
        if self.pipeline not in PIPELINES:
            raise InputError(f"--pipeline must be one of {', '.join(PIPELINES)}, got '{self.pipeline}'")
        if self.pixel_size_um is not None and not (self.pixel_size_um > 0 and math.isfinite(self.pixel_size_um)):
            raise InputError(f"--pixel-size must be a positive number of um per pixel, got {self.pixel_size_um}")
        from srpsa.inference.backend import BACKEND_CHOICES, resolve_backend

        if self.backend not in BACKEND_CHOICES:
            raise InputError(f"--backend must be one of {', '.join(BACKEND_CHOICES)}, got '{self.backend}'")
        # Recorded resolved: summary.json says which engine ran.
        object.__setattr__(self, "backend", resolve_backend(self.backend))
        from srpsa.inference.enhance import FLOWS, SR_MODES

        if self.enhance_flow not in FLOWS:
            raise InputError(f"--flow must be adaptive or paper, got '{self.enhance_flow}'")
        if self.enhance_sr not in SR_MODES:
            raise InputError(f"--sr must be model or none, got '{self.enhance_sr}'")
        if self.diameter_unit not in ("px", "um"):
            raise InputError(f"diameter unit must be 'px' or 'um', got '{self.diameter_unit}'")
        if self.diameter_range is not None:
            lo, hi = self.diameter_range
            if not (0 < lo < hi) or not math.isfinite(hi):
                raise InputError(f"--diameter-range needs finite 0 < MIN < MAX, got {lo} {hi}")
            if self.diameter_unit == "px":
                from srpsa.inference.limits import check_diameter_range_px

                check_diameter_range_px(lo, hi)
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
            raise InputError("--exclude-flagged needs the shape flags; drop --no-shape")
        if not (isinstance(self.max_pixels, int) and self.max_pixels > 0):
            raise InputError(f"--max-pixels must be a positive number of pixels, got {self.max_pixels}")


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


@functools.lru_cache(maxsize=2)
def _load_full_pipeline(root: str, translate_dir: str, superres_dir: str, sem_dir: str, om_dir: str, flow: str, backend: str,
                        hashes: tuple[tuple[str, str], ...], calibration_text: str | None, sr_mode: str = "model"):
    """The full pipeline and, if its sizing calibration cannot be used, why (cached per process and per
    weights and calibration content, both part of the key, so replaced files are never served stale)."""
    from srpsa.inference.enhance import EnhanceConfig, Enhancer
    from srpsa.inference.full import CALIBRATION_FILE, FullPipeline, flow_key, parse_calibration

    enhancer = Enhancer.load(translate_dir, superres_dir, EnhanceConfig(flow=flow, sr_mode=sr_mode), backend=backend)
    flow = flow_key(flow, sr_mode)
    cal = None if calibration_text is None else parse_calibration(calibration_text, Path(root) / CALIBRATION_FILE)
    note = None
    # No calibration is the shipped state (the GPU-trained GANs size the simulator presets within 2 %,
    # docs/gans.md), so its absence is recorded (summary "sizing_calibration": false), not warned about;
    # a calibration that exists but belongs to other models is a warning.
    if cal is not None:
        why = cal.mismatch(dict(hashes), flow)
        if why:
            note = f"sizing calibration {CALIBRATION_FILE} not applied: {why} (re-run scripts/calibrate_full_pipeline.py)"
            cal = None
    pipe = FullPipeline(enhancer, _load_detector(sem_dir, backend), _load_detector(om_dir, backend), calibration=cal)
    return pipe, note


def _calibration_text(weights: str | None) -> str | None:
    from srpsa.inference.full import CALIBRATION_FILE

    path = W.weights_root(weights) / CALIBRATION_FILE
    return path.read_text() if path.is_file() else None


@functools.lru_cache(maxsize=4)
def _load_detector(folder: str, backend: str = "torch"):
    # Cached per process: a pool worker loads each model once, not once per image.
    from srpsa.inference.detect import Detector

    return Detector.load(folder, backend=backend)


def _models_for(settings: AnalyzeSettings) -> list[str]:
    if settings.modality == "sem":
        return [W.DETECTOR_SEM]
    if settings.pipeline == "detect-only":
        return [W.DETECTOR_OM]
    # The OM detector guides the working scales (srpsa.inference.full); the SEM detector measures.
    return [W.TRANSLATOR, W.SUPERRES, W.DETECTOR_OM, W.DETECTOR_SEM]


def _diameter_range_px(settings: AnalyzeSettings, pixel_size_um: float | None) -> tuple[float, float] | None:
    if settings.diameter_range is None:
        return None
    if settings.diameter_unit == "px":
        return settings.diameter_range
    if not pixel_size_um:
        raise InputError("--diameter-range in um needs a pixel size (--pixel-size or calibrated image)")
    lo, hi = settings.diameter_range
    return lo / pixel_size_um, hi / pixel_size_um


def output_names(images: list[Path]) -> list[str]:
    """Output folder name per image: its stem when safe and unique, else cleaned and tagged (names.py)."""
    from srpsa.inference.names import safe_output_names

    return safe_output_names(images)


def is_done(out: Path) -> bool:
    """An image is finished when its summary.json exists: it is written last, atomically."""
    return (out / "summary.json").is_file()


def analyze_image(image_path: str | Path, out: str | Path, settings: AnalyzeSettings) -> dict:
    """Analyse one image and write ``out/`` (particles.csv, overlay.png, psd.png, summary.json).

    Returns the summary dict. Raises :class:`SrpsaError` for bad input or missing models.
    """
    from srpsa.inference.fov import apply_roi
    from srpsa.io import read_image
    from srpsa.psd import count_warnings, select_for_statistics, size_statistics
    from srpsa.psd.particles import particle_table
    from srpsa.psd.shape import add_shape
    from srpsa.report.figures import plot_overlay, plot_psd

    t_start = time.perf_counter()
    image_path = Path(image_path)
    out = Path(out)
    timer = StageTimer()
    warnings: list[str] = []

    with timer("load"):
        loaded = read_image(image_path, pixel_size_um=settings.pixel_size_um, max_pixels=settings.max_pixels)
        pixel_size, source = loaded.pixel_size_um, loaded.pixel_size_source
        warnings.extend(loaded.warnings)  # includes the "uncalibrated: sizes in px" warning
    unit = "um" if pixel_size else "px"

    model_names = _models_for(settings)
    model_dirs = {name: W.model_dir(name, settings.weights) for name in model_names}
    model_hashes = {name: W.weights_hash(folder) for name, folder in model_dirs.items()}
    image = loaded.data
    diameter_range = _diameter_range_px(settings, pixel_size)
    if diameter_range is not None:
        from srpsa.inference.limits import check_diameter_range_px

        warnings.extend(check_diameter_range_px(*diameter_range))
    enhance_info = detect_info = None
    if settings.pipeline == "full" and settings.modality == "om":
        # OM -> translate -> super-resolve at a particle-following scale; the SEM-domain detector then
        # works on the SEM-like image and its circles are mapped back to input pixels.
        pipe, note = _load_full_pipeline(
            str(W.weights_root(settings.weights)), str(model_dirs[W.TRANSLATOR]), str(model_dirs[W.SUPERRES]),
            str(model_dirs[W.DETECTOR_SEM]), str(model_dirs[W.DETECTOR_OM]), settings.enhance_flow, settings.backend,
            tuple(sorted(model_hashes.items())), _calibration_text(settings.weights), settings.enhance_sr,
        )
        if note:
            warnings.append(note)
        res = pipe.detect(image, diameter_range=diameter_range, refine=settings.refine, timer=timer)
        circles, scores = res.circles, res.scores
        enhance_info = {**res.info.pop("enhance"), **res.info}
    else:
        from srpsa.inference.guide import guided_detect

        detector = _load_detector(str(model_dirs[model_names[-1]]), settings.backend)
        with timer("detect"):
            if diameter_range is None:
                # Large images: the detector's own detections on a window set the scales (docs/speed.md).
                circles, scores, detect_info = guided_detect(detector, image, refine=settings.refine)
            else:
                circles, scores = detector.detect(image, diameter_range=diameter_range, refine=settings.refine)
                detect_info = {"size_from": "diameter_range"}
            detect_info["scales"] = list(detector.last_info.get("scales", []))

    with timer("statistics"):
        table = particle_table(circles, scores, image.shape, pixel_size)
        table, roi_info, roi_warnings = apply_roi(table, image, settings.roi)
        warnings.extend(roi_warnings)
        used = select_for_statistics(table["edge"].to_numpy().astype(bool), include_edge=settings.include_edge)
        table, used, shape_info, shape_warnings = add_shape(table, image, used, pixel_size, enabled=settings.shape, exclude_flagged=settings.exclude_flagged)
        warnings.extend(shape_warnings)
        diam = (2.0 * table["r_px"].to_numpy() * (pixel_size or 1.0))[used]
        stats = {
            weighting: size_statistics(
                diam, weighting=weighting, unit=unit, ci=settings.bootstrap > 0, n_boot=max(settings.bootstrap, 1), seed=settings.seed
            ).to_dict()
            for weighting in ("number", "volume")
        }
        if len(diam) > 1:
            warnings.extend(count_warnings(diam))
        if len(table) == 0:
            warnings.append("no particles detected")
        n_edge = int(table["edge"].sum())
        if n_edge and not settings.include_edge:
            warnings.append(f"{n_edge} particles touch the image border and are excluded from statistics (--include-edge keeps them)")

    with timer("write"):
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "particles.csv", "w", newline="") as fh:
            table.to_csv(fh, index=False, float_format="%.4f")
        plot_overlay(loaded.rgb if loaded.rgb is not None else image, circles, out / "overlay.png", edge=table["edge"].to_numpy().astype(bool), scores=scores,
                     ids=table["id"].to_numpy(), pixel_size_um=pixel_size)
        plot_psd(diam, out / "psd.png", unit=unit, title=image_path.name, ci={k: v.get("ci") for k, v in stats.items()})
        if settings.exports:
            from srpsa.io.exports import write_exports

            write_exports(out, out.name, table, image.shape, pixel_size, settings.exports)

    summary = {
        "image": str(image_path.resolve()),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "pixel_size_um": pixel_size,
        "pixel_size_source": source,
        "unit": unit,
        "count": int(len(table)),
        "count_used": int(used.sum()),
        "count_edge": n_edge,
        "statistics": {"Q0": stats["number"], "Q3": stats["volume"]},
        "kde_method": stats["number"].get("kde_method"),
        "shape": shape_info,
        "roi": roi_info,
        "models": {name: {"path": str(folder), "sha256": model_hashes[name]} for name, folder in model_dirs.items()},
        "settings": asdict(settings),
        "fingerprint": _fingerprint(settings, model_hashes),  # what resume compares (inference/resume.py)
        "software": {"srpsa": __version__},
        "enhance": enhance_info,
        "detect": detect_info,
        "seconds": {**{k: round(v, 4) for k, v in timer.seconds.items()}, "total": round(time.perf_counter() - t_start, 4)},
        "warnings": warnings,
    }
    summary.update(_qc_fields(settings, summary))
    # summary.json last: its presence marks the image as finished for --resume (see is_done).
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=_json_default))
    return summary


def _qc_fields(settings: AnalyzeSettings, summary: dict) -> dict:
    """summary.json's ``meta`` and ``spec`` (pass/fail of this image) entries."""
    from srpsa.psd.spec import evaluate_spec, parse_spec

    spec = evaluate_spec(parse_spec(settings.spec), summary["statistics"], summary["unit"]) if settings.spec else None
    return {"meta": dict(settings.meta), "spec": spec}


def _fingerprint(settings: AnalyzeSettings, hashes: dict[str, str]) -> str:
    from srpsa.inference.resume import fingerprint

    return fingerprint(settings, hashes)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def analyze_image_safe(image_path: str | Path, out: str | Path, settings: AnalyzeSettings) -> dict:
    """Worker entry: never raises; returns {'path', 'status': ok|error, 'error', 'summary'}."""
    try:
        summary = analyze_image(image_path, out, settings)
        return {"path": str(image_path), "status": "ok", "error": "", "summary": summary}
    except SrpsaError as exc:
        return {"path": str(image_path), "status": "error", "error": str(exc), "summary": None}
    except Exception as exc:  # a bug on one image must not lose the rest of the batch
        return {"path": str(image_path), "status": "error", "error": f"internal error: {type(exc).__name__}: {exc}", "summary": None}
