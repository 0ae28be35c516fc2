"""Training pairs for the two GANs, read from a ``srpsa prepare`` folder, with seeded, resumable sampling.

A prepared folder holds ``patches.csv`` (columns ``split, stem, om_file, sem_file, ...``) and 16-bit PNG
patch pairs: the OM patch is ``s`` pixels square, the SEM patch ``k * s`` (``k`` SEM pixels per OM pixel,
an integer; see :mod:`srpsa.training.prepare`). What a training pair is depends on the task:

translate (Pix2Pix, OM -> SEM-like)
    The generator maps an image to one of the *same* size, so the SEM target is brought onto the OM
    patch grid first: it is downsampled by ``k`` with area averaging (``cv2.INTER_AREA``: each OM pixel
    gets the mean of the ``k x k`` SEM pixels it covers, the physically right low-pass, with no
    aliasing and no ringing). Input = OM crop, target = downsampled SEM crop at the same position, both
    ``train.patch_size`` square.

superres (ESRGAN, x ``scale``)
    HR = a crop of ``lr_patch_size * scale`` pixels of the SEM patch itself (its full resolution);
    LR = that crop area-downsampled by ``scale`` (the standard bicubic-free SR degradation; area
    averaging matches how a coarser detector integrates light). At inference the LR input is the
    translated (SEM-like) image, not a downsampled SEM: training on clean downsampled SEM teaches the
    generator SEM texture, and the Pix2Pix output is meant to look like exactly that.

Sampling is a pure function of ``(seed, step)``: the training set is shuffled once per epoch with a
generator seeded by ``(seed, epoch)`` and sample ``g`` of the run (``g = step * global_batch + j``)
takes its crop offset from a generator seeded by ``(seed, g)``. A resumed run therefore sees exactly
the batches an uninterrupted one would, and no sampler state has to be checkpointed. Under
``torch.distributed`` the global batch is ``world_size * batch_size`` and rank ``r`` takes positions
``r, r + W, r + 2W, ...`` of it, the interleaving ``DistributedSampler`` uses, so the ranks' shards are
disjoint and together equal the samples of a single process with the global batch.

Images are float32 in ``[0, 1]``; decoded patches are cached in memory as uint16 (exact for 8- and 16-bit
sources, 2 bytes per pixel), loaded on first use.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from srpsa.errors import InputError
from srpsa.training.distributed import dist_rank_world  # re-exported: its old home

__all__ = [
    "TASKS",
    "PatchPairs",
    "PatchRecord",
    "area_downsample",
    "batch_indices",
    "dist_rank_world",
    "read_patch_index",
]

log = logging.getLogger(__name__)

TASKS = ("translate", "superres")
_FULL = 65535.0
_INDEX = "patches.csv"


@dataclass(frozen=True)
class PatchRecord:
    """One prepared patch pair (absolute paths)."""

    stem: str
    om: Path
    sem: Path


def read_patch_index(data_dir: str | os.PathLike[str], split: str) -> list[PatchRecord]:
    """The pairs of ``split`` listed in ``data_dir/patches.csv`` (in file order).

    Raises
    ------
    InputError
        The folder or its index is missing, the index lacks a column, or a listed file is missing.
    """
    root = Path(data_dir)
    index = root / _INDEX
    if not root.is_dir():
        raise InputError(f"--data {root}: folder not found (make one with srpsa prepare)")
    if not index.is_file():
        raise InputError(f"--data {root}: no {_INDEX}; is it a srpsa prepare output folder?")
    try:
        with open(index, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{index}: cannot read: {exc}") from None
    missing = {"split", "stem", "om_file", "sem_file"} - set(rows[0] if rows else {})
    if rows and missing:
        raise InputError(f"{index}: missing column(s) {', '.join(sorted(missing))}")
    out = []
    for row in rows:
        if row["split"] != split:
            continue
        rec = PatchRecord(row["stem"], root / row["om_file"], root / row["sem_file"])
        for path in (rec.om, rec.sem):
            if not path.is_file():
                raise InputError(f"{index}: listed patch {path} is missing")
        out.append(rec)
    return out


def batch_indices(step: int, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> list[tuple[int, int]]:
    """``(global sample number g, dataset index)`` of this rank's share of the batch of ``step``.

    The global batch has ``batch_size * world_size`` samples; rank ``r`` takes every ``world_size``-th
    one starting at ``r``. Sample ``g`` is entry ``g mod n`` of the permutation of epoch ``g // n``,
    seeded by ``(seed, epoch)``: without replacement within an epoch, independent of history.
    """
    if n < 1:
        raise ValueError("no samples to draw from")
    gb = batch_size * world_size
    out = []
    perms: dict[int, np.ndarray] = {}
    for g in range(step * gb + rank, (step + 1) * gb, world_size):
        epoch = g // n
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, 0, epoch]).permutation(n)
        out.append((g, int(perms[epoch][g % n])))
    return out


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a 2-D image by an integer ``factor`` with area averaging (``cv2.INTER_AREA``).

    For an integer factor this is exactly the mean of each ``factor x factor`` block.
    """
    if factor == 1:
        return image
    h, w = image.shape
    if h % factor or w % factor:
        raise ValueError(f"image {w}x{h} is not divisible by {factor}")
    return cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


