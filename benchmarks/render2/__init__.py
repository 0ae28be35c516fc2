"""render2: an independent second renderer for srpsa's generalisation benchmark (issue 13).

Written without srpsa.synth (it imports nothing from srpsa at all; numpy/scipy, Pillow only to encode
files) and with a different optical model: scalar wave optics (complex transmission of spheres,
angular-spectrum propagation to a few defocus planes, pupil cut-off) for transmitted light, plus
reflected-light, binary, TEM-, SEM- and droplet regimes. Seeds >= 900,000,000 only (held out: training
uses seeds < 30,000,000). See benchmarks/render2/README.md.
"""

from .render import HELD_OUT_SEED, Rendered, image_seed, render
from .styles import STYLES

__all__ = ["HELD_OUT_SEED", "STYLES", "Rendered", "image_seed", "render"]
