"""Train the two GANs: AASNA-Pix2Pix (``translate``, OM -> SEM-like) and ESRGAN-SN (``superres``, x4).

One trainer serves both tasks; only :meth:`GANTrainer.train_step` differs. A run reads top to bottom:

1. read the prepared patch pairs (:mod:`srpsa.training.gan_data`), build G and D from the config
   (``build_gan``: seeded, identical on every rank), Adam for each with the config's betas; with
   ``resume=True`` restore both networks, both optimisers and the step from ``OUT/checkpoint``;
2. per step: set the switching-TTUR rates ``cfg.learning_rates(step)`` on the two optimisers, draw the
   step's batch (a pure function of seed and step), one D step then one G step;
3. every ``eval_every`` steps: PSNR/SSIM of G on fixed validation crops; every ``sample_every`` steps a
   sample grid; every ``checkpoint_every`` steps a checkpoint (last two kept);
4. at the end: a final evaluation and checkpoint, and the release weights ``OUT/weights/``
   (:func:`srpsa.models.release.save_generator_release`).

Losses: Pix2Pix uses ``pix2pix_discriminator_loss`` (D) and ``Pix2PixGeneratorLoss`` (cGAN + 5 RMSE,
eq. 2), computed in the generator's range (``[-1, 1]`` for tanh, as pix2pix computes its L1); ESRGAN
first trains G alone with L1 for ``psnr_warmup_steps`` (D untouched), then ``RelativisticAverageLoss``
(D) and ``ESRGANGeneratorLoss`` (perceptual + 0.05 RaGAN + 0.01 L1, eq. 3) on ``[0, 1]`` images. The GAN
phase starts with fresh Adam moments for G, as ESRGAN starts its GAN stage from the PSNR model with a new
optimiser (the learning rate jumps from 2e-4 to the TTUR rate there). One-sided label smoothing
(``train.d_real_label``) lives in the losses.

Exact resume: the batch of step ``s`` is drawn from generators seeded by ``(seed, s)``, and torch's
global RNG (dropout) is reseeded from ``(seed, s, rank)`` before every step, so nothing about the past
has to be replayed; the checkpoint holds G, D (with their spectral-norm vectors and batch-norm
statistics), both Adam states and the step. An interrupted and resumed run reproduces the per-step
losses of an uninterrupted one (bit for bit on one CPU thread, tested).

Distributed (``torchrun``, :mod:`srpsa.training.distributed`): each rank trains on its shard of a global
batch of ``world_size * batch_size`` (``train.batch_size`` is per process). Only rank 0 writes logs,
samples, checkpoints and weights; the logged losses are rank 0's. In the G step the discriminator is
called through the unwrapped module: D's gradients are not wanted there, and a DDP forward would wait.
Modules: checkpoints in :mod:`~srpsa.training.checkpoint`, ``--budget-minutes`` in
:mod:`~srpsa.training.gan_budget`, evaluations and samples in :mod:`~srpsa.training.gan_eval`,
``config.json``/``log.jsonl`` in :mod:`~srpsa.training.run_log`.

Outputs in ``OUT``: ``config.json`` (config, data folder, perceptual-loss source, world size),
``log.jsonl`` (one ``kind: "train"`` line per ``log_every`` steps: step, lr_g, lr_d, loss terms,
seconds; one ``kind: "eval"`` line per evaluation), ``samples/step_XXXXXX.png``, ``checkpoint/`` and
``weights/``. ``step`` in the log is the number of optimisation steps done; the learning rates on a line
are those of that last step (``cfg.learning_rates(step - 1)``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srpsa import __version__
from srpsa.errors import ConfigError, InputError
from srpsa.io.atomic import atomic_write_text
from srpsa.io.provenance import json_safe
from srpsa.models.release import save_generator_release
from srpsa.training import gan_budget, gan_eval, gan_steps
from srpsa.training.checkpoint import load_gan_checkpoint, save_gan_checkpoint
from srpsa.training.distributed import dist_rank_world, init_distributed, resolve_device, wrap_ddp
from srpsa.training.gan_config import GANConfig, TranslateConfig, build_gan, config_to_dict, gan_config_from_dict
from srpsa.training.gan_data import PatchPairs
from srpsa.training.gan_eval import sample_grid
from srpsa.training.run_log import CONFIG_FILE, LOG_FILE, JsonlLog, load_run_config, logs_above_bar, progress_bar

__all__ = [
    "GANTrainer",
    "gan_config_from_dict",
    "load_gan_checkpoint",
    "load_run_config",
    "sample_grid",
    "save_gan_checkpoint",
    "train_gan",
]

log = logging.getLogger(__name__)

# -- the trainer --------------------------------------------------------------------------------------


class GANTrainer:
    """State of one GAN run: data, networks, optimisers, losses, output folder (see module docstring).

    Parameters
    ----------
    cfg : TranslateConfig | SuperResConfig
        Resolved config (``load_gan_config``).
    data_dir : path
        ``srpsa prepare`` output folder.
    out_dir : path
        Run folder.
    resume : bool
        Continue from ``out_dir/checkpoint`` (the config must equal the run's).
    device : {"cpu", "cuda", "cuda:N"}
        Under torchrun, ``"cuda"`` means ``cuda:LOCAL_RANK``.
    eval_patches : int
        Validation crops (centre crops, spread over the val split) used by every evaluation.
    keep_checkpoints : int
        Step folders kept in ``out_dir/checkpoint``.
    """

    def __init__(
        self,
        cfg: GANConfig,
        data_dir: str | Path,
        out_dir: str | Path,
        *,
        resume: bool = False,
        device: str = "cpu",
        eval_patches: int = 16,
        keep_checkpoints: int = 2,
    ) -> None:
        self.cfg = cfg
        self.task = cfg.task
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoint"
        self.keep_checkpoints = keep_checkpoints
        self.rank, self.world = dist_rank_world()
        self.device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its fastest kernels
        self.data_dir = Path(data_dir)
        self.train_data, self.eval_data, self.eval_split = self._build_data(eval_patches)
        if self.device.type == "cuda":  # a GPU step is faster than decoding its batch: decode everything first
            self.train_data.preload(workers=min(8, os.cpu_count() or 1))
        self._check_run_folder(resume)

        g, d = build_gan(cfg)
        self.g_net: nn.Module = g.to(self.device).train()
        self.d_net: nn.Module = d.to(self.device).train()
        tr = cfg.train
        self.opt_g = torch.optim.Adam(self.g_net.parameters(), lr=cfg.learning_rates(0)[0], betas=(tr.beta1, tr.beta2))
        self.opt_d = torch.optim.Adam(self.d_net.parameters(), lr=cfg.ttur.lr_d, betas=(tr.beta1, tr.beta2))
        self.step = 0
        self.history: list[dict[str, Any]] = []
        if resume:
            state = load_gan_checkpoint(self.ckpt_dir, self.g_net, self.d_net, self.opt_g, self.opt_d)
            self.step, self.history = int(state["step"]), list(state.get("eval_history", []))
            log.info("resumed %s from step %d", self.out_dir, self.step)
        self.G, self.D = self._wrap(self.g_net), self._wrap(self.d_net)
        self._last_outputs: torch.Tensor | None = None  # G's outputs on the eval crops, reused for samples
        self.losses = gan_steps.build_losses(cfg, self.device)
        self.perceptual_source = self.losses.perceptual_source
        if self.rank == 0:
            self._write_run_config()
        self.log = JsonlLog(self.out_dir / LOG_FILE, self.step if resume else None) if self.rank == 0 else None
        self.last_metrics: dict[str, Any] = self.history[-1]["metrics"] if self.history else {}

    # -- setup ---------------------------------------------------------------------------------------

    def _build_data(self, eval_patches: int) -> tuple[PatchPairs, tuple[torch.Tensor, torch.Tensor], str]:
        cfg = self.cfg
        if isinstance(cfg, TranslateConfig):
            crop, scale = cfg.train.patch_size, 1
        else:
            crop, scale = cfg.hr_patch_size, cfg.generator.scale
        train = PatchPairs(self.data_dir, "train", self.task, crop=crop, scale=scale)
        if len(train) == 0:
            raise InputError(f"--data {self.data_dir}: the train split has no patches")
        val = PatchPairs(self.data_dir, "val", self.task, crop=crop, scale=scale)
        split = "val"
        if len(val) == 0:
            log.warning("%s: the val split is empty; evaluating on training patches", self.data_dir)
            val, split = PatchPairs(self.data_dir, "train", self.task, crop=crop, scale=scale, records=train.records), "train"
        return train, val.eval_pairs(eval_patches), split

    def _check_run_folder(self, resume: bool) -> None:
        has_ckpt = (self.ckpt_dir / "latest.json").is_file()
        if resume:
            if not has_ckpt:
                raise InputError(f"--resume: no checkpoint in {self.ckpt_dir}")
            saved, _ = load_run_config(self.out_dir)
            diff = [k for k, v in config_to_dict(self.cfg).items() if config_to_dict(saved).get(k) != v]
            if diff:
                raise ConfigError(f"--resume: config section(s) {', '.join(diff)} differ from the run in {self.out_dir}; resume with its config")
        elif has_ckpt:
            raise InputError(f"{self.out_dir} already holds a GAN training run; use --resume or another --out")

    def _wrap(self, net: nn.Module) -> nn.Module:
        return wrap_ddp(net, self.device, self.world)

    def _write_run_config(self) -> None:
        meta = {
            "config": config_to_dict(self.cfg),
            "data": str(self.data_dir),
            "eval_split": self.eval_split,
            "eval_patches": int(self.eval_data[0].shape[0]),
            "loss": {"source": self.perceptual_source} if self.task == "superres" else {},
            "world_size": self.world,
            "device": str(self.device),
            "srpsa_version": __version__,
            "torch_version": torch.__version__,
        }
        atomic_write_text(self.out_dir / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")

    # -- one optimisation step -----------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """Run optimisation step ``self.step`` (0-based) and advance it; returns the logged values."""
        step = self.step
        t0 = time.perf_counter()
        lr_g, lr_d = self.cfg.learning_rates(step)
        gan_steps.set_lr(self.opt_g, lr_g)
        gan_steps.set_lr(self.opt_d, lr_d)
        torch.manual_seed(gan_steps.step_seed(self.cfg.train.seed, step, self.rank))
        inp, tgt = self.train_data.batch(step, self.cfg.train.batch_size, self.cfg.train.seed, self.rank, self.world)
        inp, tgt = inp.to(self.device, non_blocking=True), tgt.to(self.device, non_blocking=True)
        nets = gan_steps.Nets(self.G, self.D, self.d_net, self.opt_g, self.opt_d)
        if isinstance(self.cfg, TranslateConfig):
            terms = gan_steps.translate_step(nets, self.losses, self.cfg.generator.output_activation, inp, tgt)
        else:
            terms = gan_steps.superres_step(nets, self.losses, self.cfg.train.psnr_warmup_steps, step, inp, tgt)
        self.step += 1
        return {"step": self.step, "lr_g": lr_g, "lr_d": lr_d, **terms, "seconds": time.perf_counter() - t0}

    # -- evaluation, samples, checkpoints, export ----------------------------------------------------

    def generate(self, inputs: torch.Tensor, batch: int = 4) -> torch.Tensor:
        """G's output in ``[0, 1]`` for ``[0, 1]`` inputs (eval mode, in chunks), on the CPU."""
        act = self.cfg.generator.output_activation if self.task == "translate" else None
        return gan_eval.generate(self.g_net, inputs, self.device, act, batch)

    def evaluate(self) -> dict[str, Any]:
        """Mean PSNR (dB) and SSIM of G on the evaluation crops; superres adds the bicubic baseline."""
        inputs, targets = self.eval_data
        outputs = self.generate(inputs)
        self._last_outputs = outputs
        return gan_eval.evaluate_generator(outputs, inputs, targets, self.eval_split, self.task == "superres")

    def write_samples(self, outputs: torch.Tensor | None = None) -> Path:
        """``OUT/samples/step_XXXXXX.png``: the first evaluation crops, input | output | target."""
        inputs, targets = self.eval_data
        outputs = self.generate(inputs[: gan_eval.SAMPLE_ROWS]) if outputs is None else outputs
        return gan_eval.write_samples(self.out_dir / "samples" / f"step_{self.step:06d}.png", inputs, outputs, targets)

    def save_checkpoint(self) -> Path:
        state = {"config": config_to_dict(self.cfg), "eval_history": self.history, "perceptual_source": self.perceptual_source}
        return save_gan_checkpoint(self.ckpt_dir, self.step, self.g_net, self.d_net, self.opt_g, self.opt_d,
                                   json_safe(state), keep=self.keep_checkpoints)  # fmt: skip

    def export(self, provenance: dict[str, Any]) -> Path:
        """Release weights of the current G in ``OUT/weights``."""
        prov = {
            "data": str(self.data_dir), "steps": self.step, "seed": self.cfg.train.seed, "device": str(self.device),
            "world_size": self.world, "config_name": self.cfg.name, "torch_version": torch.__version__,
            **({"perceptual_source": self.perceptual_source} if self.task == "superres" else {}), **provenance,
        }  # fmt: skip
        return save_generator_release(self.out_dir / "weights", self.g_net, task=self.task,
                                      config_dict=config_to_dict(self.cfg), metrics=self.last_metrics, provenance=prov)  # fmt: skip

    # -- the loop ------------------------------------------------------------------------------------

    def run(
        self,
        stop: int,
        *,
        eval_every: int = 500,
        checkpoint_every: int = 1000,
        sample_every: int | None = None,
        log_every: int = 1,
        progress: bool = True,
        budget_s: float | None = None,
    ) -> dict[str, Any]:
        """Train until ``self.step == stop``; evaluate, sample and checkpoint on schedule and at the end.

        ``budget_s`` (seconds of wall clock for this call): after
        :data:`~srpsa.training.gan_budget.BUDGET_CALIBRATION_STEPS` steps the run measures its speed and
        shrinks ``stop`` and ``train.total_steps`` to the steps that fit,
        so the whole learning-rate schedule (TTUR swap, decay) fits the budget; a hard stop at the
        deadline still ends the run cleanly (final evaluation, checkpoint, weights).
        """
        sample_every = eval_every if sample_every is None else sample_every
        main = self.rank == 0
        bar = progress_bar(self.step, stop, f"{self.task} {self.cfg.name}", progress and main)
        seconds: list[float] = []
        t_start = time.time()
        deadline = None if budget_s is None else time.monotonic() + budget_s
        with logs_above_bar(bar is not None):
            while self.step < stop:
                entry = self.train_step()
                seconds.append(entry["seconds"])
                if deadline is not None:
                    stop = self._fit_budget(stop, seconds, deadline, bar)
                if main:
                    self._after_step(entry, stop, bar, log_every, eval_every, sample_every, checkpoint_every)
        if bar is not None:
            bar.close()
        if main and not seconds:  # nothing left to train: still make sure the final weights exist
            self.last_metrics = self.last_metrics or self.evaluate()
        return {"seconds": seconds, "train_time_s": time.time() - t_start}

    def _fit_budget(self, stop: int, seconds: list[float], deadline: float, bar: Any) -> int:
        """The new ``stop`` under a wall-clock budget (:func:`srpsa.training.gan_budget.budget_stop`)."""
        new, rescale = gan_budget.budget_stop(self.step, stop, seconds, deadline, self.device,
                                              lambda total: gan_budget.can_rescale(self.cfg, self.step, total))  # fmt: skip
        if rescale:
            self._set_total_steps(new)
            if bar is not None:
                bar.total = new
                bar.refresh()
        return new

    def _set_total_steps(self, total: int) -> None:
        """Rescale the run's schedule to ``total`` steps (see :func:`srpsa.training.gan_budget.can_rescale`)."""
        self.cfg = gan_budget.with_total_steps(self.cfg, total)
        if self.rank == 0:
            self._write_run_config()

    def _after_step(self, entry: dict[str, float], stop: int, bar: Any, log_every: int, eval_every: int,
                    sample_every: int, checkpoint_every: int) -> None:  # fmt: skip
        """Rank 0's bookkeeping after a step: log line, progress bar, scheduled eval/samples/checkpoint."""
        s = self.step
        if self.log is not None and (s % log_every == 0 or s == stop):
            self.log.write({"kind": "train", **entry})
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items() if k not in ("step", "seconds", "lr_g", "lr_d")})
        self._on_schedule(s, stop, eval_every, sample_every, checkpoint_every)

    def _on_schedule(self, s: int, stop: int, eval_every: int, sample_every: int, checkpoint_every: int) -> None:
        final = s == stop
        outputs = None
        if (eval_every and s % eval_every == 0) or final:
            self.last_metrics = self.evaluate()
            outputs = self._last_outputs
            self.history.append({"step": s, "metrics": json_safe(self.last_metrics)})
            assert self.log is not None
            self.log.write({"kind": "eval", "step": s, **json_safe(self.last_metrics)})
            log.info("step %d: PSNR %.2f dB, SSIM %.4f (%d %s crops)", s, self.last_metrics["psnr"],
                     self.last_metrics["ssim"], self.last_metrics["n"], self.eval_split)  # fmt: skip
        if (sample_every and s % sample_every == 0) or final:
            self.write_samples(outputs)
        if (checkpoint_every and s % checkpoint_every == 0) or final:
            self.save_checkpoint()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


