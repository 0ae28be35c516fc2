"""napari widget: analyse the selected image layer with ``srpsa analyze`` and add its particles.

The layer's pixels are saved to a temporary TIFF and analysed by the same per-image function as the
CLI (srpsa.inference.pipeline.analyze_image), so results equal `srpsa analyze` on that image; the
output folder is kept when ``out`` is given, else removed after reading.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from magicgui import magic_factory


def run_analysis(data: np.ndarray, pixel_size_um: float, modality: str, pipeline: str, out: str = "") -> tuple:
    """Analyse an image array; returns the particles' Shapes LayerDataTuple (srpsa.viewer.reader)."""
    import pandas as pd
    import tifffile

    from srpsa.inference.pipeline import AnalyzeSettings, analyze_image
    from srpsa.viewer.reader import particle_layer

    settings = AnalyzeSettings(modality=modality, pipeline=pipeline, pixel_size_um=pixel_size_um or None, bootstrap=0)
    work = Path(tempfile.mkdtemp(prefix="srpsa-napari-"))
    try:
        arr = np.asarray(data)
        if arr.dtype.kind == "f":  # the reader's float [0, 1] -> 16 bit, keeps precision
            arr = (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 65535 + 0.5).astype(np.uint16)
        image = work / "layer.tif"
        tifffile.imwrite(image, arr, photometric="rgb" if arr.ndim == 3 and arr.shape[-1] in (3, 4) else "minisblack")
        dest = Path(out) if out else work / "result"
        summary = analyze_image(image, dest, settings)
        table = pd.read_csv(dest / "particles.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    px = summary.get("pixel_size_um") or 1.0
    return particle_layer(table, "srpsa particles", (float(px), float(px)))


@magic_factory(
    call_button="Analyze",
    modality={"choices": ["om", "sem"]},
    pipeline={"choices": ["detect-only", "full"]},
    pixel_size_um={"min": 0.0, "max": 1e4, "step": 0.001, "label": "pixel size (um/px, 0: none)"},
    out={"label": "keep results in (optional)"},
)
def analyze_widget(image: "napari.layers.Image", pixel_size_um: float = 0.0, modality: str = "om", pipeline: str = "detect-only",
                   out: str = "") -> "napari.types.LayerDataTuple":  # noqa: F821 (napari resolves the names)
    """Detect and size the particles of the selected image layer."""
    if image is None:
        from srpsa.errors import InputError

        raise InputError("analyze widget: select an image layer first")
    return run_analysis(image.data, pixel_size_um, modality, pipeline, out)
