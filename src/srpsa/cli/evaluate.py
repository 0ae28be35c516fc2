"""`srpsa evaluate`: score detections against ground-truth annotations, and generated images against targets.

``srpsa evaluate detect --gt GT --pred PRED [--out DIR]`` matches circles one-to-one, prints pooled
detection metrics and the size-distribution comparison (paper Tables 3-6), and with ``--out`` writes
``metrics.json``, ``per_image.csv``, ``psd_comparison.csv``/``.md`` and ``kde.png`` (paper Fig. 9).

``srpsa evaluate images --pred P --target T [--out DIR]`` scores generated images (translation or
super-resolution output) against targets with SSIM, PSNR, density and coverage (paper section 6.2) and
with ``--out`` writes ``image_quality.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from srpsa.errors import InputError
from srpsa.evaluation.matching import DEFAULT_MATCH_FACTOR
from srpsa.io.calibration import is_pixel_size

app = typer.Typer(
    help="Evaluate detections against ground-truth circles, or generated images against targets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Evaluate detections against ground-truth circles, or generated images against targets."""
    # A callback keeps `evaluate` a command group even with one subcommand (Typer would collapse it).


@app.command("detect")
def detect(
    gt: Path = typer.Option(..., "--gt", help="Ground-truth annotations: a file (CSV/VIA/LabelMe/COCO/particles.csv) or a folder."),
    pred: Path = typer.Option(..., "--pred", help="Predicted circles: a file, or a folder (e.g. an `srpsa analyze` output)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for metrics.json, per_image.csv, psd_comparison.csv/.md and kde.png."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Pixel size in um/px for the size statistics (default: from summary.json, else px)."),
    match_factor: float = typer.Option(DEFAULT_MATCH_FACTOR, "--match-factor", help="A match needs centre distance <= FACTOR * r_gt."),
    ignore_border: bool = typer.Option(False, "--ignore-border", help="Count circles cut by the image border neither as hits nor as errors."),
    image_size: tuple[int, int] | None = typer.Option(None, "--image-size", help="WIDTH HEIGHT of every image (for --ignore-border when no summary.json gives it)."),
    images: Path | None = typer.Option(None, "--images", help="Folder of the images (<key>.png/.tif/...), read for their size with --ignore-border."),
    gt_glob: list[str] | None = typer.Option(None, "--gt-glob", help="File pattern(s) selecting ground-truth files in a GT folder (default: *.csv and *.json)."),
    label: str = typer.Option("Prediction", "--label", help="Name of the prediction in tables and the plot."),
) -> None:
    """Match predicted circles to ground truth and report detection and size-distribution metrics."""
    from rich.console import Console

    from srpsa.evaluation.compare import compare_size_distributions, detection_count_table, to_markdown
    from srpsa.evaluation.metrics import evaluate_many, per_image_table
    from srpsa.evaluation.pairing import DEFAULT_GLOBS, pair_annotations

    if not (math.isfinite(match_factor) and match_factor > 0):
        raise InputError(f"--match-factor must be a positive number, got {match_factor}")
    if pixel_size is not None and not is_pixel_size(pixel_size):
        raise InputError(f"--pixel-size must be a positive number of um per pixel, got {pixel_size}")
    if image_size is not None and min(image_size) < 1:
        raise InputError(f"--image-size needs positive WIDTH HEIGHT, got {image_size[0]} {image_size[1]}")
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")

    pairs, notes = pair_annotations(gt, pred, gt_globs=tuple(gt_glob) if gt_glob else DEFAULT_GLOBS)
    shapes = {}
    if ignore_border:
        for p in pairs:
            shape = p.image_shape or _shape_from_folder(images, p.key) or ((image_size[1], image_size[0]) if image_size else None)
            if shape is None:
                raise InputError(f"--ignore-border needs the image size of '{p.key}': pass --images DIR or --image-size WIDTH HEIGHT")
            shapes[p.key] = shape
    pooled, evals = evaluate_many(
        ((p.key, p.gt, p.pred) for p in pairs), match_factor=match_factor, shapes=shapes, ignore_border=ignore_border
    )

    px, unit = _pixel_size(pixel_size, pairs)
    gt_d = _counted_diameters(pairs, shapes, "gt", px)
    pred_d = _counted_diameters(pairs, shapes, "pred", px)
    psd = compare_size_distributions(gt_d, {label: pred_d})
    counts = detection_count_table({"all images": (pooled.n_gt, pooled.n_pred)})

    console = Console()
    _print_metrics(console, pooled, label)
    console.print(_frame_table(psd, f"Size distribution ({unit}, number-weighted; CV in %)"))
    for note in notes:
        console.print(f"note: {note}", markup=False)

    if out is None:
        return
    from srpsa.io.atomic import atomic_open, atomic_write_text
    from srpsa.report.figures import plot_kde_comparison

    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "pooled": pooled.to_dict(),
        "per_image": {e.name: e.metrics.to_dict() for e in evals},
        "psd_comparison": {"unit": unit, "weighting": "number", "table": _json_table(psd)},
        "pairs": [{"key": p.key, "gt": str(p.gt_path), "pred": str(p.pred_path)} for p in pairs],
        "settings": {"match_factor": match_factor, "ignore_border": ignore_border, "pixel_size_um": px, "label": label},
        "notes": notes,
    }
    atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    with atomic_open(out / "per_image.csv", "w", newline="") as fh:
        per_image_table(evals).to_csv(fh, float_format="%.6g")
    with atomic_open(out / "psd_comparison.csv", "w", newline="") as fh:
        psd.to_csv(fh, float_format="%.6g")
    atomic_write_text(out / "psd_comparison.md", to_markdown(psd) + "\n" + to_markdown(counts))
    plot_kde_comparison({"Ground truth": gt_d, label: pred_d}, out / "kde.png", unit=unit, title=f"{label} vs ground truth")
    typer.echo(f"wrote {out}/: metrics.json, per_image.csv, psd_comparison.csv, psd_comparison.md, kde.png")


