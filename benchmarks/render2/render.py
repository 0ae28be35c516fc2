"""Render one held-out image: layout -> style -> vignette, colour cast, noise, 8 bits, optional JPEG."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from . import optics
from .layout import LayoutSpec, area_fraction, place
from .styles import STYLES

# Held-out seeds: training runs use seeds < 30,000,000; this benchmark only ever uses seeds >= this.
HELD_OUT_SEED = 900_000_000


def image_seed(style: str, k: int) -> int:
    """The documented seed of image ``k`` of ``style``: 900,000,000 + 1,000,000 * style index + k."""
    return HELD_OUT_SEED + 1_000_000 * list(STYLES).index(style) + k


@dataclass
class Rendered:
    image: np.ndarray  # uint8, (H, W) or (H, W, 3)
    circles: np.ndarray  # (N, 3) x, y, r in px, pixel centres at integer coordinates
    jpeg: bytes | None  # the JPEG file when the image was JPEG-compressed (image is its decoded pixels)
    meta: dict = field(default_factory=dict)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def render(style: str, seed: int, shape: tuple[int, int] = (768, 768)) -> Rendered:
    """One image of ``style`` (a key of :data:`STYLES`), fully determined by ``seed``."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got '{style}'")
    if seed < HELD_OUT_SEED:
        raise ValueError(f"seed must be >= {HELD_OUT_SEED} (held-out range), got {seed}")
    st = STYLES[style]
    rng = np.random.default_rng(seed)
    spec = LayoutSpec(
        median_diameter=_loguniform(rng, *st.diameter),
        cv=rng.uniform(0.03, 0.3),
        area_fraction=rng.uniform(*st.area_fraction),
        cluster=rng.uniform(*st.cluster),
        overlap=0.0 if rng.random() < 0.6 else rng.uniform(0.0, 0.15),
    )
    circles = place(rng, shape, spec)
    img = st.render(rng, circles, shape)
    img = img * optics.vignette(shape, rng, rng.uniform(*st.vignette))
    colour = rng.random() < st.colour_p
    if colour:
        cast = np.clip(rng.normal(1.0, 0.15, 3), 0.6, 1.4)
        img = img[..., None] * cast[None, None, :] + rng.uniform(0.0, 0.05, 3)[None, None, :]
    img = img + rng.normal(0.0, rng.uniform(0.002, 0.02), img.shape)
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    jpeg = None
    if rng.random() < st.jpeg_p:
        from PIL import Image  # Pillow only encodes; it draws nothing

        q = int(rng.integers(55, 95))
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=q)
        jpeg = buf.getvalue()
        u8 = np.asarray(Image.open(io.BytesIO(jpeg)))
    meta = {"style": style, "seed": seed, "height": shape[0], "width": shape[1], "n": int(len(circles)),
            "median_diameter_px": spec.median_diameter, "cv": spec.cv, "area_fraction_target": spec.area_fraction,
            "area_fraction": area_fraction(circles, shape), "cluster": spec.cluster, "overlap": spec.overlap,
            "colour": bool(colour), "jpeg": jpeg is not None}  # fmt: skip
    return Rendered(u8, circles, jpeg, meta)
