"""`srpsa prepare`: registered OM/SEM pairs -> aligned, augmented training patches split by image."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    pairs_dir: Path = typer.Argument(..., help="Folder of registered pairs: <stem>_om.png + <stem>_sem.png (+ optional <stem>_mask.png)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: train/ val/ test/ patch PNGs, patches.csv, split.json."),
    patch: int = typer.Option(256, "--patch", min=1, help="OM patch size in pixels (the SEM patch is k times larger for a k-times finer SEM)."),
    stride: int = typer.Option(256, "--stride", min=1, help="OM pixels between patch origins."),
    split: str = typer.Option("0.8,0.1,0.1", "--split", help="Train,val,test fractions of the images (not patches)."),
    augment: int = typer.Option(0, "--augment", min=0, help="Augmented copies per training patch (flips/rotations on both, photometric on OM)."),
    resize: float = typer.Option(1.0, "--resize", help="Resize factor of the patches (the paper: 1024 px patches resized to 512, i.e. 0.5)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split and the augmentation."),
) -> None:
    """Cut registered pairs into aligned patch pairs, split by image into train/val/test."""
    from srpsa.training.prepare import PrepareConfig, parse_split, prepare_dataset

    cfg = PrepareConfig(patch=patch, stride=stride, split=parse_split(split), augment=augment, seed=seed, resize=resize)
    summary = prepare_dataset(pairs_dir, out, cfg)
    parts = ", ".join(f"{name} {len(summary.splits[name])} image(s) / {summary.patches[name]} patch(es)" for name in summary.splits)
    typer.echo(f"prepared {parts}; wrote {summary.out_dir / 'split.json'}")
