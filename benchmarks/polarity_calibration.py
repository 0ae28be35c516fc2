"""Evidence for the SEM detector's polarity margin (srpsa.inference.polarity), from training data only.

For simulator SEM images (srpsa.synth presets, seeds in the training range, the SEM side on the OM grid as
benchmarks/detection.py makes it) and for their photometric inverses (dark particles on a bright ground,
what the decision must catch), it prints the median radial F of the SEM detector's circles on the image
as it is and on its inverse, their ratio, and what the decision (PolarityConfig.ratio) picks. Held-out
images (benchmarks/generalisation.py) are only used to report how well it works, never to set it.

    python benchmarks/polarity_calibration.py [--seeds 4] [--size 384]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection import make_image  # noqa: E402

from srpsa.inference import weights as W  # noqa: E402
from srpsa.inference.analyzer import load_detector  # noqa: E402
from srpsa.inference.polarity import PolarityConfig, decide_polarity, invert  # noqa: E402

TRAIN_SEED = 29_500_000  # inside the training range (< 30,000,000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--presets", nargs="*", default=["train", "primary"])
    a = ap.parse_args()
    det = load_detector(str(W.model_dir(W.DETECTOR_SEM, None)), "onnx")
    cfg = PolarityConfig()
    print(f"| image | truth | median F as is | median F inverted | inverted / as is | circles as is / inverted | decision (ratio {cfg.ratio:g}) |")
    print("|---|---|---|---|---|---|---|")
    wrong = total = 0
    for name in a.presets:
        for k in range(a.seeds):
            img, _, _ = make_image(name, TRAIN_SEED + k, (a.size, a.size), "sem")
            img = np.clip(img, 0.0, 1.0)
            for truth, im in (("as is", img), ("inverted", invert(img))):
                flip, info, _ = decide_polarity(det, im, cfg=cfg)
                t = info["polarity_test"]
                f_as, f_inv = t["median_radial_f_as_is"], t["median_radial_f_inverted"]
                # the right answer for an inverted training image is to invert it back
                ok = flip == (truth == "inverted")
                wrong += not ok
                total += 1
                print(f"| {name}/{TRAIN_SEED + k} | {truth} | {f_as:.1f} | {f_inv:.1f} | {f_inv / max(f_as, 1e-6):.2f} | {t['circles_as_is']} / {t['circles_inverted']} | "
                      f"{info['polarity']}{'' if ok else ' (WRONG)'} |", flush=True)
    print(f"\n{total - wrong} of {total} decisions right")


if __name__ == "__main__":
    main()
