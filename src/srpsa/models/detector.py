"""SR-PSA circle detector (paper 3.4): the network, its target encoding, decoding and loss (eq. 4-5).

Output maps, at 1/4 of the input size (``STRIDE`` = 4), one cell per 4x4 input pixels:

- ``p``: probability that a particle centre lies in the cell (sigmoid);
- ``x``, ``y``: position of that centre inside the cell, in [0, 1] (sigmoid);
- ``r``: radius in cells divided by ``max_radius`` (linear: no squashing, so the regression is not
  compressed near the ends of the working range; decoding clips it to be positive).

Coordinates follow the project convention: pixel (row i, col j) has its centre at (x=j, y=i), so cell
``(ci, cj)`` covers x in ``[4 cj - 0.5, 4 cj + 3.5)``. A centre at x lies in cell
``cj = floor((x + 0.5) / 4)`` with offset ``(x + 0.5) / 4 - cj``; decoding inverts this exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from srpsa.models.layers import ConvNormAct
from srpsa.models.detector_config import STRIDE, ModelConfig

if TYPE_CHECKING:
    from srpsa.models.detector_config import DetectorConfig

# Channels of the target stack built by :func:`encode_targets`.
T_P, T_X, T_Y, T_R, T_POS, T_WNEG = range(6)
N_TARGET_CHANNELS = 6


class SRPSADetector(nn.Module):
    """Five 3x3 conv layers with two 2x2 max-pools and a final conv to four maps ``[p, x, y, r]``.

    Parameters
    ----------
    cfg : DetectorConfig or ModelConfig
        The network's configuration (a :class:`DetectorConfig` contributes its ``model`` section).

    Notes
    -----
    Input: ``(B, C, H, W)`` float32 with ``H`` and ``W`` multiples of 4 (normalised as
    :func:`normalise_image` does). Output: ``(B, 4, H/4, W/4)``.
    """

    def __init__(self, cfg: DetectorConfig | ModelConfig) -> None:
        super().__init__()
        mcfg: ModelConfig = getattr(cfg, "model", cfg)
        self.cfg = mcfg
        layers: list[nn.Module] = []
        ch = mcfg.in_channels
        for i, (out, dil) in enumerate(zip(mcfg.channels, mcfg.dilations)):
            layers.append(ConvNormAct(ch, out, 3, dil, mcfg.norm))
            if i in mcfg.pool_after:
                layers.append(nn.MaxPool2d(2))
            ch = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, 4, mcfg.head_kernel, padding=mcfg.head_kernel // 2)
        # Start with a low confidence everywhere (most cells are background) and mid-range radii, so
        # the first steps do not waste effort undoing a p = 0.5 prior.
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([-4.0, 0.0, 0.0, 0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 4, H/4, W/4)`` maps: sigmoid p, sigmoid x/y offsets, linear r."""
        if x.shape[-1] % STRIDE or x.shape[-2] % STRIDE:
            raise ValueError(f"detector input height and width must be multiples of {STRIDE}, got {tuple(x.shape[-2:])}")
        out = self.head(self.features(x))
        return torch.cat([torch.sigmoid(out[:, :3]), out[:, 3:4]], dim=1)

    def model_args(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments: ``SRPSADetector(ModelConfig(**model_args))``."""
        c = self.cfg
        return {
            "in_channels": c.in_channels,
            "channels": list(c.channels),
            "dilations": list(c.dilations),
            "pool_after": list(c.pool_after),
            "head_kernel": c.head_kernel,
            "norm": c.norm,
            "max_radius": c.max_radius,
        }

    @classmethod
    def from_model_args(cls, args: dict[str, Any]) -> SRPSADetector:
        """Rebuild the network from :meth:`model_args` (lists become tuples)."""
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
        return cls(ModelConfig(**fixed))


def normalise_image(image: np.ndarray, stats: tuple[float, float] | None = None) -> np.ndarray:
    """Centre on the median and scale by the 0.5-99.5 percentile spread (robust to exposure).

    Parameters
    ----------
    image : np.ndarray
        Gray float image.
    stats : (centre, spread), optional
        Precomputed statistics (e.g. of the whole image when normalising a crop or tile).
    """
    centre, spread = stats if stats is not None else image_stats(image)
    return ((image - centre) / spread).astype(np.float32)


def image_stats(image: np.ndarray) -> tuple[float, float]:
    """``(median, spread)`` used by :func:`normalise_image`, on a subsample for large images."""
    flat = np.asarray(image, dtype=np.float32).ravel()
    if flat.size > 1_000_000:  # percentiles on every pixel of a 4k image cost more than they tell
        flat = flat[:: flat.size // 1_000_000 + 1]
    lo, med, hi = np.percentile(flat, [0.5, 50.0, 99.5])
    return float(med), float(max(hi - lo, 1e-3))


def encode_targets(
    circles: np.ndarray,
    out_hw: tuple[int, int],
    *,
    max_radius: float,
    radius_band: tuple[float, float] | None = None,
    ignore_band: tuple[float, float] | None = None,
    neighbour_weight: float = 1.0,
) -> np.ndarray:
    """Ground-truth maps for circles given in network-input pixels.

    Parameters
    ----------
    circles : np.ndarray, shape (N, 3)
        ``[x, y, r]`` in network-input pixels.
    out_hw : (h, w)
        Output map size (input size / 4).
    max_radius : float
        Radius normaliser in cells (``ModelConfig.max_radius``).
    radius_band : (low, high), optional
        Radii in cells that are positives. Centres of other particles (and their 8 neighbour cells)
        get zero weight: another pyramid scale answers for them. ``None``: every particle is positive.
    ignore_band : (low, high), optional
        Only particles outside ``radius_band`` but inside this wider band are ignored; particles far
        outside it stay negatives, so the network learns not to fire on particles that are clearly
        too small or too large for this scale (a lens spot inside a big particle, a whole particle
        seen as a dot). ``None``: every out-of-band particle is ignored.
    neighbour_weight : float
        Weight of the negative cells next to a positive cell.

    Returns
    -------
    np.ndarray, float32, shape (6, h, w)
        Channels ``T_P, T_X, T_Y, T_R`` (targets), ``T_POS`` (1 where a centre is encoded) and
        ``T_WNEG`` (weight of the cell as a negative: 0 = ignored).

    Notes
    -----
    When two centres fall into one cell, the larger particle is kept (it is also the one whose size
    matters most for volume-weighted statistics); the smaller one is not encoded, and its cell counts
    as the larger one's positive.
    """
    h, w = out_hw
    out = np.zeros((N_TARGET_CHANNELS, h, w), np.float32)
    out[T_WNEG] = 1.0
    circles = np.asarray(circles, np.float64).reshape(-1, 3)
    if len(circles) == 0:
        return out
    gx = (circles[:, 0] + 0.5) / STRIDE
    gy = (circles[:, 1] + 0.5) / STRIDE
    cj = np.floor(gx).astype(np.int64)
    ci = np.floor(gy).astype(np.int64)
    r_cells = circles[:, 2] / STRIDE
    inside = (ci >= 0) & (ci < h) & (cj >= 0) & (cj < w)
    if radius_band is None:
        in_band = np.ones(len(circles), bool)
    else:
        in_band = (r_cells >= radius_band[0]) & (r_cells <= radius_band[1])

    ignore = inside & ~in_band
    if radius_band is not None and ignore_band is not None:
        ignore &= (r_cells >= ignore_band[0]) & (r_cells <= ignore_band[1])
    if ignore.any():
        _stamp3x3(out[T_WNEG], ci[ignore], cj[ignore], 0.0, h, w)

    pos = np.flatnonzero(inside & in_band)
    if pos.size == 0:
        return out
    # Largest first, then keep the first occurrence per cell: collisions keep the larger particle.
    pos = pos[np.argsort(-r_cells[pos], kind="stable")]
    flat = ci[pos] * w + cj[pos]
    _, first = np.unique(flat, return_index=True)
    pos = pos[first]
    pi, pj = ci[pos], cj[pos]
    # Neighbours of a positive are soft negatives; ignored cells stay ignored (min of the weights).
    soft = np.full((h, w), 1.0, np.float32)
    _stamp3x3(soft, pi, pj, neighbour_weight, h, w)
    out[T_WNEG] = np.minimum(out[T_WNEG], soft)
    out[T_P, pi, pj] = 1.0
    out[T_X, pi, pj] = gx[pos] - pj
    out[T_Y, pi, pj] = gy[pos] - pi
    out[T_R, pi, pj] = r_cells[pos] / max_radius
    out[T_POS, pi, pj] = 1.0
    out[T_WNEG, pi, pj] = 0.0
    return out


def _stamp3x3(arr: np.ndarray, ci: np.ndarray, cj: np.ndarray, value: float, h: int, w: int) -> None:
    """Set ``arr`` to ``value`` on the 3x3 neighbourhood of each (ci, cj), clipped to the map."""
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ii, jj = ci + di, cj + dj
            ok = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
            arr[ii[ok], jj[ok]] = value


def decode_maps(
    maps: np.ndarray,
    *,
    max_radius: float,
    p_thresh: float,
    peaks: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Circles from output maps, in network-input pixels.

    Parameters
    ----------
    maps : np.ndarray, shape (4, h, w)
        ``[p, x, y, r]`` as produced by :class:`SRPSADetector`.
    max_radius : float
        The radius normaliser the maps were trained with.
    p_thresh : float
        Keep cells with ``p > p_thresh`` (paper 3.4: ``p_mask = p > p_thresh``).
    peaks : bool
        Also require ``p`` to be the maximum of its 3x3 neighbourhood (removes the echo of one
        particle in the next cell; ties are all kept and left to the NMS).

    Returns
    -------
    circles : np.ndarray, float64, shape (N, 3)
    scores : np.ndarray, float64, shape (N,)
    """
    p = maps[0]
    keep = p > p_thresh
    if peaks:
        keep &= p >= ndimage.maximum_filter(p, size=3, mode="constant", cval=0.0)
    ci, cj = np.nonzero(keep)
    x = (cj + maps[1, ci, cj].astype(np.float64)) * STRIDE - 0.5
    y = (ci + maps[2, ci, cj].astype(np.float64)) * STRIDE - 0.5
    r = np.maximum(maps[3, ci, cj].astype(np.float64), 1e-3) * max_radius * STRIDE
    return np.stack([x, y, r], axis=1).reshape(-1, 3), p[ci, cj].astype(np.float64)