@app.command("images")
def images_command(
    pred: Path = typer.Option(..., "--pred", help="Generated image, or a folder of them."),
    target: Path = typer.Option(..., "--target", help="Target (real) image, or a folder of them; folders pair by file stem."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for image_quality.json."),
    patch: int = typer.Option(128, "--patch", help="Side of the non-overlapping crops embedded for density and coverage."),
    nearest_k: int = typer.Option(5, "--nearest-k", help="k of the k-NN balls of density and coverage."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random embedder and of the crop subsampling."),
    max_patches: int = typer.Option(2000, "--max-patches", help="Use at most this many crop positions (seeded subset)."),
    embedder: str = typer.Option("auto", "--embedder", help="auto | inception (needs torchvision) | random-cnn; compare only equal embedders."),
) -> None:
    """Score generated images against targets: SSIM, PSNR, density and coverage (paper section 6.2)."""
    from rich.console import Console

    from srpsa.evaluation.embedder import torchvision_available
    from srpsa.evaluation.image_quality import image_quality, pair_image_files
    from srpsa.io import read_image

    if embedder not in ("auto", "inception", "random-cnn"):
        raise InputError(f"--embedder must be auto, inception or random-cnn, got {embedder!r}")
    if embedder == "inception" and not torchvision_available():
        raise InputError("--embedder inception needs torchvision, which does not import here; use --embedder random-cnn")
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")

    pairs, notes = pair_image_files(pred, target)
    preds = [read_image(p).data for p, _ in pairs]
    targets = [read_image(t).data for _, t in pairs]
    result = image_quality(preds, targets, patch=patch, nearest_k=nearest_k, seed=seed, max_patches=max_patches, embedder=embedder)
    result["notes"] = notes + result["notes"]
    for entry, (p, t) in zip(result["per_pair"], pairs):
        entry["pred"], entry["target"] = str(p), str(t)

    console = Console()
    _print_image_quality(console, result)
    for note in result["notes"]:
        console.print(f"note: {note}", markup=False)
    if out is None:
        return
    from srpsa.io.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "image_quality.json", json.dumps(_finite_or_null(result), indent=2, allow_nan=False) + "\n")
    typer.echo(f"wrote {out}/image_quality.json")


def _finite_or_null(value):
    """Infinite/NaN floats -> None, recursively, so the JSON stays strict (PSNR of identical images is inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def _print_image_quality(console, r: dict) -> None:
    from rich.table import Table

    def db(v: float | None) -> str:
        return "-" if v is None else ("inf" if math.isinf(v) else f"{v:.2f} dB")

    t = Table(title=f"Image quality: {r['n_pairs']} pair(s), {r['n_real']} real / {r['n_fake']} fake crops, {r['embedder']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("SSIM (mean)", f"{r['ssim']:.4f}"),
        ("PSNR (mean)", db(r["psnr"])),
        ("density", f"{r['density']:.4f}"),
        ("coverage", f"{r['coverage']:.4f}"),
        ("precision / recall", f"{r['precision']:.4f} / {r['recall']:.4f}"),
    ]
    if 0 < r["n_identical"] < r["n_pairs"]:
        rows.insert(2, (f"PSNR (mean of {r['n_pairs'] - r['n_identical']} non-identical)", db(r["psnr_finite"])))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)


def _shape_from_folder(folder: Path | None, key: str) -> tuple[int, int] | None:
    """``(H, W)`` of the image ``<folder>/<key>.<image suffix>``, read from its header; None if absent."""
    if folder is None:
        return None
    from srpsa.io import SUPPORTED_SUFFIXES, read_image_shape

    if not folder.is_dir():
        raise InputError(f"--images {folder}: not a folder")
    # Compare names rather than glob: keys may contain glob metacharacters such as '['.
    hits = sorted(p for p in folder.iterdir() if p.stem == key and p.suffix.lower() in SUPPORTED_SUFFIXES)
    return read_image_shape(hits[0]) if hits else None


def _pixel_size(override: float | None, pairs) -> tuple[float | None, str]:
    if override:
        return override, "um"
    known = {p.pixel_size_um for p in pairs}
    if len(known) == 1 and None not in known:
        return known.pop(), "um"
    return None, "px"


def _counted_diameters(pairs, shapes: dict, side: str, px: float | None):
    """Diameters for the size statistics: every circle, or with --ignore-border (``shapes`` given) only
    those inside the frame, as ISO 13322-1 asks of a size distribution."""
    import numpy as np

    from srpsa.evaluation.compare import diameters_of
    from srpsa.psd.particles import edge_flags

    out = []
    for p in pairs:
        circles = p.gt if side == "gt" else p.pred
        if p.key in shapes:
            circles = circles[~edge_flags(circles, shapes[p.key])]
        out.append(diameters_of(circles, px))
    return np.concatenate(out) if out else np.zeros(0)


def _json_table(df) -> dict:
    """DataFrame -> {row: {column: value}} with NaN as null (metrics.json stays strict JSON)."""
    return {
        str(idx): {str(c): (None if not math.isfinite(float(v)) else float(v)) for c, v in row.items()}
        for idx, row in df.iterrows()
    }


def _frame_table(df, title: str):
    """A rich Table of a numeric DataFrame (2 decimals, NaN as '-')."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column(df.index.name or "")
    for c in df.columns:
        t.add_column(str(c), justify="right")
    for idx, *values in df.itertuples(index=True, name=None):
        t.add_row(str(idx), *("-" if not math.isfinite(float(v)) else f"{float(v):.2f}" for v in values))
    return t


def _print_metrics(console, m, label: str) -> None:
    from rich.table import Table

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f} %"

    def num(v: float | None, digits: int = 3) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    t = Table(title=f"Detection: {label} vs ground truth ({m.n_images} image(s), match <= {m.match_factor:g} r_gt)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("GT particles", str(m.n_gt)),
        ("predicted", str(m.n_pred)),
        ("% detected (pred/GT)", "-" if m.percent_detected is None else f"{m.percent_detected:.2f} %"),
        ("TP / FP / FN", f"{m.tp} / {m.fp} / {m.fn}"),
        ("precision", num(m.precision)),
        ("recall", num(m.recall)),
        ("F1", num(m.f1)),
        ("radius |rel. error| (median)", pct(m.radius_median_abs_rel_error)),
        ("radius bias (mean rel. error)", pct(m.radius_mean_rel_error)),
        ("radius RMSE", "-" if m.radius_rmse_px is None else f"{m.radius_rmse_px:.3f} px"),
        ("centre error (median)", "-" if m.centre_median_error_px is None else f"{m.centre_median_error_px:.3f} px"),
    ]
    if m.n_gt_ignored or m.n_pred_ignored:
        rows.append(("ignored at border (GT / pred)", f"{m.n_gt_ignored} / {m.n_pred_ignored}"))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
