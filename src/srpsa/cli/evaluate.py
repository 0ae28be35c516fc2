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

    from srpsa.errors import ParameterError
    from srpsa.evaluation.detection_report import REPORT_FILES, evaluate_detections
    from srpsa.evaluation.pairing import DEFAULT_GLOBS

    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    try:
        report = evaluate_detections(gt, pred, match_factor=match_factor, pixel_size_um=pixel_size, ignore_border=ignore_border,
                                     image_size=image_size, images=images, gt_globs=tuple(gt_glob) if gt_glob else DEFAULT_GLOBS,
                                     label=label)  # fmt: skip
    except ParameterError as exc:
        raise _flag_error(exc) from None

    console = Console()
    _print_metrics(console, report.pooled, label)
    console.print(_frame_table(report.psd, f"Size distribution ({report.unit}, number-weighted; CV in %)"))
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if out is not None:
        report.save(out)
        typer.echo(f"wrote {out}/: {', '.join(REPORT_FILES)}")


#: Library parameter -> flag of `evaluate detect`, for its error messages.
_DETECT_FLAGS = {"match_factor": "--match-factor", "pixel_size_um": "--pixel-size", "image_size": "--image-size",
                 "images": "--images", "ignore_border": "--ignore-border", "out": "--out"}  # fmt: skip


def _flag_error(exc) -> InputError:
    """A library ParameterError as the command's flag error (``--pixel-size must be ...``)."""
    problem = exc.problem
    if exc.param == "ignore_border":  # the library's advice names parameters; the command's names flags
        problem = problem.replace("pass images (a folder) or image_size", "pass --images DIR or --image-size WIDTH HEIGHT")
    return InputError(f"{_DETECT_FLAGS.get(exc.param, exc.param)} {problem}")


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
