"""``--budget-minutes`` of a GAN run: how many steps fit a wall-clock budget, and shrinking the schedule.

After :data:`BUDGET_CALIBRATION_STEPS` steps the run measures its speed and shrinks ``stop`` and
``train.total_steps`` to the steps that fit, so the whole learning-rate schedule (TTUR swap, decay) fits
the budget; that is only done when the shortened run would have used the very learning rates of the
steps already done (:func:`can_rescale`). A hard stop at the deadline still ends the run cleanly.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from srpsa.training.distributed import agree_min
from srpsa.training.gan_config import GANConfig, SuperResConfig

__all__ = ["BUDGET_CALIBRATION_STEPS", "budget_stop", "can_rescale", "with_total_steps"]

log = logging.getLogger(__name__)

BUDGET_CALIBRATION_STEPS = 100  # steps timed before a --budget-minutes run fixes its length


def with_total_steps(cfg: GANConfig, total: int) -> GANConfig:
    """``cfg`` planned for ``total`` steps (``train.total_steps``), everything else equal."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, total_steps=total))


def can_rescale(cfg: GANConfig, done: int, total: int) -> bool:
    """True when a run planned with ``total`` steps would have used the very learning rates of the
    ``done + 1`` steps already taken (they all lie before the TTUR swap and, for ESRGAN, the rescaled
    schedule still holds its PSNR warm-up), so the shortened run is one that could have been planned so."""
    new = with_total_steps(cfg, total)
    if isinstance(new, SuperResConfig) and total <= new.train.psnr_warmup_steps:
        return False
    return all(new.learning_rates(s) == cfg.learning_rates(s) for s in range(done + 1))


def budget_stop(step: int, stop: int, seconds: list[float], deadline: float, device: torch.device,
                rescalable: Callable[[int], bool]) -> tuple[int, bool]:  # fmt: skip
    """``(new stop, whether the schedule is to shrink to it)`` after step ``step`` under a budget.

    ``seconds`` are the durations of this call's steps so far, ``deadline`` a ``time.monotonic()`` value.
    Identical on every rank: every rank takes the same branch at every step (the step count is shared), so
    the collectives in :func:`agree_min` always pair up; whether the deadline has passed is agreed on, not
    decided per rank.
    """
    now = time.monotonic()
    if len(seconds) == BUDGET_CALIBRATION_STEPS:
        # Skip the first steps (cuDNN autotuning, first image decodes); evaluations and checkpoints
        # cost a few steps each, so keep a 10 % margin for them.
        per_step = float(np.median(seconds[BUDGET_CALIBRATION_STEPS // 3 :]))
        fit = step + int(0.9 * max(deadline - now, 0.0) / per_step)
        fit = agree_min(fit, device)
        if fit < stop and rescalable(fit):
            log.info("budget: %.3f s/step, training %d steps instead of %d", per_step, fit, stop)
            return fit, True
        if fit < stop:
            log.warning("budget: %d steps fit, but the schedule cannot shrink below step %d; "
                        "stopping at the deadline instead", fit, step)  # fmt: skip
    elif step < stop:
        # hard stop once any rank is past the deadline; the schedule keeps its planned shape
        agreed = agree_min(step if now > deadline else stop, device)
        if agreed < stop:
            log.warning("budget: wall-clock deadline reached at step %d", agreed)
            return agreed, False
    return stop, False
