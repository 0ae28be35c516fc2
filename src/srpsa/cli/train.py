"""`srpsa train ...`: train the models. `detect` trains the SR-PSA circle detector (paper 5.2.3).

Each subcommand maps its options one-to-one onto a library call (here
:func:`srpsa.training.detector_train.train_detector`), so the CLI and the API give the same result.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from srpsa.errors import InputError

app = typer.Typer(help="Train the models (detector; translate/superres to come).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Train the models. A callback keeps `train` a group even while it has a single subcommand."""


@app.command("detect")
def detect(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, history, cache and the exported weights/."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detector TOML (configs/detector/*.toml); default: paper settings."),
    synth: str | None = typer.Option(None, "--synth", help="Train on simulator images of this preset (e.g. train, primary).", rich_help_panel="Data"),
    data: Path | None = typer.Option(None, "--data", help="Train on a folder of annotated images (<stem>.csv/.json beside each image).", rich_help_panel="Data"),
    domain: str | None = typer.Option(None, "--domain", help="sem: the SEM image (aligned to the OM field); om: the OM image. Default: the config's.", rich_help_panel="Data"),
    cache: Path | None = typer.Option(None, "--cache", help="Folder of the generated/read images (default OUT/cache); reuse it across runs.", rich_help_panel="Data"),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Total epochs (default: the config's).", rich_help_panel="Training"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint.", rich_help_panel="Training"),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: the config's).", rich_help_panel="Training"),
    seed: int | None = typer.Option(None, "--seed", help="Seed of initialisation, data and crops (default: the config's).", rich_help_panel="Training"),
    workers: int | None = typer.Option(None, "--workers", min=0, help="DataLoader worker processes (default: the config's).", rich_help_panel="Training"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: torch's choice).", rich_help_panel="Training"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with the losses.", rich_help_panel="Training"),
) -> None:
    """Train the SR-PSA circle detector and export OUT/weights/detector.safetensors + detector.json."""
    import torch

    from srpsa.training.detector_config import config_from_dict, load_config
    from srpsa.training.detector_train import train_detector

    if resume and config is None:
        saved = out / "config.json"
        if not saved.is_file():
            raise InputError(f"--resume: {saved} not found; is --out a detector run folder?")
        cfg = config_from_dict(json.loads(saved.read_text(encoding="utf-8"))["config"])
    else:
        cfg = load_config(config)
    if domain is not None:
        if domain not in ("sem", "om"):
            raise InputError(f"--domain must be sem or om, got {domain!r}")
        cfg.domain = domain
    if not resume and (synth is None) == (data is None):
        raise InputError("give exactly one training source: --synth PRESET or --data FOLDER")
    if threads:
        torch.set_num_threads(threads)
    result = train_detector(cfg, out, synth=synth, data=data, epochs=epochs, resume=resume, device=device, seed=seed,
                            num_workers=workers, cache_dir=cache, progress=progress)
    m = result.metrics
    raw, ref = m["raw"], m["refined"]

    def pct(v: float) -> str:
        return "n/a" if v != v else f"{100 * v:.2f} %"  # NaN when nothing was matched

    typer.echo(f"weights: {result.weights_dir}")
    typer.echo(f"validation ({m['val_images']} images, {m['val_particles']} particles): F1 {raw['f1']:.3f} "
               f"(P {raw['precision']:.3f}, R {raw['recall']:.3f}); median radius error {pct(raw['radius_err'])} "
               f"network, {pct(ref['radius_err'])} refined")
