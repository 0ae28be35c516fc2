"""Which particle diameters the shipped detector can see, and a check of a requested ``--diameter-range``.

The detector measures particles whose radius falls in ``InferenceConfig.target_band`` output cells
(stride 4) at one of the pyramid scales ``[min_scale, max_scale]`` (:func:`srpsa.inference.scale.
choose_scales` clips to them). A diameter ``d`` px at scale ``s`` has radius ``d s / 8`` cells, so the
detectable diameters are ``8 lo / max_scale`` to ``8 hi / min_scale`` px (5.2 to 2048 px by default).
A range beyond them used to be clamped silently; now it is refused (wholly outside) or noted (partly).
"""

from __future__ import annotations

from srpsa.errors import ParameterError


def detectable_diameters_px() -> tuple[float, float]:
    """Smallest and largest diameter (px of the input image) the default inference settings cover."""
    from srpsa.models.detector_config import InferenceConfig

    cfg = InferenceConfig()
    lo, hi = cfg.target_band
    return 8.0 * lo / cfg.max_scale, 8.0 * hi / cfg.min_scale


def check_diameter_range_px(d_min: float, d_max: float) -> list[str]:
    """Raise if ``[d_min, d_max]`` px lies wholly outside the detectable diameters; else warnings."""
    lo, hi = detectable_diameters_px()
    if d_max < lo or d_min > hi:
        raise ParameterError(
            "diameter_range", f"{d_min:.4g}-{d_max:.4g} px is outside the detectable diameters "
            f"{lo:.3g}-{hi:.4g} px (check the diameter unit and the pixel size)"
        )
    if d_min < lo or d_max > hi:
        return [f"diameter range {d_min:.4g}-{d_max:.4g} px reaches beyond the detectable diameters "
                f"{lo:.3g}-{hi:.4g} px; sizes outside them are not measured"]
    return []