# -- entry point --------------------------------------------------------------------------------------


def train_gan(
    cfg: GANConfig,
    data_dir: str | Path | None,
    out_dir: str | Path,
    *,
    steps: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    eval_every: int = 500,
    checkpoint_every: int = 1000,
    sample_every: int | None = None,
    progress: bool = True,
    threads: int | None = None,
    eval_patches: int = 16,
    log_every: int = 1,
    keep_checkpoints: int = 2,
    budget_minutes: float | None = None,
) -> dict[str, Any]:
    """Train (or continue) a GAN run and export ``out_dir/weights``.

    Parameters
    ----------
    cfg : TranslateConfig | SuperResConfig
        The task comes from ``cfg.task``.
    data_dir : path or None
        ``srpsa prepare`` folder; None with ``resume`` reuses the run's.
    out_dir : path
        Run folder (module docstring lists its contents).
    steps : int, optional
        Stop once this many optimisation steps are done in total (default ``train.total_steps``). The
        learning-rate schedule always spans ``train.total_steps``, so a run can be trained in pieces.
    resume : bool
        Continue from the last checkpoint; bit-exact with an uninterrupted run on the same hardware.
    device : str
        ``cpu`` or ``cuda`` (``cuda:LOCAL_RANK`` under torchrun).
    eval_every, checkpoint_every, sample_every : int
        Schedules in steps (0 = only at the end); ``sample_every`` defaults to ``eval_every``.
    progress : bool
        tqdm bar with the losses and ETA (rank 0).
    threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).
    eval_patches : int
        Validation crops per evaluation.
    log_every : int
        Write every n-th step to ``log.jsonl``.
    keep_checkpoints : int
        Checkpoint folders kept.
    budget_minutes : float, optional
        Wall-clock budget of this call: the run times its first steps and shortens ``train.total_steps``
        (the whole schedule) to what fits, then stops at the deadline at the latest. The steps actually
        planned are written to ``config.json``, so ``--resume`` and a rerun with that config repeat them.

    Returns
    -------
    dict
        ``out_dir``, ``weights_dir``, ``step``, ``metrics`` (last evaluation), ``seconds_per_step``
        (median over this call's steps), ``train_time_s``, ``perceptual_source``.
    """
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise InputError(f"--budget-minutes must be > 0, got {budget_minutes}")
    for name, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every), ("sample_every", sample_every)):
        if value is not None and value < 0:
            raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if data_dir is None:
        if not resume:
            raise InputError("--data is required (a srpsa prepare folder)")
        data_dir = load_run_config(out_dir)[1]
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    created = init_distributed(device)
    trainer = None
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        trainer = GANTrainer(cfg, data_dir, out_dir, resume=resume, device=device, eval_patches=eval_patches,
                             keep_checkpoints=keep_checkpoints)  # fmt: skip
        stop = cfg.train.total_steps if steps is None else steps
        timing = trainer.run(stop, eval_every=eval_every, checkpoint_every=checkpoint_every, sample_every=sample_every,
                             log_every=log_every, progress=progress,
                             budget_s=None if budget_minutes is None else 60.0 * budget_minutes)  # fmt: skip
        sec = timing["seconds"]
        weights = None
        if trainer.rank == 0:
            weights = trainer.export({"train_time_s": round(timing["train_time_s"], 1),
                                      "seconds_per_step": float(np.median(sec)) if sec else None})  # fmt: skip
        return {
            "out_dir": Path(out_dir),
            "weights_dir": weights,
            "step": trainer.step,
            "metrics": trainer.last_metrics,
            "seconds_per_step": float(np.median(sec)) if sec else None,
            "train_time_s": timing["train_time_s"],
            "perceptual_source": trainer.perceptual_source,
        }
    finally:
        if trainer is not None:
            trainer.close()
        if created:
            torch.distributed.destroy_process_group()
        torch.set_num_threads(before)

