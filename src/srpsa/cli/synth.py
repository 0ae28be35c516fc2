"""`srpsa synth`: write simulated OM/SEM pairs with exact ground truth (training and test data)."""

from __future__ import annotations

from pathlib import Path

import typer

from srpsa.errors import ConfigError

_PRESET_HELP = (
    "Simulator preset: primary, secondary, tertiary (the paper's datasets), train (domain-randomised, "
    "for detectors), heldout, heldout_eyepiece, heldout_lowmag (held-out test domains: never train on them)."
)


def command(
    outdir: Path = typer.Argument(..., help="Output folder (created if missing); pairs are added to its manifest.json."),
    preset: str = typer.Option("primary", "--preset", "-p", help=_PRESET_HELP),
    n: int = typer.Option(1, "--n", "-n", min=1, help="Number of pairs to write."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Run seed. Pair i uses a seed derived from (seed, i): same seed, same bytes."),
    height: int | None = typer.Option(None, "--height", min=32, help="OM image height in px (default: the preset's; SEM = x sem_scale)."),
    width: int | None = typer.Option(None, "--width", min=32, help="OM image width in px (default: the preset's)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML file overriding any preset field (see configs/synth/ and src/srpsa/synth/preset_files/); its own `preset = ...` wins over --preset."
    ),
    aligned: bool = typer.Option(False, "--aligned", help="No misregistration: the SEM shows exactly the OM field, sem_scale times finer."),
    no_fiducials: bool = typer.Option(False, "--no-fiducials", help="Draw no fiducial markers (fiducials.count = 0)."),
    start: int = typer.Option(0, "--start", min=0, help="Index of the first pair, to extend a data set without repeating seeds."),
    prefix: str | None = typer.Option(None, "--prefix", help="File-name prefix (default: the preset name): <prefix>_<index>_om.png, ..."),
) -> None:
    """Simulate OM/SEM pairs: <stem>_om.png, _sem.png, _gt_om.csv, _gt_sem.csv, _transform.json, _fiducials.csv.

    Every parameter of every pair (after per-image random draws) is recorded in OUTDIR/manifest.json.
    """
    from srpsa.synth import derive_seed, load_synth_config, make_pair, write_pair
    from srpsa.synth import preset as get_preset

    cfg = load_synth_config(config, base=preset) if config else get_preset(preset)
    if height is not None:
        cfg.height = height
    if width is not None:
        cfg.width = width
    if aligned:
        cfg.misregistration.enabled = False
    if no_fiducials:
        cfg.fiducials.count = 0
    name = prefix or cfg.name
    if not name or any(c in name for c in "/\\"):
        raise ConfigError(f"--prefix {name!r} must be a plain file-name prefix")
    for i in range(start, start + n):
        stem = f"{name}_{i:05d}"
        pair = make_pair(cfg, derive_seed(seed, i))
        pair.params["run"] = {"seed": seed, "index": i, "preset": cfg.name, "config_file": str(config) if config else None}
        write_pair(pair, outdir, stem)
        typer.echo(f"{outdir / stem}: {len(pair.gt)} particles (OM), {len(pair.gt_sem)} (SEM)", err=True)
    typer.echo(f"wrote {n} pair(s) to {outdir}")
