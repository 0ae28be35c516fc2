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

Distributed (``torchrun``): with ``RANK``/``WORLD_SIZE`` set the process group is initialised (gloo on
the CPU, nccl on CUDA, one GPU per ``LOCAL_RANK``), G and D are wrapped in ``DistributedDataParallel``
without buffer broadcasts in forward (``forward_sync_buffers=False``, ``broadcast_buffers=False`` before
torch 2.13): spectral norm updates its ``u``/``v`` buffers in every training forward and they stay equal
on all ranks because the weights do; batch-norm running statistics stay rank-local (rank 0's are saved).
Each rank trains on its shard of a global batch of ``world_size * batch_size``
(``train.batch_size`` is per process). Only rank 0 writes logs, samples, checkpoints and weights;
the logged losses are rank 0's. In the G step the discriminator is called through the unwrapped module:
D's gradients are not wanted there, and a DDP forward would wait for them.

Outputs in ``OUT``: ``config.json`` (config, data folder, perceptual-loss source, world size),
``log.jsonl`` (one ``kind: "train"`` line per ``log_every`` steps: step, lr_g, lr_d, loss terms,
seconds; one ``kind: "eval"`` line per evaluation), ``samples/step_XXXXXX.png``, ``checkpoint/`` and
``weights/``. ``step`` in the log is the number of optimisation steps done; the learning rates on a line
are those of that last step (``cfg.learning_rates(step - 1)``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from srpsa import __version__
from srpsa.config import dataclass_from_dict
from srpsa.errors import ConfigError, InputError
from srpsa.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from srpsa.io.provenance import json_safe
from srpsa.losses import (
    ESRGANGeneratorLoss,
    GANLoss,
    PerceptualLoss,
    Pix2PixGeneratorLoss,
    RelativisticAverageLoss,
    pix2pix_discriminator_loss,
)
from srpsa.models.pix2pix import from_generator_range, to_generator_range
from srpsa.models.release import save_generator_release
from srpsa.training.gan_config import GANConfig, SuperResConfig, TranslateConfig, build_gan, config_to_dict
from srpsa.training.gan_data import PatchPairs, dist_rank_world

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

CONFIG_FILE = "config.json"
BUDGET_CALIBRATION_STEPS = 100  # steps timed before a --budget-minutes run fixes its length
LOG_FILE = "log.jsonl"
SAMPLE_ROWS = 4  # rows of a sample grid


# -- config of a run ----------------------------------------------------------------------------------


def gan_config_from_dict(data: dict[str, Any]) -> GANConfig:
    """Rebuild a config from :func:`config_to_dict` output (e.g. a run's ``config.json``)."""
    classes: dict[str, type] = {"translate": TranslateConfig, "superres": SuperResConfig}
    task = data.get("task") if isinstance(data, dict) else None
    if task not in classes:
        raise ConfigError(f"saved GAN config: 'task' must be translate or superres, got {task!r}")
    return dataclass_from_dict(classes[task], data, "")


def load_run_config(out_dir: str | Path) -> tuple[GANConfig, str]:
    """``(config, data folder)`` of an existing run (for ``--resume`` without ``--config``/``--data``)."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"--resume: {path} not found; is --out a GAN training run?")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--resume: cannot read {path}: {exc}") from None
    return gan_config_from_dict(saved["config"]), saved["data"]


# -- checkpoints --------------------------------------------------------------------------------------


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_gan_checkpoint(
    folder: str | Path,
    step: int,
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    state: dict[str, Any],
    *,
    keep: int = 2,
) -> Path:
    """Write ``folder/step_<step>/`` and point ``folder/latest.json`` at it; keep the newest ``keep``.

    The step folder holds ``generator.safetensors``, ``discriminator.safetensors``, ``optimizer.pt``
    (both Adam states, torch RNG states and the step; read back with ``torch.load(weights_only=True)``)
    and ``state.json`` (JSON-serialisable ``state``). Every file is written atomically and
    ``latest.json`` last, so a crash mid-save leaves the previous checkpoint in charge.
    """
    folder = Path(folder)
    sub = folder / f"step_{step:09d}"
    sub.mkdir(parents=True, exist_ok=True)
    for name, model in (("generator", generator), ("discriminator", discriminator)):
        with atomic_path(sub / f"{name}.safetensors") as tmp:
            save_file(_cpu_state(model), str(tmp))
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    with atomic_path(sub / "optimizer.pt") as tmp:
        torch.save({"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": rng, "step": step}, tmp)
    atomic_write_text(sub / "state.json", json.dumps({**state, "step": step}, indent=2, sort_keys=True) + "\n")
    atomic_write_text(folder / "latest.json", json.dumps({"step": step, "dir": sub.name}) + "\n")
    for old in sorted(folder.glob("step_*"))[:-keep] if keep > 0 else []:
        if old.name != sub.name:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
    return sub


def load_gan_checkpoint(
    folder: str | Path,
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
) -> dict[str, Any]:
    """Restore the checkpoint ``folder/latest.json`` names into the given objects; returns its state."""
    folder = Path(folder)
    latest = folder / "latest.json"
    if not latest.is_file():
        raise InputError(f"--resume: no checkpoint in {folder} (latest.json missing)")
    try:
        sub = folder / json.loads(latest.read_text(encoding="utf-8"))["dir"]
        state = json.loads((sub / "state.json").read_text(encoding="utf-8"))
        device = next(generator.parameters()).device
        generator.load_state_dict(load_file(str(sub / "generator.safetensors"), device=str(device)))
        discriminator.load_state_dict(load_file(str(sub / "discriminator.safetensors"), device=str(device)))
        blob = torch.load(sub / "optimizer.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load's message spans many lines of (unsafe) advice: name the type only
        raise InputError(f"--resume: checkpoint in {folder} is unreadable or does not fit the config ({type(exc).__name__})") from None
    if int(blob.get("step", -1)) != int(state["step"]):
        raise InputError(f"checkpoint {sub} is inconsistent: optimizer.pt step {blob.get('step')} != state.json step {state['step']}")
    opt_g.load_state_dict(blob["opt_g"])
    opt_d.load_state_dict(blob["opt_d"])
    torch.set_rng_state(blob["rng"]["torch"])
    if "cuda" in blob["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["rng"]["cuda"])
    return state


# -- helpers ------------------------------------------------------------------------------------------


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of torch's global RNG (dropout) for one step: a function of (seed, step, rank) only."""
    return int(np.random.SeedSequence([seed, 2, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _resolve_device(device: str, local_rank: int) -> torch.device:
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device available (this torch build or machine has none)")
        dev = torch.device(f"cuda:{local_rank}") if device == "cuda" else torch.device(device)
        torch.cuda.set_device(dev)
        return dev
    raise InputError(f"--device must be cpu or cuda, got {device!r}")


def _init_distributed(device: str) -> bool:
    """Join the process group when launched by torchrun; True if this call created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return False
    if torch.distributed.is_initialized():
        return False
    torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return True


def _psnr_ssim(output: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of two ``[0, 1]`` images (data range 1).

    PSNR is ``10 log10(1 / MSE)``, the formula of ``skimage.metrics.peak_signal_noise_ratio``, written out
    because importing that function pulls in scipy.stats (seconds per process); SSIM is skimage's
    ``structural_similarity`` (7x7 uniform window, the defaults).
    """
    from skimage.metrics import structural_similarity

    mse = float(np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2))
    psnr = float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))
    ssim = float(structural_similarity(target, output, data_range=1.0))
    return psnr, ssim


def sample_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, gap: int = 2) -> np.ndarray:
    """8-bit grid, one row per pair: input (nearest-upsampled to the target size) | output | target."""
    size = targets.shape[-1]
    up = F.interpolate(inputs, size=targets.shape[-2:], mode="nearest") if inputs.shape[-1] != size else inputs
    rows = []
    for i in range(targets.shape[0]):
        tiles = [t[i, 0].clamp(0, 1).cpu().numpy() for t in (up, outputs, targets)]
        sep = np.ones((size, gap), np.float32)
        rows.append(np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], axis=1))
        rows.append(np.ones((gap, rows[-1].shape[1]), np.float32))
    grid = np.concatenate(rows[:-1], axis=0)
    return np.round(grid * 255.0).astype(np.uint8)


