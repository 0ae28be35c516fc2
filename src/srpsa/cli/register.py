"""`srpsa register`: align an OM image with its SEM image (landmarks or fiducial markers -> affine)."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    om_image: Path = typer.Argument(..., help="Optical-microscope image."),
    sem_image: Path = typer.Argument(..., help="SEM image of the same field."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for <stem>_om.png, <stem>_sem.png, <stem>_mask.png, <stem>_transform.json, <stem>_landmarks.csv."),
    landmarks: Path | None = typer.Option(None, "--landmarks", help="CSV of corresponding points with columns om_x, om_y, sem_x, sem_y (pixels; >= 3 rows)."),
    auto: bool = typer.Option(False, "--auto", help="Detect the plus-shaped fiducial markers (dark in OM, bright in SEM) and pair them."),
    ransac: bool = typer.Option(False, "--ransac", help="Reject inconsistent landmarks with RANSAC before the least-squares fit."),
    ransac_threshold: float = typer.Option(3.0, "--ransac-threshold", help="RANSAC inlier distance in SEM pixels."),
    refine: bool = typer.Option(False, "--refine", help="Refine with intensity-based ECC alignment; kept only if it improves the match."),
    max_rms: float = typer.Option(3.0, "--max-rms", help="Fail if the landmark RMS residual exceeds this many SEM pixels."),
    direction: str = typer.Option("sem-to-om", "--direction", help="sem-to-om: resample SEM onto the OM grid; om-to-sem: OM onto the SEM grid."),
    keep_resolution: bool = typer.Option(False, "--keep-resolution", help="With sem-to-om: output the OM field at the SEM pixel size (integer factor)."),
    markers: int = typer.Option(4, "--markers", min=3, help="Number of fiducial markers per image (with --auto)."),
    stem: str | None = typer.Option(None, "--stem", help="Output name prefix (default: OM file name without suffix and trailing _om)."),
    seed: int = typer.Option(0, "--seed", help="Seed for RANSAC."),
) -> None:
    """Estimate the OM -> SEM affine transform and write the registered pair and the transform JSON."""
    from srpsa.registration.pipeline import register_files

    done = register_files(
        om_image,
        sem_image,
        out,
        landmarks=landmarks,
        auto=auto,
        ransac=ransac,
        ransac_threshold=ransac_threshold,
        refine=refine,
        max_rms=max_rms,
        direction=direction,
        keep_resolution=keep_resolution,
        markers=markers,
        stem=stem,
        seed=seed,
    )
    r = done.result
    typer.echo(
        f"registered {om_image.name} -> {sem_image.name}: {r.method}, "
        f"{int(r.inliers.sum())}/{len(r.inliers)} landmarks, RMS {r.rms_px:.3f} SEM px, "
        f"scale {r.scale:.4f}, rotation {r.rotation_deg:.2f} deg; wrote {done.files['transform']}"
    )
    if refine:
        typer.echo(f"refinement: {done.summary.get('refine_reason', 'not run')}")
