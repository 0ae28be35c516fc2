"""Pre-flight cost of one image: peak memory and time estimated from its header, before decoding.

What makes the estimate possible is that nothing in `srpsa analyze` grows faster than the image itself:
the translation enlarges at most 3x and only when the particles are >= 16 px (``EnhanceConfig``), small
particles are measured at native scale, and every working image larger than
:data:`srpsa.inference.blocks.BLOCK_PIXELS` is processed block by block. So

    peak memory  ~  BASE_BYTES  +  BYTES_PER_PIXEL * pixels  +  BLOCK_BYTES
    time         ~  SECONDS_FIXED  +  SECONDS_PER_MPX * megapixels

with constants measured by ``benchmarks/scaling.py`` (benchmarks/RESULTS.md, "Scaling"): BASE_BYTES is
the interpreter with both runtimes and the four models loaded, BYTES_PER_PIXEL what is kept at full
resolution (the decoded file, the float32 gray image, the RGB copy for the overlay, per-pixel temporaries
of the statistics and writing), BLOCK_BYTES a block's working set. The constants are the largest seen over
particle sizes 5-150 px, so the estimate is an upper bound for images like the benchmark's; the time is a
guide only (it depends on the machine and its load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from srpsa.errors import InputError

GB = 1024**3

#: default of ``--max-memory`` (issue 16: every analysis stays under 4 GB)
DEFAULT_MAX_MEMORY_GB = 4.0

# Measured (benchmarks/scaling.py, see the module docstring): the worst cell per constant, rounded up.
BASE_BYTES = int(0.9 * GB)
BYTES_PER_PIXEL = 40.0
BLOCK_BYTES = int(0.8 * GB)
SECONDS_FIXED = 4.0
SECONDS_PER_MPX = 4.0


@dataclass(frozen=True)
class CostEstimate:
    pixels: int
    peak_bytes: int
    seconds: float

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB

    def to_dict(self) -> dict[str, float]:
        return {"pixels": self.pixels, "peak_memory_gb": round(self.peak_gb, 3), "seconds": round(self.seconds, 1)}


def estimate_cost(pixels: int) -> CostEstimate:
    """Upper-bound peak memory and a time guide for an image of ``pixels`` pixels (all planes)."""
    block = BLOCK_BYTES if pixels > 0 else 0
    peak = BASE_BYTES + int(BYTES_PER_PIXEL * pixels) + block
    return CostEstimate(int(pixels), peak, SECONDS_FIXED + SECONDS_PER_MPX * pixels / 1e6)


def max_pixels_for(max_memory_gb: float) -> int:
    """The largest image (pixels) whose estimate fits in ``max_memory_gb``."""
    return max(0, int((max_memory_gb * GB - BASE_BYTES - BLOCK_BYTES) / BYTES_PER_PIXEL))


def valid_max_memory(max_memory_gb) -> bool:
    return (isinstance(max_memory_gb, (int, float)) and not isinstance(max_memory_gb, bool)
            and math.isfinite(max_memory_gb) and max_memory_gb > 0)


def check_max_memory(max_memory_gb: float) -> None:
    if not valid_max_memory(max_memory_gb):
        raise InputError(f"--max-memory must be a positive number of GB, got {max_memory_gb}")


def preflight_image(path: str | Path, max_memory_gb: float = DEFAULT_MAX_MEMORY_GB, max_pixels: int | None = None) -> CostEstimate | None:
    """The estimate for the image file ``path`` from its header; raises :class:`InputError` (one line,
    naming the limit and the option) when it exceeds ``max_memory_gb``. None when the header cannot be
    read (the decoder then reports the file precisely)."""
    from srpsa.io.files import TIFF_SUFFIXES
    from srpsa.io.guard import declared_pixels

    p = Path(path)
    try:
        n = declared_pixels(p, p.suffix.lower() in TIFF_SUFFIXES)
    except Exception:  # noqa: BLE001 - broken headers are reported by the real decoder next
        return None
    if max_pixels is not None and n > max_pixels:
        return None  # the --max-pixels guard of the decoder refuses it with its own message
    est = estimate_cost(n)
    if est.peak_gb > max_memory_gb:
        side = int(math.sqrt(n))
        raise InputError(
            f"{p.name}: {n / 1e6:.1f} Mpx (about {side}^2) needs an estimated {est.peak_gb:.1f} GB, more than "
            f"--max-memory {max_memory_gb:g} GB (largest that fits: {max_pixels_for(max_memory_gb) / 1e6:.0f} Mpx; "
            "raise --max-memory or crop the image)"
        )
    return est