class _JsonlLog:
    """Append-only ``log.jsonl``; on resume, lines after the checkpoint's step are dropped first."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is None:
            atomic_write_text(path, "")
        else:
            atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in self.read(path) if e.get("step", 0) <= resume_step))
        self.fh = open(path, "a", encoding="utf-8")

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        """Entries of a log file; a torn last line (crash mid-write) is skipped."""
        out = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def write(self, entry: dict[str, Any]) -> None:
        self.fh.write(json.dumps(entry) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


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
        self.device = _resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
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
        self.perceptual_source = ""
        self._last_outputs: torch.Tensor | None = None  # G's outputs on the eval crops, reused for samples
        self._build_losses()
        if self.rank == 0:
            self._write_run_config()
        self.log = _JsonlLog(self.out_dir / LOG_FILE, self.step if resume else None) if self.rank == 0 else None
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
        if self.world <= 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # No buffer broadcast in forward: SN's u/v agree on all ranks anyway (same weights, same power
        # iteration), and a broadcast between D's forwards would touch buffers autograd may still need.
        # torch >= 2.13 names the switch forward_sync_buffers and deprecates broadcast_buffers.
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
            return DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)
        return DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)

    def _build_losses(self) -> None:
        tr = self.cfg.train
        if isinstance(self.cfg, TranslateConfig):
            self.gan_loss = GANLoss(self.cfg.train.gan_mode, d_real_label=tr.d_real_label)
            self.g_loss = Pix2PixGeneratorLoss(self.gan_loss, pixel=self.cfg.train.pixel_loss, lambda_pixel=self.cfg.train.lambda_pixel)
            return
        st = self.cfg.train
        perceptual = PerceptualLoss.build(weights=st.perceptual_weights or None, layer=st.perceptual_layer, seed=st.perceptual_seed)
        perceptual = perceptual.to(self.device).eval()
        _set_requires_grad(perceptual, False)
        self.perceptual_source = perceptual.source
        self.ragan = RelativisticAverageLoss(d_real_label=st.d_real_label)
        self.g_loss = ESRGANGeneratorLoss(perceptual, lambda_gan=st.lambda_gan, eta_l1=st.eta_l1, ragan=self.ragan)

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
        _set_lr(self.opt_g, lr_g)
        _set_lr(self.opt_d, lr_d)
        torch.manual_seed(_step_seed(self.cfg.train.seed, step, self.rank))
        inp, tgt = self.train_data.batch(step, self.cfg.train.batch_size, self.cfg.train.seed, self.rank, self.world)
        inp, tgt = inp.to(self.device, non_blocking=True), tgt.to(self.device, non_blocking=True)
        terms = self._translate_step(inp, tgt) if self.task == "translate" else self._superres_step(inp, tgt, step)
        self.step += 1
        return {"step": self.step, "lr_g": lr_g, "lr_d": lr_d, **terms, "seconds": time.perf_counter() - t0}

    def _d_update(self, loss: torch.Tensor) -> None:
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()

    def _g_update(self, loss: torch.Tensor) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()

    def _translate_step(self, om: torch.Tensor, sem: torch.Tensor) -> dict[str, float]:
        act = self.cfg.generator.output_activation
        x, y = to_generator_range(om, act), to_generator_range(sem, act)
        fake = self.G(x)
        _set_requires_grad(self.d_net, True)
        loss_d = pix2pix_discriminator_loss(self.gan_loss, self.D(x, y), self.D(x, fake.detach()))
        self._d_update(loss_d)
        _set_requires_grad(self.d_net, False)
        loss_g, parts = self.g_loss(self.d_net(x, fake), fake, y)
        self._g_update(loss_g)
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), **{k: float(v) for k, v in parts.items()}}

    def _superres_step(self, lr_img: torch.Tensor, hr: torch.Tensor, step: int) -> dict[str, float]:
        assert isinstance(self.cfg, SuperResConfig)
        warm = self.cfg.train.psnr_warmup_steps
        fake = self.G(lr_img)
        if step < warm:  # PSNR-oriented warm-up: L1 only, D untouched
            l1 = F.l1_loss(fake, hr)
            self._g_update(l1)
            return {"loss_g": float(l1.detach()), "l1": float(l1.detach())}
        if step == warm and warm > 0:
            self.opt_g.state.clear()  # fresh Adam moments for the GAN stage (module docstring)
        _set_requires_grad(self.d_net, True)
        loss_d = self.ragan(self.D(hr), self.D(fake.detach()), is_disc=True)
        self._d_update(loss_d)
        _set_requires_grad(self.d_net, False)
        with torch.no_grad():
            real_logits = self.d_net(hr)
        loss_g, parts = self.g_loss(real_logits, self.d_net(fake), fake, hr)
        self._g_update(loss_g)
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), **{k: float(v) for k, v in parts.items()}}

    # -- evaluation, samples, checkpoints, export ----------------------------------------------------

    @torch.no_grad()
    def generate(self, inputs: torch.Tensor, batch: int = 4) -> torch.Tensor:
        """G's output in ``[0, 1]`` for ``[0, 1]`` inputs (eval mode, in chunks), on the CPU."""
        net = self.g_net
        was_training = net.training
        net.eval()
        outs = []
        for chunk in inputs.split(batch):
            chunk = chunk.to(self.device)
            if self.task == "translate":
                act = self.cfg.generator.output_activation
                y = from_generator_range(net(to_generator_range(chunk, act)), act)
            else:
                y = net(chunk)
            outs.append(y.clamp(0.0, 1.0).float().cpu())
        net.train(was_training)
        return torch.cat(outs)

    def evaluate(self) -> dict[str, Any]:
        """Mean PSNR (dB) and SSIM of G on the evaluation crops; superres adds the bicubic baseline."""
        inputs, targets = self.eval_data
        outputs = self.generate(inputs)
        scores = [_psnr_ssim(o[0].numpy(), t[0].numpy()) for o, t in zip(outputs, targets)]
        metrics: dict[str, Any] = {
            "psnr": float(np.mean([s[0] for s in scores])),
            "ssim": float(np.mean([s[1] for s in scores])),
            "n": len(scores),
            "split": self.eval_split,
        }
        if self.task == "superres":
            bicubic = F.interpolate(inputs, size=targets.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
            base = [_psnr_ssim(b[0].numpy(), t[0].numpy()) for b, t in zip(bicubic, targets)]
            metrics["psnr_bicubic"] = float(np.mean([s[0] for s in base]))
            metrics["ssim_bicubic"] = float(np.mean([s[1] for s in base]))
        self._last_outputs = outputs
        return metrics

    def write_samples(self, outputs: torch.Tensor | None = None) -> Path:
        """``OUT/samples/step_XXXXXX.png``: the first evaluation crops, input | output | target."""
        inputs, targets = (t[:SAMPLE_ROWS] for t in self.eval_data)
        outputs = self.generate(inputs) if outputs is None else outputs[:SAMPLE_ROWS]
        import cv2

        ok, buf = cv2.imencode(".png", sample_grid(inputs, outputs, targets))
        if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint8 array
            raise InputError("cannot encode the sample grid")
        path = self.out_dir / "samples" / f"step_{self.step:06d}.png"
        atomic_write_bytes(path, buf.tobytes())
        return path

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

        ``budget_s`` (seconds of wall clock for this call): after :data:`BUDGET_CALIBRATION_STEPS` steps
        the run measures its speed and shrinks ``stop`` and ``train.total_steps`` to the steps that fit,
        so the whole learning-rate schedule (TTUR swap, decay) fits the budget; a hard stop at the
        deadline still ends the run cleanly (final evaluation, checkpoint, weights).
        """
        sample_every = eval_every if sample_every is None else sample_every
        main = self.rank == 0
        bar = _progress_bar(self.step, stop, f"{self.task} {self.cfg.name}", progress and main)
        seconds: list[float] = []
        t_start = time.time()
        deadline = None if budget_s is None else time.monotonic() + budget_s
        with _logs_above_bar(bar is not None):
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
        """The new ``stop`` under a wall-clock budget (see :meth:`run`); identical on every rank.

        Every rank takes the same branch at every step (the step count is shared), so the collectives in
        ``_agree_min`` always pair up; whether the deadline has passed is agreed on, not decided per rank.
        """
        now = time.monotonic()
        if len(seconds) == BUDGET_CALIBRATION_STEPS:
            # Skip the first steps (cuDNN autotuning, first image decodes); evaluations and checkpoints
            # cost a few steps each, so keep a 10 % margin for them.
            per_step = float(np.median(seconds[BUDGET_CALIBRATION_STEPS // 3 :]))
            fit = self.step + int(0.9 * max(deadline - now, 0.0) / per_step)
            fit = _agree_min(fit, self.device)
            if fit < stop and self._can_rescale(fit):
                log.info("budget: %.3f s/step, training %d steps instead of %d", per_step, fit, stop)
                stop = fit
                self._set_total_steps(stop)
                if bar is not None:
                    bar.total = stop
                    bar.refresh()
            elif fit < stop:
                log.warning("budget: %d steps fit, but the schedule cannot shrink below step %d; "
                            "stopping at the deadline instead", fit, self.step)  # fmt: skip
        elif self.step < stop:
            # hard stop once any rank is past the deadline; the schedule keeps its planned shape
            agreed = _agree_min(self.step if now > deadline else stop, self.device)
            if agreed < stop:
                stop = agreed
                log.warning("budget: wall-clock deadline reached at step %d", stop)
        return stop

    def _with_total_steps(self, total: int) -> GANConfig:
        import dataclasses

        return dataclasses.replace(self.cfg, train=dataclasses.replace(self.cfg.train, total_steps=total))

    def _can_rescale(self, total: int) -> bool:
        """True when a run planned with ``total`` steps would have used the very learning rates of the
        steps already done (they all lie before the TTUR swap and, for ESRGAN, the rescaled schedule
        still holds its PSNR warm-up), so the shortened run is one that could have been planned so."""
        new = self._with_total_steps(total)
        if isinstance(new, SuperResConfig) and total <= new.train.psnr_warmup_steps:
            return False
        return all(new.learning_rates(s) == self.cfg.learning_rates(s) for s in range(self.step + 1))

    def _set_total_steps(self, total: int) -> None:
        """Rescale the run's schedule to ``total`` steps (see :meth:`_can_rescale`)."""
        self.cfg = self._with_total_steps(total)
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


def _agree_min(value: int, device: torch.device) -> int:
    """``value`` made equal on every rank (the minimum), so all ranks stop at the same step."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())


def _logs_above_bar(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Route log messages (evaluations) through tqdm so they print above the bar instead of through it."""
    if not enabled:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _progress_bar(start: int, stop: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=stop, initial=start, desc=desc, dynamic_ncols=True, unit="step")


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
    created = _init_distributed(device)
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

