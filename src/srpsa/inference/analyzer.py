"""One image in, a :class:`~srpsa.inference.result.Result` out: :class:`Analyzer` loads the models of one
pipeline once and analyses arrays, files or loaded images with them; :func:`analyze` is the one-call form.

``srpsa analyze`` runs exactly this per image (``analyze_image`` = read -> :meth:`Analyzer.analyze` ->
:meth:`Result.save`), so the library and the command line give the same circles.

    >>> import srpsa                                         # doctest: +SKIP
    >>> result = srpsa.analyze(image, pixel_size_um=0.4)     # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from srpsa import __version__
from srpsa.errors import ParameterError
from srpsa.inference import defaults as D
from srpsa.inference import weights as W
from srpsa.inference.pipeline import AnalyzeSettings, StageTimer
from srpsa.inference.result import Result, Statistics


@functools.lru_cache(maxsize=2)
def _load_full_pipeline(root: str, translate_dir: str, superres_dir: str, sem_dir: str, om_dir: str, flow: str, backend: str,
                        hashes: tuple[tuple[str, str], ...], calibration_text: str | None, sr_mode: str):
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
    pipe = FullPipeline(enhancer, load_detector(sem_dir, backend), load_detector(om_dir, backend), calibration=cal)
    return pipe, note


def _calibration_text(weights: str | None) -> str | None:
    from srpsa.inference.full import CALIBRATION_FILE

    path = W.weights_root(weights) / CALIBRATION_FILE
    return path.read_text() if path.is_file() else None


@functools.lru_cache(maxsize=4)
def load_detector(folder: str, backend: str = "torch"):
    """A :class:`~srpsa.inference.detect.Detector`, cached per process: a pool worker loads each model
    once, not once per image (detectors hold no per-call state, so sharing them is safe)."""
    from srpsa.inference.detect import Detector

    return Detector.load(folder, backend=backend)


def models_for(settings: AnalyzeSettings) -> list[str]:
    """The weights folders an analysis with ``settings`` reads (names in :mod:`srpsa.inference.weights`)."""
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
        raise ParameterError("diameter_range", "in um needs a pixel size (pixel_size_um or a calibrated image)")
    lo, hi = settings.diameter_range
    return lo / pixel_size_um, hi / pixel_size_um


@dataclass
class _Models:
    dirs: dict[str, Path]
    hashes: dict[str, str]
    full: Any = None  # FullPipeline
    detector: Any = None  # Detector (detect-only / SEM)
    notes: list[str] = field(default_factory=list)


def _load_models(settings: AnalyzeSettings) -> _Models:
    names = models_for(settings)
    dirs = {name: W.model_dir(name, settings.weights) for name in names}
    hashes = {name: W.weights_hash(folder) for name, folder in dirs.items()}
    models = _Models(dirs, hashes)
    from srpsa.inference.finetuned import pipeline_note

    if note := pipeline_note(W.weights_root(settings.weights), settings.modality, settings.pipeline):
        models.notes.append(note)
    if settings.pipeline == "full" and settings.modality == "om":
        models.full, note = _load_full_pipeline(
            str(W.weights_root(settings.weights)), str(dirs[W.TRANSLATOR]), str(dirs[W.SUPERRES]),
            str(dirs[W.DETECTOR_SEM]), str(dirs[W.DETECTOR_OM]), settings.enhance_flow, settings.backend,
            tuple(sorted(hashes.items())), _calibration_text(settings.weights), settings.enhance_sr,
        )
        if note:
            models.notes.append(note)
    else:
        models.detector = load_detector(str(dirs[names[-1]]), settings.backend)
    return models


_SETTING_NAMES = frozenset(f.name for f in fields(AnalyzeSettings))


def _check_names(options: dict[str, Any]) -> None:
    for key in options:
        if key not in _SETTING_NAMES:
            raise ParameterError(key, f"is not a setting (known: {', '.join(sorted(_SETTING_NAMES))})")


class Analyzer:
    """The models of one pipeline, loaded once, and the settings they run with.

    Parameters
    ----------
    pipeline : {"full", "detect-only"}
        For OM images: through translation to SEM-like (default) or the OM-trained detector alone.
    weights : str or Path, optional
        Weights root (default: ``$SRPSA_WEIGHTS_DIR`` or the shipped weights).
    backend : {"auto", "torch", "onnx"}
        Network engine.
    **settings
        Any other :class:`~srpsa.inference.pipeline.AnalyzeSettings` field (``modality``,
        ``enhance_flow``, ``enhance_sr``, ``diameter_range``, ``bootstrap`` ...); defaults in
        :mod:`srpsa.inference.defaults`, the same as the CLI's.

    Raises
    ------
    ParameterError
        A bad setting, named (``pixel_size_um must be > 0 ...``).
    InputError
        Missing or damaged weights.
    """

    def __init__(self, pipeline: str = D.PIPELINE, weights: str | os.PathLike[str] | None = None, backend: str = D.BACKEND,
                 *, settings: AnalyzeSettings | None = None, **options: Any) -> None:
        _check_names(options)
        if settings is not None and (options or pipeline != D.PIPELINE or weights is not None or backend != D.BACKEND):
            raise ParameterError("settings", "cannot be combined with other settings (put them in the AnalyzeSettings)")
        if settings is None:
            settings = AnalyzeSettings(pipeline=pipeline, weights=None if weights is None else str(weights), backend=backend, **options)
        self.settings = settings
        self._models = _load_models(settings)

    @property
    def model_hashes(self) -> dict[str, str]:
        """Model name -> sha256 of the weights in use."""
        return dict(self._models.hashes)

    @property
    def full_pipeline(self):
        """The :class:`~srpsa.inference.full.FullPipeline` (None unless pipeline "full" on OM)."""
        return self._models.full

    @property
    def detector(self):
        """The :class:`~srpsa.inference.detect.Detector` of detect-only / SEM analyses (else None)."""
        return self._models.detector

    def _settings_for(self, pixel_size_um: float | None, options: dict[str, Any]) -> AnalyzeSettings:
        _check_names(options)
        for key in D.MODEL_KEYS:
            if key in options and options[key] != getattr(self.settings, key):
                raise ParameterError(key, "chooses the models and is fixed when the Analyzer is made (make another Analyzer)")
        if pixel_size_um is not None:
            options["pixel_size_um"] = pixel_size_um
        options = {k: v for k, v in options.items() if k not in D.MODEL_KEYS}
        return replace(self.settings, **options) if options else self.settings

    def analyze(self, image: np.ndarray | str | os.PathLike[str] | Any, pixel_size_um: float | None = None, *,
                name: str | None = None, timer: StageTimer | None = None, **options: Any) -> Result:
        """Analyse one image.

        ``image``: an array ``(H, W)`` or ``(H, W, 3)`` (uint8, uint16, bool or float in [0, 1]), an image
        file path, or a :class:`srpsa.io.LoadedImage`. ``pixel_size_um`` (um/px) calibrates sizes (for a
        file it overrides the metadata); without one, an array is uncalibrated: sizes in px, with a warning.
        ``options``: per-image settings (``diameter_range``, ``include_edge``, ``bootstrap`` ...).
        """
        from srpsa.inference.budget import estimate_cost, preflight_image
        from srpsa.io import LoadedImage, load_array, read_image

        t_start = time.perf_counter()
        settings = self._settings_for(pixel_size_um, dict(options))
        timer = timer or StageTimer()
        label = None
        cost = None
        if isinstance(image, (str, os.PathLike)):
            # bounded cost (issue 16): refuses, from the header and before decoding, what cannot fit in
            # max_memory_gb (None: header unreadable, or above max_pixels - the decoder reports those)
            cost = preflight_image(image, settings.max_memory_gb, settings.max_pixels)
        with timer("load"):
            if isinstance(image, LoadedImage):
                loaded = image
                if settings.pixel_size_um is not None and settings.pixel_size_um != loaded.pixel_size_um:
                    loaded = replace(loaded, pixel_size_um=settings.pixel_size_um, pixel_size_source="override",
                                     warnings=[w for w in loaded.warnings if "no pixel size" not in w])
            elif isinstance(image, (str, os.PathLike)):
                loaded = read_image(image, pixel_size_um=settings.pixel_size_um, max_pixels=settings.max_pixels)
            elif isinstance(image, np.ndarray) or hasattr(image, "__array__"):
                label = name or "array"
                loaded = load_array(np.asarray(image), pixel_size_um=settings.pixel_size_um, name=label)
            else:
                raise ParameterError("image", f"must be an array, a path or a LoadedImage, got {type(image).__name__}")
        if cost is None and not isinstance(image, (str, os.PathLike)):
            # an array or a LoadedImage is already in memory: its estimate is recorded, not enforced
            cost = estimate_cost(int(loaded.data.size))
        return self._run(loaded, settings, timer, t_start, label, cost)

    def _run(self, loaded, settings: AnalyzeSettings, timer: StageTimer, t_start: float, label: str | None = None,
             cost=None) -> Result:
        from srpsa.inference.fov import apply_roi
        from srpsa.psd import count_warnings, select_for_statistics, size_statistics
        from srpsa.psd.particles import particle_table
        from srpsa.psd.shape import add_shape

        pixel_size, source = loaded.pixel_size_um, loaded.pixel_size_source
        warnings = list(loaded.warnings)  # includes the "uncalibrated: sizes in px" warning
        unit = "um" if pixel_size else "px"
        models = self._models
        warnings.extend(models.notes)
        image = loaded.data
        diameter_range = _diameter_range_px(settings, pixel_size)
        if diameter_range is not None:
            from srpsa.inference.limits import check_diameter_range_px

            warnings.extend(check_diameter_range_px(*diameter_range))
        enhance_info = detect_info = None
        from srpsa.inference.binary import detect_binary, find_phases
        from srpsa.io.images import to_gray

        gray = to_gray(image)
        phases = find_phases(gray)
        if phases is not None:
            # a mask or a two-level image carries its outlines: no network (inference/binary.py); any pipeline
            with timer("detect"):
                circles, scores, detect_info = detect_binary(gray, phases)
                warnings.extend(detect_info.pop("warnings", []))
        elif models.full is not None:
            # OM -> translate -> super-resolve at a particle-following scale; the SEM-domain detector then
            # works on the SEM-like image and its circles are mapped back to input pixels.
            res = models.full.detect(image, diameter_range=diameter_range, refine=settings.refine, timer=timer)
            circles, scores = res.circles, res.scores
            info = dict(res.info)
            enhance_info = {**(info.pop("enhance") or {}), **info}  # enhance None: native route (small particles)
        else:
            from srpsa.inference.guide import guided_detect

            with timer("detect"):
                if settings.modality == "sem":
                    # dark particles on a bright ground are the SEM detector's inverse (inference/polarity.py)
                    from srpsa.inference.polarity import polarity_detect

                    circles, scores, detect_info = polarity_detect(models.detector, image, settings.refine, diameter_range)
                elif diameter_range is None:
                    # Large images: the detector's own detections on a window set the scales (docs/speed.md).
                    circles, scores, detect_info = guided_detect(models.detector, image, refine=settings.refine)
                else:
                    det = models.detector.detect(image, diameter_range=diameter_range, refine=settings.refine)
                    circles, scores = det.circles, det.scores
                    detect_info = {"size_from": "diameter_range", "scales": list(det.info.get("scales", []))}

        with timer("quality"):
            from srpsa.inference.quality import self_check

            keep, quality = self_check(image, circles, {**(detect_info or {}), **(enhance_info or {})}, prune=settings.prune_weak)
            circles, scores = circles[keep], scores[keep]
            if quality.status != "ok":
                warnings.append(f"quality {quality.status}: " + "; ".join(quality.reasons))

        with timer("statistics"):
            table = particle_table(circles, scores, image.shape, pixel_size)
            table, roi_info, roi_warnings = apply_roi(table, image, settings.roi)
            warnings.extend(roi_warnings)
            used = select_for_statistics(table["edge"].to_numpy().astype(bool), include_edge=settings.include_edge)
            table, used, shape_info, shape_warnings = add_shape(table, image, used, pixel_size, enabled=settings.shape,
                                                                exclude_flagged=settings.exclude_flagged)
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
                warnings.append(f"{n_edge} particles touch the image border and are excluded from statistics (include_edge, --include-edge, keeps them)")

        ran = _models_run(settings, list(models.dirs), enhance_info, detect_info)
        summary = {
            "image": label if label is not None else str(loaded.path.resolve()),
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
            "models": {name: {"path": str(folder), "sha256": models.hashes[name], "ran": name in ran}
                       for name, folder in models.dirs.items()},
            "settings": asdict(settings),
            "fingerprint": _fingerprint(settings, models.hashes),  # what resume compares (inference/resume.py)
            "software": {"srpsa": __version__},
            "enhance": enhance_info,
            "detect": detect_info,
            "cost_estimate": cost.to_dict() if cost is not None else None,  # inference/budget.py
            "seconds": {**{k: round(v, 4) for k, v in timer.seconds.items()}, "total": round(time.perf_counter() - t_start, 4)},
            "quality": quality.to_dict(),
            "warnings": warnings,
        }
        summary.update(_qc_fields(settings, summary))
        return Result(particles=table, statistics=Statistics(stats["number"], stats["volume"], unit), warnings=warnings, quality=quality,
                      summary=summary, circles=circles, scores=scores, image=image, rgb=loaded.rgb, diameters=diam)


def _models_run(settings: AnalyzeSettings, names: list[str], enhance_info: dict | None, detect_info: dict | None = None) -> set[str]:
    """The loaded models that worked on this image (the report lists only these).

    Binary images (``detect.route == "binary"``, inference/binary.py) are measured without any model.

    Full pipeline: the native route (small particles) runs the OM detector alone; otherwise translation
    and the SEM detector run, super-resolution only with ``enhance_sr="model"``, and the OM detector when
    it set the working scale (the size guide).
    """
    if (detect_info or {}).get("route") == "binary":
        return set()
    if enhance_info is None:  # detect-only or the SEM modality: one detector
        return set(names[-1:])
    if enhance_info.get("route") == "native":
        return {W.DETECTOR_OM}
    ran = {W.TRANSLATOR, W.DETECTOR_SEM}
    if settings.enhance_sr == "model":
        ran.add(W.SUPERRES)
    if enhance_info.get("size_from") in ("om_detector", "sem_check"):
        ran.add(W.DETECTOR_OM)
    return ran & set(names)


def _qc_fields(settings: AnalyzeSettings, summary: dict) -> dict:
    """summary.json's ``meta`` and ``spec`` (pass/fail of this image) entries."""
    from srpsa.psd.spec import evaluate_spec, parse_spec

    spec = evaluate_spec(parse_spec(settings.spec), summary["statistics"], summary["unit"]) if settings.spec else None
    return {"meta": dict(settings.meta), "spec": spec}


def _fingerprint(settings: AnalyzeSettings, hashes: dict[str, str]) -> str:
    from srpsa.inference.resume import fingerprint

    return fingerprint(settings, hashes)


def analyze(image: np.ndarray | str | os.PathLike[str], pixel_size_um: float | None = None, **settings: Any) -> Result:
    """Analyse one image with the default pipeline (or the one ``settings`` names): see :class:`Analyzer`.

    Models are cached per process, so repeated calls do not reload them; :class:`Analyzer` makes the
    choice explicit and checks the settings once.
    """
    _check_names(settings)
    model = {k: settings.pop(k) for k in list(settings) if k in ("pipeline", "weights", "backend")}
    model_only = {k: settings.pop(k) for k in list(settings) if k in D.MODEL_KEYS}
    return Analyzer(**model, **model_only).analyze(image, pixel_size_um, **settings)