class PatchPairs:
    """Pairs of one split for one task, cropped on demand (layout and conventions: module docstring).

    Parameters
    ----------
    data_dir : path
        ``srpsa prepare`` output folder.
    split : {"train", "val", "test"}
        Which pairs.
    task : {"translate", "superres"}
        What a pair is (module docstring).
    crop : int
        Side of the *target* crop: ``train.patch_size`` (translate) or ``lr_patch_size * scale``
        (superres, HR side).
    scale : int
        Super-resolution factor (superres only).
    records : list of PatchRecord, optional
        Use these pairs instead of reading the index (e.g. a training fallback for an empty val split).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        split: str,
        task: str,
        *,
        crop: int,
        scale: int = 1,
        records: list[PatchRecord] | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "superres" and crop % scale:
            raise ValueError(f"HR crop {crop} is not divisible by the scale {scale}")
        self.task, self.crop, self.scale, self.split = task, crop, scale, split
        self.records = read_patch_index(data_dir, split) if records is None else list(records)
        self.k = self._check_sizes() if self.records else 1
        self._cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def input_crop(self) -> int:
        """Side of the generator input crop."""
        return self.crop // self.scale if self.task == "superres" else self.crop

    def _check_sizes(self) -> int:
        """Read every header once: SEM = k x OM (one k for all), crops fit. Returns k."""
        from srpsa.io.images import read_image_shape

        ks = set()
        for rec in self.records:
            (h, w), (hs, ws) = read_image_shape(rec.om), read_image_shape(rec.sem)
            k = hs // h if h else 0
            if k < 1 or hs != k * h or ws != k * w:
                raise InputError(f"{rec.sem}: size {ws}x{hs} is not an integer multiple of its OM patch {w}x{h}")
            # the target source is OM-sized for translate (SEM brought onto the OM grid), SEM-sized for superres
            path, side = (rec.om, min(h, w)) if self.task == "translate" else (rec.sem, min(hs, ws))
            if side < self.crop:
                raise InputError(f"{path}: patch side {side} px is smaller than the {self.crop} px training crop; "
                                 "prepare larger patches (srpsa prepare --patch)")
            ks.add(k)
        if len(ks) > 1:
            raise InputError(f"patches of the {self.split} split mix SEM/OM size ratios {sorted(ks)}; prepare them in one run")
        return ks.pop()

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(target source, input source) of pair ``i`` as uint16; input is None for superres (derived from HR)."""
        if i not in self._cache:
            from srpsa.io.images import read_image

            rec = self.records[i]
            sem = read_image(rec.sem).data
            if self.task == "translate":
                om = read_image(rec.om).data
                self._cache[i] = (_to_u16(area_downsample(sem, self.k)), _to_u16(om))
            else:
                self._cache[i] = (_to_u16(sem), None)
        return self._cache[i]

    def preload(self, workers: int = 4) -> None:
        """Decode every pair into the cache now, on ``workers`` threads (OpenCV's decoder releases the GIL).

        Without it the first epoch decodes as it goes, so a GPU run's early steps are several times
        slower than the rest (which would also mislead a ``--budget-minutes`` run's step timing).
        """
        todo = [i for i in range(len(self)) if i not in self._cache]
        if not todo:
            return
        if workers <= 1:
            for i in todo:
                self._load(i)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self._load, todo))

    def crop_pair(self, i: int, offset: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(input, target)`` float32 crops of pair ``i``; ``offset`` = (y, x) of the target crop, None = centre."""
        target_src, input_src = self._load(i)
        h, w = target_src.shape
        c = self.crop
        y, x = offset if offset is not None else ((h - c) // 2, (w - c) // 2)
        target = target_src[y : y + c, x : x + c].astype(np.float32) / _FULL
        if self.task == "translate":
            assert input_src is not None
            inp = input_src[y : y + c, x : x + c].astype(np.float32) / _FULL
        else:
            inp = area_downsample(target, self.scale)
        return inp, target

    def random_offset(self, i: int, rng: np.random.Generator) -> tuple[int, int]:
        """Uniform crop origin inside pair ``i``."""
        h, w = self._load(i)[0].shape
        return int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))

    def batch(self, step: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's ``(input, target)`` batch of ``step``: (B, 1, h, w) float32 tensors in [0, 1]."""
        inputs, targets = [], []
        for g, i in batch_indices(step, len(self), batch_size, seed, rank, world_size):
            rng = np.random.default_rng([seed, 1, g])
            inp, tgt = self.crop_pair(i, self.random_offset(i, rng))
            inputs.append(inp)
            targets.append(tgt)
        return _stack(inputs), _stack(targets)

    def eval_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre crops of up to ``n`` pairs spread evenly over the split (fixed for the whole run)."""
        idx = np.unique(np.linspace(0, len(self) - 1, num=min(n, len(self))).round().astype(int))
        pairs = [self.crop_pair(int(i)) for i in idx]
        return _stack([p[0] for p in pairs]), _stack([p[1] for p in pairs])


def _to_u16(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * _FULL).astype(np.uint16)


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)[:, None].copy())
