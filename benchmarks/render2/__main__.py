"""Write a render2 set:  python benchmarks/render2 --out DIR [--styles ...] [--n 3] [--size 768 768]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/render2`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "render2"

from render2 import STYLES  # noqa: E402
from render2.files import write_set  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="render2", description="Write held-out render2 images + circle CSVs to a folder.")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--styles", nargs="*", default=list(STYLES), help=f"any of: {', '.join(STYLES)}")
    ap.add_argument("--n", type=int, default=3, help="images per style")
    ap.add_argument("--size", type=int, nargs=2, default=(768, 768), metavar=("H", "W"))
    a = ap.parse_args(argv)
    bad = [s for s in a.styles if s not in STYLES]
    if bad:
        print(f"error: --styles: unknown style '{bad[0]}' (choose from {', '.join(STYLES)})", file=sys.stderr)
        return 2
    if a.n < 1 or min(a.size) < 64 or max(a.size) > 4096:
        print("error: --n must be >= 1 and --size between 64 and 4096 px", file=sys.stderr)
        return 2
    rows = write_set(a.out, a.styles, a.n, (a.size[0], a.size[1]))
    for r in rows:
        print(f"{r['image']}: {r['n']} circles, median d {r['median_diameter_px']:.1f} px, area fraction {r['area_fraction']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
