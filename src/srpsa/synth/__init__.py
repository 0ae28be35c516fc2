"""srpsa.synth: paired OM/SEM simulator with exact ground truth (see docs/simulator.md).

>>> from srpsa.synth import preset, make_pair
>>> pair = make_pair(preset("primary"), seed=0)  # doctest: +SKIP
"""

from srpsa.synth.config import HELDOUT_PRESETS, PRESETS, SynthConfig, check_not_heldout, load_synth_config, preset
from srpsa.synth.pair import SynthPair, derive_seed, make_pair, write_pair

__all__ = [
    "HELDOUT_PRESETS",
    "PRESETS",
    "SynthConfig",
    "SynthPair",
    "check_not_heldout",
    "derive_seed",
    "load_synth_config",
    "make_pair",
    "preset",
    "write_pair",
]
