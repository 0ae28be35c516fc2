"""`srpsa analyze`: the main job - particle sizes and their distribution for images or folders."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from srpsa.errors import InputError, ParameterError
from srpsa.inference import defaults as D

#: Library parameter -> flag, so errors of AnalyzeSettings / srpsa.analyze name what the user typed.
FLAGS = {
    "modality": "--modality", "pipeline": "--pipeline", "pixel_size_um": "--pixel-size", "weights": "--weights",
    "diameter_range": "--diameter-range", "diameter_unit": "--diameter-unit", "include_edge": "--include-edge",
    "refine": "--no-refine", "bootstrap": "--bootstrap", "seed": "--seed", "enhance_flow": "--flow",
    "backend": "--backend", "enhance_sr": "--sr", "max_pixels": "--max-pixels", "prune_weak": "--keep-weak",
    "max_memory_gb": "--max-memory",
    "shape": "--no-shape", "exclude_flagged": "--exclude-flagged", "exports": "--export", "meta": "--meta",
    "spec": "--spec", "roi": "--roi",
}


def as_flag_error(exc: ParameterError) -> InputError:
    """The library's ``pixel_size_um must be > 0`` as the CLI's ``--pixel-size must be > 0``."""
    return InputError(f"{FLAGS.get(exc.param, exc.param)} {exc.problem}")


def _pipeline_for_weights(pipeline: str | None, modality: str, weights: Path | None) -> str:
    """--pipeline, or without it the default: the pipeline a fine-tuned weights folder (finetune.json)
    names for its adapted detector (detect-only for an OM fine-tune; srpsa.inference.finetuned), else
    defaults.PIPELINE."""
    if pipeline is not None:
        return pipeline
    if modality != "om":
        return D.PIPELINE
    from srpsa.inference.finetuned import preferred_pipeline
    from srpsa.inference.weights import weights_root

    return preferred_pipeline(weights_root(weights)) or D.PIPELINE


def command(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively for PNG, JPEG, BMP, TIFF)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one sub-folder per image plus summary.csv and errors.csv."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Pixel size in um/px; overrides any calibration in the files."),
    modality: str = typer.Option(D.MODALITY, "--modality", help="om: optical microscope image; sem: SEM image (detector runs directly)."),
    pipeline: str | None = typer.Option(
        None, "--pipeline", show_default=D.PIPELINE, help="For OM input: full (OM -> translate to SEM-like -> SEM detector; F1 1.000 and mean size within 2 % on every simulator preset, docs/decisions.md) or detect-only (the OM-trained detector alone, faster on small images). A `srpsa finetune` --weights folder of OM images defaults to detect-only."
    ),
    flow: str = typer.Option(D.ENHANCE_FLOW, "--flow", help="Full pipeline: adaptive (GAN working scales follow the particle size) or paper (1024 -> 512 -> 128 -> 512)."),
    sr: str = typer.Option(D.ENHANCE_SR, "--sr", help="Full pipeline: none (the detector reads the translation; 2-3x faster, same F1 and mean size on the simulator, docs/decisions.md) or model (ESRGAN stage in between, the paper's chain)."),
    backend: str = typer.Option(D.BACKEND, "--backend", help="Network engine: auto (onnx when onnxruntime is installed, else torch), torch, or onnx (ONNX Runtime, 1.5-2x faster on CPU; the export is cached next to the weights or in $SRPSA_CACHE_DIR)."),
    weights: Path | None = typer.Option(None, "--weights", help="Weights folder (default: $SRPSA_WEIGHTS_DIR or the shipped weights)."),
    diameter_range: tuple[float, float] | None = typer.Option(
        None, "--diameter-range", help="Expected particle diameters MIN MAX (skips the automatic size estimate)."
    ),
    diameter_unit: str = typer.Option(D.DIAMETER_UNIT, "--diameter-unit", help="Unit of --diameter-range: px or um."),
    include_edge: bool = typer.Option(D.INCLUDE_EDGE, "--include-edge", help="Keep particles cut by the image border in the statistics (ISO 13322-1 excludes them)."),
    no_refine: bool = typer.Option(False, "--no-refine", help="Skip the sub-pixel edge refinement of radii."),
    keep_weak: bool = typer.Option(not D.PRUNE_WEAK, "--keep-weak", help="Keep circles without radial structure even when the self-check finds many (it drops them by default then, and marks the result doubtful)."),
    bootstrap: int = typer.Option(D.BOOTSTRAP, "--bootstrap", min=0, help="Bootstrap resamples for 95 % confidence intervals (0: none)."),
    force: bool = typer.Option(False, "--force", help="Re-analyse images whose results already exist."),
    workers: int = typer.Option(0, "--workers", min=0, help="Local worker processes (0: one per CPU core, at most one per image)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler ADDRESS, or 'local' to start a LocalCluster."),
    seed: int = typer.Option(D.SEED, "--seed", help="Seed for the bootstrap."),
    max_pixels: int = typer.Option(D.MAX_PIXELS, "--max-pixels", min=1, help="Refuse images that declare more pixels than this, before decoding (default: Pillow's limit, ~13400^2)."),
    max_memory: float = typer.Option(D.MAX_MEMORY_GB, "--max-memory", help="Refuse, before decoding, an image whose estimated peak memory exceeds this many GB (it goes to errors.csv; the others run)."),
    no_shape: bool = typer.Option(False, "--no-shape", help="Skip the shape descriptors (circularity, aspect ratio, solidity, Feret) and flags in particles.csv."),
    exclude_flagged: bool = typer.Option(False, "--exclude-flagged", help="Leave particles flagged non_round, agglomerate, occluded or low_contrast out of the statistics."),
    export: str = typer.Option("", "--export", help="Also write interchange files per image, comma-separated: imagej-roi (<stem>_rois.zip), labels (<stem>_labels.tif), geojson (<stem>.geojson, QuPath), imagej-csv (<stem>_results.csv); docs/exports.md."),
    roi: str | None = typer.Option(None, "--roi", help="Field of view: auto (the circular eyepiece field inside a dark vignette) or MASK.png (non-zero = inside); particles cut by it are excluded like border ones."),
    meta: Path | None = typer.Option(None, "--meta", help="Sample metadata TOML (sample, lot, operator, instrument, objective, notes) for summary.json and the report header."),
    spec: str = typer.Option("", "--spec", help="Specification checked per image and pooled, e.g. \"D50=400..450,CV<15\" (sizes in um; docs/exports.md)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write the report (as --report) and print it to OUT/report.pdf with headless Chromium."),
    report: bool = typer.Option(False, "--report", help="Also write OUT/report.html, a self-contained report of the run (same as `srpsa report OUT`)."),
) -> None:
    """Detect particles, size them and write particles.csv, summary.json, overlay.png, psd.png per image.

    Exit status: 0 all images analysed, 1 some failed (the rest are done; see errors.csv), 2 bad usage.
    """
    from rich.console import Console

    from srpsa.inference.batch import run_batch
    from srpsa.inference.pipeline import AnalyzeSettings
    from srpsa.io import iter_image_files
    from srpsa.io.exports import parse_exports
    from srpsa.io.meta import read_meta

    pipeline = _pipeline_for_weights(pipeline, modality, weights)
    try:
        settings = AnalyzeSettings(
            modality=modality,
            pipeline=pipeline,
            pixel_size_um=pixel_size,
            weights=str(weights) if weights else None,
            diameter_range=diameter_range,
            diameter_unit=diameter_unit,
            include_edge=include_edge,
            refine=not no_refine,
            prune_weak=not keep_weak,
            bootstrap=bootstrap,
            seed=seed,
            enhance_flow=flow,
            enhance_sr=sr,
            backend=backend,
            max_pixels=max_pixels,
            max_memory_gb=max_memory,
            shape=not no_shape,
            exclude_flagged=exclude_flagged,
            exports=parse_exports(export),
            meta=tuple(read_meta(meta).items()) if meta else (),
            spec=spec,
            roi=roi,
        )
    except ParameterError as exc:
        raise as_flag_error(exc) from None
    images = iter_image_files(list(inputs))
    if not images:
        raise InputError(f"no supported images found in: {', '.join(map(str, inputs))}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    n_workers = workers or min(len(images), os.cpu_count() or 1)

    from srpsa.cli.signals import EXIT_TERMINATED, Terminated, sigterm_as_interrupt

    # soft_wrap: one progress line per image even when stderr is a file or pipe (rich wraps at 80 then)
    console = Console(stderr=True, soft_wrap=True)
    with sigterm_as_interrupt(), console.status(f"analysing {len(images)} image(s)") as status:

        def progress(done: int, total: int, result: dict) -> None:
            mark = {"ok": "done", "skipped": "skipped (exists)", "error": "FAILED"}[result["status"]]
            status.update(f"[{done}/{total}] analysing")
            line = f"[{done}/{total}] {result['path']}: {mark}"
            if result["status"] == "error":
                line += f" - {result['error']}"
            elif result["summary"]:
                s = result["summary"]
                line += f" - {s['count']} particles"
                if not s["count"]:  # say why an empty result may not be a real one
                    line += " - warning: " + next((w for w in s["warnings"] if "uniform" in w), "no particles detected")
            console.print(line, markup=False, highlight=False)

        try:
            result = run_batch(images, out, settings, workers=n_workers, scheduler=scheduler, force=force, progress=progress)
        except Terminated:  # the workers are stopped by now; finished images stay and resume
            typer.echo(f"srpsa: terminated (SIGTERM); finished images are kept in {out}, re-run to resume", err=True)
            raise typer.Exit(EXIT_TERMINATED) from None

    typer.echo(f"results: {out / 'summary.csv'}")
    if (report or pdf) and len(result.failed) < len(images):
        from srpsa.errors import SrpsaError
        from srpsa.report.html import write_report

        try:
            typer.echo(f"report: {write_report(out)}")
            if pdf:
                from srpsa.report.pdf import print_pdf

                typer.echo(f"report: {print_pdf(out / 'report.html')}")
        except SrpsaError as exc:  # the analysis itself succeeded: report the problem, keep its exit status
            typer.echo(f"srpsa: report not written: {exc}", err=True)
    if result.failed:
        typer.echo(f"srpsa: {len(result.failed)} of {len(images)} input(s) failed, see {out / 'errors.csv'}", err=True)
        raise typer.Exit(1)
