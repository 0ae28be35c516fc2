"""`srpsa train ...`: train the models. `detect` trains the SR-PSA circle detector (paper 5.2.3),
`translate` the OM -> SEM-like Pix2Pix GAN (5.2.1) and `superres` the 4x ESRGAN (5.2.2).

Each subcommand maps its options one-to-one onto a library call
(:func:`srpsa.training.detector_train.train_detector`, :func:`srpsa.training.gan_train.train_gan`), so the
CLI and the API give the same result. The GAN commands also run under ``torchrun`` (one process per
device, DistributedDataParallel).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from srpsa.errors import InputError

app = typer.Typer(help="Train the models: detect (circle detector), translate (Pix2Pix), superres (ESRGAN).", no_args_is_help=True)


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
    init: Path | None = typer.Option(None, "--init", help="Start from this weights folder (same network settings) instead of random weights.", rich_help_panel="Training"),
) -> None:
    """Train the SR-PSA circle detector and export OUT/weights/detector.safetensors + detector.json."""
    import torch

    from srpsa.models.detector_config import config_from_dict, load_config
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
                            num_workers=workers, cache_dir=cache, progress=progress, init_from=init)
    m = result.metrics
    raw, ref = m["raw"], m["refined"]

    def pct(v: float) -> str:
        return "n/a" if v != v else f"{100 * v:.2f} %"  # NaN when nothing was matched

    typer.echo(f"weights: {result.weights_dir}")
    typer.echo(f"validation ({m['val_images']} images, {m['val_particles']} particles): F1 {raw['f1']:.3f} "
               f"(P {raw['precision']:.3f}, R {raw['recall']:.3f}); median radius error {pct(raw['radius_err'])} "
               f"network, {pct(ref['radius_err'])} refined")


# -- GANs ---------------------------------------------------------------------------------------------

_GAN_TRAINING = "Training"


def _train_gan_command(
    task: str,
    config: Path | None,
    data: Path | None,
    out: Path,
    steps: int | None,
    resume: bool,
    device: str,
    threads: int | None,
    eval_every: int,
    checkpoint_every: int,
    sample_every: int | None,
    seed: int | None,
    progress: bool,
    budget_minutes: float | None = None,
) -> None:
    """Shared body of `train translate` and `train superres`: resolve the config, train, report."""
    import dataclasses

    from srpsa.training.gan_config import load_gan_config
    from srpsa.training.gan_train import load_run_config, train_gan

    if config is not None:
        cfg = load_gan_config(config)
    elif resume:
        cfg, _ = load_run_config(out)
    else:
        raise InputError("--config is required (e.g. configs/%s/compact.toml)" % task)
    if cfg.task != task:
        raise InputError(f"{config or out}: config task is {cfg.task!r}, but this is `srpsa train {task}`")
    if seed is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
    result = train_gan(cfg, data, out, steps=steps, resume=resume, device=device, eval_every=eval_every,
                       checkpoint_every=checkpoint_every, sample_every=sample_every, progress=progress, threads=threads,
                       budget_minutes=budget_minutes)
    if result["weights_dir"] is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    m = result["metrics"]
    line = f"step {result['step']}: PSNR {m.get('psnr', float('nan')):.2f} dB, SSIM {m.get('ssim', float('nan')):.4f} on {m.get('n', 0)} {m.get('split', 'val')} crops"
    if "psnr_bicubic" in m:
        line += f" (bicubic: {m['psnr_bicubic']:.2f} dB, {m['ssim_bicubic']:.4f})"
    if result["seconds_per_step"]:
        line += f"; {result['seconds_per_step']:.3f} s/step"
    typer.echo(f"weights: {result['weights_dir']}")
    typer.echo(line)


def _gan_options(task: str, example: str):
    """The option set shared by both GAN subcommands (Typer needs them spelled out per function)."""

    def command(
        out: Path = typer.Option(..., "--out", "-o", help="Run folder: config.json, log.jsonl, samples/, checkpoint/, weights/."),
        config: Path | None = typer.Option(None, "--config", "-c", help=f"GAN TOML (e.g. {example}); with --resume default: the run's."),
        data: Path | None = typer.Option(None, "--data", help="srpsa prepare output folder (patches.csv + patch PNGs); with --resume default: the run's."),
        steps: int | None = typer.Option(None, "--steps", min=1, help="Stop after this many steps in total (default train.total_steps; the LR schedule always spans total_steps).", rich_help_panel=_GAN_TRAINING),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint (exactly).", rich_help_panel=_GAN_TRAINING),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK).", rich_help_panel=_GAN_TRAINING),
        threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for torch (default: torch's choice).", rich_help_panel=_GAN_TRAINING),
        eval_every: int = typer.Option(500, "--eval-every", min=0, help="Steps between PSNR/SSIM evaluations on the val split (0: at the end only).", rich_help_panel=_GAN_TRAINING),
        checkpoint_every: int = typer.Option(1000, "--checkpoint-every", min=0, help="Steps between checkpoints (0: at the end only; the last 2 are kept).", rich_help_panel=_GAN_TRAINING),
        sample_every: int | None = typer.Option(None, "--sample-every", min=0, help="Steps between sample grids (default: --eval-every).", rich_help_panel=_GAN_TRAINING),
        seed: int | None = typer.Option(None, "--seed", help="Seed of initialisation and sampling (default: the config's train.seed).", rich_help_panel=_GAN_TRAINING),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with the losses and ETA.", rich_help_panel=_GAN_TRAINING),
        budget_minutes: float | None = typer.Option(None, "--budget-minutes", help="Wall-clock budget: time the first steps, shrink train.total_steps (the whole LR schedule) to what fits, stop at the deadline at the latest.", rich_help_panel=_GAN_TRAINING),
    ) -> None:
        _train_gan_command(task, config, data, out, steps, resume, device, threads, eval_every, checkpoint_every,
                           sample_every, seed, progress, budget_minutes)

    return command


translate = _gan_options("translate", "configs/translate/compact.toml")
translate.__doc__ = "Train the OM -> SEM-like Pix2Pix GAN (AASNA) and export OUT/weights/generator.safetensors + generator.json."
app.command("translate")(translate)

superres = _gan_options("superres", "configs/superres/compact.toml")
superres.__doc__ = "Train the 4x ESRGAN(-SN) super-resolution GAN and export OUT/weights/generator.safetensors + generator.json."
app.command("superres")(superres)
