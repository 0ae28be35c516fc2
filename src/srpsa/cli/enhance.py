"""`srpsa translate`, `srpsa super-resolve`, `srpsa enhance`: the GAN stages alone, image in, image out.

Outputs are 16-bit gray PNG or TIFF (by the suffix of ``--out``), written atomically. ``enhance`` also
writes ``<out>.json`` with the scales it chose, so its coordinates can be mapped back to the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from srpsa.errors import InputError

_WRITE_SUFFIXES = (".png", ".tif", ".tiff")


def _write_gray16(path: Path, image: np.ndarray) -> None:
    import cv2

    from srpsa.io.atomic import atomic_write_bytes

    if path.suffix.lower() not in _WRITE_SUFFIXES:
        raise InputError(f"--out must end in {', '.join(_WRITE_SUFFIXES)}, got '{path.name}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    if path.suffix.lower() == ".png":
        ok, buf = cv2.imencode(".png", data)
        if not ok:
            raise InputError(f"could not encode {path.name}")
        atomic_write_bytes(path, buf.tobytes())
        return
    import tifffile

    from srpsa.io.atomic import atomic_path

    # Uncompressed via tifffile: OpenCV's LZW TIFFs need imagecodecs to be read back by tifffile.
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data)


def _load(image: Path):
    from srpsa.io import read_image

    return read_image(image)


def _enhancer(weights: Path | None, flow: str = "adaptive"):
    from srpsa.inference import weights as W
    from srpsa.inference.enhance import EnhanceConfig, Enhancer

    root = str(weights) if weights else None
    return Enhancer.load(W.model_dir(W.TRANSLATOR, root), W.model_dir(W.SUPERRES, root), EnhanceConfig(flow=flow))


def translate_command(
    image: Path = typer.Argument(..., help="OM image (any supported format; colour is converted to gray)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png or .tif, 16-bit gray)."),
    weights: Path | None = typer.Option(None, "--weights", help="Weights folder (default: $SRPSA_WEIGHTS_DIR or the shipped weights)."),
) -> None:
    """Translate an OM image into an SEM-like image on the same pixel grid (Pix2Pix, tiled)."""
    enh = _enhancer(weights)
    _write_gray16(out, enh.translate(_load(image).data))
    typer.echo(str(out))


def super_resolve_command(
    image: Path = typer.Argument(..., help="SEM-like image (e.g. the output of `srpsa translate`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (.png or .tif, 16-bit gray), 4x larger."),
    weights: Path | None = typer.Option(None, "--weights", help="Weights folder (default: $SRPSA_WEIGHTS_DIR or the shipped weights)."),
) -> None:
    """Super-resolve an SEM-like image 4x (ESRGAN, tiled)."""
    enh = _enhancer(weights)
    _write_gray16(out, enh.super_resolve(_load(image).data))
    typer.echo(str(out))


def enhance_command(
    image: Path = typer.Argument(..., help="OM image."),
    out: Path = typer.Option(..., "--out", "-o", help="Output SEM-like image (.png or .tif, 16-bit gray)."),
    weights: Path | None = typer.Option(None, "--weights", help="Weights folder (default: $SRPSA_WEIGHTS_DIR or the shipped weights)."),
    flow: str = typer.Option("adaptive", "--flow", help="adaptive: working scales follow the particle size; paper: 1024 -> 512 -> 128 -> 512."),
    diameter: float | None = typer.Option(None, "--diameter", min=1.0, help="Typical particle diameter in input px (default: from the OM detector's detections)."),
) -> None:
    """OM -> translate -> super-resolve; writes the SEM-like image and OUT.json with the scales used."""
    from srpsa.io.atomic import atomic_write_text

    om = _load(image).data
    if diameter is not None:
        result, size_from = _enhancer(weights, flow).enhance(om, diameter_px=diameter), "diameter"
    else:
        # The size guide of `analyze --pipeline full` itself (OM detector, then the SEM-side check), so
        # both commands pick the same working scale; only the SR stage is on here (the command's job).
        from srpsa.errors import ParameterError
        from srpsa.inference.analyzer import Analyzer

        try:
            pipe = Analyzer(pipeline="full", weights=weights, enhance_flow=flow, enhance_sr="model").full_pipeline
        except ParameterError as exc:
            from srpsa.cli.analyze import as_flag_error

            raise as_flag_error(exc) from None
        result, _, info = pipe.enhance_for(om)
        size_from = info["size_from"]
    _write_gray16(out, result.image)
    meta = {"input": str(image), "output": str(out), "plan": result.plan.to_dict(), "flow": flow, "size_from": size_from,
            "note": "x_input = (x_output + 0.5) / output_scale - 0.5 (pixel centres at integer coordinates)"}
    atomic_write_text(out.with_suffix(out.suffix + ".json"), json.dumps(meta, indent=2) + "\n")
    typer.echo(str(out))
