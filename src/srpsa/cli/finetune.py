"""`srpsa finetune`: adapt the shipped detector to your microscope from a few annotated images."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    folder: Path = typer.Argument(..., help="Annotated images (any format `srpsa train detect --data` reads) or a reviewed `srpsa analyze` folder."),
    out: Path = typer.Option(..., "--out", "-o", help="New weights folder to write (use it with `srpsa analyze --weights OUT`)."),
    minutes: float = typer.Option(10.0, "--minutes", help="Wall-clock budget of the whole run on the CPU, in minutes."),
    from_weights: Path | None = typer.Option(None, "--from", help="Weights folder to start from (default: $SRPSA_WEIGHTS_DIR or the shipped weights)."),
    modality: str = typer.Option("om", "--modality", help="om: adapt the OM detector (analyses then run --pipeline detect-only); sem: adapt the SEM detector."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split, the crops and the initial order."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many training steps (for reproducible runs; the budget still applies)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: torch's choice)."),
) -> None:
    """Fine-tune the detector on FOLDER's labelled images; hold out a quarter of them to pick the checkpoint.

    Prints F1 and the radius error on the held-out images before and after. A fine-tune that does not
    beat the starting detector there is discarded: OUT then holds the original, with a warning.
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from srpsa.training.finetune import finetune

    if threads:
        torch.set_num_threads(threads)
    console = Console(stderr=True)
    columns = (TextColumn("fine-tuning"), BarColumn(), TextColumn("step {task.fields[step]}  loss {task.fields[loss]}  "
               "held-out F1 {task.fields[f1]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("finetune", total=60.0 * minutes if minutes > 0 else 1.0, step=0, loss="-", f1="-")

        def report(p: dict) -> None:
            done = p["step"] / max_steps * p["budget_s"] if max_steps else 0.0
            bar.update(task, completed=max(p["elapsed_s"], done), step=p["step"], loss=f"{p['loss']:.4f}", f1=f"{p['f1']:.3f}")

        result = finetune(folder, out, minutes=minutes, from_weights=from_weights, modality=modality, seed=seed,
                          max_steps=max_steps, progress=report)

    def line(name: str, m: dict) -> str:
        err = m["radius_err"]
        rad = "n/a" if err != err else f"{100 * err:.1f} % (bias {100 * m['radius_bias']:+.1f} %)"
        return f"  {name}: F1 {m['f1']:.3f} (P {m['precision']:.3f}, R {m['recall']:.3f}); median radius error {rad}"

    typer.echo(f"held out: {', '.join(result.holdout_images)}; trained on: {', '.join(result.train_images)} "
               f"({result.steps} steps, {result.seconds / 60:.1f} min)")
    typer.echo(line("before", result.before))
    typer.echo(line("after ", result.after))
    for w in result.warnings:
        typer.echo(f"srpsa: warning: {w}", err=True)
    use = f"srpsa analyze IMAGES --out RESULTS --weights {result.out}"
    if result.kept == "original":
        use += " (the same results as the shipped weights)"
    if result.adapted == "detector-sem":
        use += " --modality sem"
    typer.echo(f"weights: {result.out} ({result.adapted} {result.kept}; the other models copied, sha256 in finetune.json)")
    typer.echo(f"use: {use}" + (" (runs --pipeline detect-only: the adapted OM detector)" if result.pipeline == "detect-only" else ""))
