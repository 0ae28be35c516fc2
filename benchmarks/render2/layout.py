"""Where the particles lie: sizes, clustering, contact, area fraction (render2, independent of srpsa.synth).

Rule for contact and overlap: two particles may touch, and their centres may come closer than the sum of
their radii by at most ``overlap`` times that sum (0 = touching allowed, never overlapping). Written by hand
because the rule (random sequential addition with contact proposals and a hard overlap limit) is the
ground truth's definition; no library places disks under exactly this rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LayoutSpec:
    """How one image's particles are drawn (diameters in px)."""

    median_diameter: float
    cv: float  # relative spread of the lognormal diameter distribution
    area_fraction: float  # target share of the image area covered by particles (0-0.6)
    cluster: float  # 0: uniform positions; 1: nearly every new particle is placed in contact with one before
    overlap: float = 0.0  # largest allowed centre approach as a fraction of r_i + r_j
    d_min: float = 5.0
    d_max: float = 150.0


def draw_diameters(rng: np.random.Generator, spec: LayoutSpec, total_area: float) -> np.ndarray:
    """Lognormal diameters clipped to [d_min, d_max] until their disk area reaches the target."""
    sigma = float(np.sqrt(np.log1p(spec.cv**2)))
    mu = float(np.log(spec.median_diameter))
    target = spec.area_fraction * total_area
    out: list[float] = []
    area = 0.0
    while area < target:
        d = float(np.clip(rng.lognormal(mu, sigma), spec.d_min, spec.d_max))
        out.append(d)
        area += np.pi * d * d / 4.0
    return np.array(sorted(out, reverse=True))  # large first: they are the hard ones to fit


class _Grid:
    """Uniform bucket grid for neighbour queries (cell = largest diameter)."""

    def __init__(self, cell: float) -> None:
        self.cell = cell
        self.cells: dict[tuple[int, int], list[int]] = {}

    def add(self, i: int, x: float, y: float) -> None:
        self.cells.setdefault((int(x // self.cell), int(y // self.cell)), []).append(i)

    def near(self, x: float, y: float) -> list[int]:
        cx, cy = int(x // self.cell), int(y // self.cell)
        out: list[int] = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                out.extend(self.cells.get((cx + dx, cy + dy), ()))
        return out


def place(rng: np.random.Generator, shape: tuple[int, int], spec: LayoutSpec, tries: int = 40) -> np.ndarray:
    """Circles ``(N, 3)`` = x, y, r in px (pixel centres at integer coordinates), centres inside the image.

    Particles that find no free place after ``tries`` proposals are dropped, so the area fraction reached
    can be below the target at high density (``area_fraction`` reports what was reached).
    """
    h, w = shape
    diam = draw_diameters(rng, spec, float(h * w))
    grid = _Grid(max(float(diam.max()) if len(diam) else 1.0, 1.0))
    xs: list[float] = []
    ys: list[float] = []
    rs: list[float] = []
    keep = 1.0 - spec.overlap
    for d in diam:
        r = d / 2.0
        for _ in range(tries):
            if xs and rng.random() < spec.cluster:
                j = int(rng.integers(len(xs)))  # in contact with an earlier particle (plus a little gap)
                ang = rng.uniform(0, 2 * np.pi)
                dist = (r + rs[j]) * (keep + rng.uniform(0.0, 0.15))
                x, y = xs[j] + dist * np.cos(ang), ys[j] + dist * np.sin(ang)
            else:
                x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
            if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                continue
            idx = grid.near(x, y)
            if idx:
                ii = np.array(idx)
                dx = np.array(xs)[ii] - x
                dy = np.array(ys)[ii] - y
                if np.any(np.hypot(dx, dy) < (np.array(rs)[ii] + r) * keep - 1e-9):
                    continue
            grid.add(len(xs), x, y)
            xs.append(x)
            ys.append(y)
            rs.append(r)
            break
    return np.column_stack([xs, ys, rs]) if xs else np.zeros((0, 3))


def area_fraction(circles: np.ndarray, shape: tuple[int, int]) -> float:
    """Disk area over image area (ignores overlap and border cuts: the nominal fraction)."""
    return float(np.sum(np.pi * circles[:, 2] ** 2) / (shape[0] * shape[1]))
