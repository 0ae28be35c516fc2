"""Regenerate the bundled demo image examples/om_example.tif (+ its ground truth) from the simulator.

    python scripts/make_example.py

The image is a simulated bright-field OM field (preset `primary`, seed 2026, 1024x768 px, dense monolayer at area fraction 0.5, no fiducials),
saved as an ImageJ TIFF carrying its calibration (0.4 um/px) so the demo shows calibration read from
file metadata. Ground truth circles (x, y, r in px, pixel centres at integer coordinates) go beside it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile

from srpsa.synth import make_pair, preset

ROOT = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    cfg = preset("primary")
    cfg = replace(cfg, height=768, width=1024)
    cfg = replace(cfg, fiducials=replace(cfg.fiducials, count=0), layout=replace(cfg.layout, mode="dense", area_fraction=0.5))
    pair = make_pair(cfg, seed=2026)
    om = np.clip(np.rint(pair.om * 255), 0, 255).astype(np.uint8)
    px = pair.pixel_size_om_um
    ROOT.mkdir(exist_ok=True)
    tifffile.imwrite(ROOT / "om_example.tif", om, imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": "um"})
    gt = pair.gt[["x_px", "y_px", "r_px", "edge"]].rename(columns={"x_px": "x", "y_px": "y", "r_px": "r"})
    gt.to_csv(ROOT / "om_example_gt.csv", index=False, float_format="%.4f")
    print(f"wrote {ROOT / 'om_example.tif'} ({len(gt)} particles, {px} um/px)")


if __name__ == "__main__":
    main()
