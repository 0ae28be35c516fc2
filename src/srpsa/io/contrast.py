"""A warning for images that hold (almost) no contrast: all black, all white, or a few levels only.

Such images give 0 particles; without a note that looks like a valid empty result. A 16-bit file whose
values are 0-3 (a camera that stored 2 bits in a 16-bit container, or a mis-scaled export) is the
common real case: divided by 65535 it is black.
"""

from __future__ import annotations

import numpy as np

#: Smallest max-min span (fraction of full scale) that is not "uniform": two 8-bit grey levels.
MIN_SPAN = 2.0 / 255.0


def low_contrast_warning(gray: np.ndarray, bit_depth: int, name: str) -> str | None:
    """One-line warning if ``gray`` (values in [0, 1]) spans less than :data:`MIN_SPAN`, else None."""
    lo, hi = float(gray.min()), float(gray.max())
    if hi - lo >= MIN_SPAN:
        return None
    return (f"{name}: image is nearly uniform (values {lo:.3g}-{hi:.3g} of full scale, {bit_depth}-bit): "
            "all black, all white, or only a few levels used; particles cannot be seen")
