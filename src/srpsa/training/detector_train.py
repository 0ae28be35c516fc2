"""Train the SR-PSA detector (paper 5.2.3): data cache, loop, validation, checkpoints, export.

``train_detector(cfg, run_dir, synth=... | data=...)`` reads top to bottom:

1. build (or reuse) the npz cache of training and validation images in ``run_dir/cache``;
2. build the model and the Adam optimiser (paper: lr 1e-4, weight decay 1e-6, batch 4), or restore
   both from ``run_dir/checkpoint`` with ``resume=True``;
3. per epoch: random rescaled crops -> eq. 4-5 loss -> step; a checkpoint every
   ``train.checkpoint_every`` steps and at each epoch end; validation (F1 and radius error) every
   ``train.val_every`` epochs; the best network so far (:func:`selection_score`) is kept in ``run_dir/best``;
4. finalise: on the validation images, tune ``p_thresh``/``nms_thresh`` (max F1), pick the refinement
   edge criterion and calibrate its bias against the known radii, measure with and without refinement,
   and export ``run_dir/weights/detector.safetensors`` + ``detector.json``.

Scoring (F1, radius errors, threshold search, refinement calibration) is in
:mod:`srpsa.training.detector_eval`. Validation runs the full multi-scale inference with the scales chosen from the ground-truth diameter
range (2nd-98th percentile), so it measures the network and the merge, not the size estimator.
Thresholds and the refinement bias are chosen on the same validation images that are reported;
independent test numbers come from the benchmarks (held-out simulator presets, real images).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from srpsa.errors import ConfigError, InputError
from srpsa.inference.detect import Detector
from srpsa.inference.weights import weights_hash
from srpsa.io.atomic import atomic_write_text
from srpsa.io.provenance import json_safe
from srpsa.losses.detection import detection_loss
from srpsa.models.detector import SRPSADetector
from srpsa.models.detector_config import DetectorConfig, config_from_dict, config_to_dict
from srpsa.models.detector_release import load_weights, save_weights
from srpsa.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from srpsa.training.detector_data import CropDataset, EpochSampler, build_cache, folder_pairs, folder_source, synth_source, worker_init
# The scoring half lives in detector_eval.py; its names stay importable from here (scripts use them).
from srpsa.training.detector_eval import (  # noqa: F401
    EDGE_CHOICES, NMS_GRID, P_GRID, ValImage, calibrate_refinement, collect_candidates, evaluate, gt_diameter_range, load_val,
    score_detections, selection_score, tune_thresholds)

log = logging.getLogger(__name__)

# Seeds of validation images are offset so they never coincide with training images.
VAL_SEED_OFFSET = 1_000_000


@dataclass
class TrainResult:
    """What :func:`train_detector` produced."""

    run_dir: Path
    weights_dir: Path
    steps: int
    metrics: dict[str, Any]


# -- data ---------------------------------------------------------------------------------------------


def prepare_data(
    cfg: DetectorConfig, cache_dir: Path, *, synth: str | None, data: str | Path | None, seed: int, workers: int = 1
) -> tuple[list[Path], list[Path], dict[str, Any]]:
    """Cache training and validation images; returns (train files, val files, provenance)."""
    if (synth is None) == (data is None):
        raise InputError("give exactly one training source: --synth PRESET or --data FOLDER")
    d = cfg.data
    if synth is not None:
        base = seed * 10_000
        train_seeds = list(range(base, base + d.n_train_images))
        val_seeds = list(range(VAL_SEED_OFFSET + base, VAL_SEED_OFFSET + base + d.n_val_images))
        spec = {"source": "synth", "preset": synth, "domain": cfg.domain}
        train = build_cache(synth_source(synth, cfg.domain, train_seeds, workers), cache_dir, "train", {**spec, "seeds": train_seeds})
        val = build_cache(synth_source(synth, cfg.domain, val_seeds, workers), cache_dir, "val", {**spec, "seeds": val_seeds})
        prov = {**spec, "train_seeds": [train_seeds[0], train_seeds[-1] + 1], "val_seeds": [val_seeds[0], val_seeds[-1] + 1]}
        return train, val, prov
    pairs = folder_pairs(data)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_val = max(1, int(round(d.val_fraction * len(pairs)))) if len(pairs) > 1 else 0
    val_pairs = [pairs[i] for i in order[:n_val]]
    train_pairs = [pairs[i] for i in order[n_val:]]
    if not val_pairs:
        log.warning("only one annotated image: validating on the training image")
        val_pairs = train_pairs
    names = {"train": [str(p[0]) for p in train_pairs], "val": [str(p[0]) for p in val_pairs]}
    train = build_cache(folder_source(train_pairs), cache_dir, "train", {"source": "folder", "images": names["train"]})
    val = build_cache(folder_source(val_pairs), cache_dir, "val", {"source": "folder", "images": names["val"]})
    prov = {"source": "folder", "folder": str(data), "train_images": [p[0].name for p in train_pairs], "val_images": [p[0].name for p in val_pairs]}
    return train, val, prov


# -- training -----------------------------------------------------------------------------------------


def _resolve_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device available (this torch build or machine has none)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"--device must be cpu or cuda, got {device!r}")
    return torch.device(device)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False)


def _validate(model: SRPSADetector, cfg: DetectorConfig, val: list[ValImage], device: torch.device) -> tuple[dict[str, float], dict[str, Any]]:
    model.eval()
    det = Detector(model, cfg, device=str(device))
    cands = collect_candidates(det, val)
    thresholds, _ = tune_thresholds(det, val, cands)
    det.p_thresh, det.nms_thresh = thresholds["p_thresh"], thresholds["nms_thresh"]
    metrics = evaluate(det, val, cands)
    model.train()
    return thresholds, metrics


def train_detector(
    cfg: DetectorConfig,
    run_dir: str | Path,
    *,
    synth: str | None = None,
    data: str | Path | None = None,
    epochs: int | None = None,
    resume: bool = False,
    device: str | None = None,
    seed: int | None = None,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a detector and export its weights to ``run_dir/weights``.

    Parameters
    ----------
    cfg : DetectorConfig
        Resolved configuration (``load_config``). ``epochs``, ``device``, ``seed``, ``num_workers``
        override its ``train`` section.
    run_dir : path
        Output folder: ``config.json``, ``history.json``, ``cache/``, ``checkpoint/``, ``best/``, ``weights/``.
    synth : str, optional
        Simulator preset name (``srpsa.synth.preset``); the domain is ``cfg.domain``.
    data : path, optional
        Folder of the user's annotated images (instead of ``synth``).
    resume : bool
        Continue from ``run_dir/checkpoint`` (model, optimiser, RNG, step).
    cache_dir : path, optional
        Where the npz cache lives (default ``run_dir/cache``); share it between runs of one data set.
    progress : bool
        Show a progress bar with the losses.
    init_from : path, optional
        A weights folder (``detector.safetensors`` + ``detector.json``) to start from instead of a random
        initialisation; its network settings must equal ``cfg.model``.

    Returns
    -------
    TrainResult
    """
    import cv2

    # OpenCV's thread pool does not survive fork (DataLoader workers): keep it single-threaded in this
    # process while training, so no pool exists when workers are forked.
    prev_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _train(cfg, run_dir, synth=synth, data=data, epochs=epochs, resume=resume, device=device, seed=seed,
                      num_workers=num_workers, cache_dir=cache_dir, progress=progress, init_from=init_from)
    finally:
        cv2.setNumThreads(prev_threads)


def _train(
    cfg: DetectorConfig,
    run_dir: str | Path,
    *,
    synth: str | None,
    data: str | Path | None,
    epochs: int | None,
    resume: bool,
    device: str | None,
    seed: int | None,
    num_workers: int | None,
    cache_dir: str | Path | None,
    progress: bool,
    init_from: str | Path | None = None,
) -> TrainResult:
    tc = cfg.train
    overrides = {k: v for k, v in (("epochs", epochs), ("device", device), ("seed", seed), ("num_workers", num_workers)) if v is not None}
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(tc, **overrides)).validate()
    tc = cfg.train
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoint"
    dev = _resolve_device(tc.device)

    if resume:
        if not has_checkpoint(ckpt_dir):
            raise InputError(f"--resume: no checkpoint in {ckpt_dir}")
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        saved_cfg = config_from_dict(saved["config"])
        if saved_cfg.model != cfg.model or saved_cfg.data != cfg.data or saved_cfg.domain != cfg.domain:
            raise ConfigError(f"--resume: the model/data/domain settings differ from the run in {run_dir}; resume with its config")
        synth, data = saved.get("synth"), saved.get("data")
    elif has_checkpoint(ckpt_dir):
        raise InputError(f"{run_dir} already holds a training run; use --resume or another --out")
    atomic_write_text(run_dir / "config.json", json.dumps({"config": config_to_dict(cfg), "synth": synth, "data": str(data) if data else None}, indent=2) + "\n")

    torch.manual_seed(tc.seed)
    np.random.seed(tc.seed % (2**32))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels
    cache = Path(cache_dir) if cache_dir else run_dir / "cache"
    train_files, val_files, provenance = prepare_data(cfg, cache, synth=synth, data=data, seed=tc.seed, workers=max(tc.num_workers, 1))
    dataset = CropDataset(train_files, cfg, seed=tc.seed)
    val = load_val(val_files)

    model = SRPSADetector(cfg).to(dev)
    if init_from is not None and not resume:
        init_model, init_cfg, _ = load_weights(init_from)
        if init_cfg.model != cfg.model:
            raise ConfigError(f"--init {init_from}: its network settings differ from the config's [model] section")
        model.load_state_dict(init_model.state_dict())
        provenance["init_from"] = {"path": str(init_from), "sha256": weights_hash(Path(init_from))}
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = len(dataset) // tc.batch_size
    if steps_per_epoch < 1:
        raise ConfigError(f"data.samples_per_epoch ({len(dataset)}) must be at least train.batch_size ({tc.batch_size})")
    state: dict[str, Any] = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_score": -1e9, "history": []}
    if resume:
        state = load_checkpoint(ckpt_dir, model, opt)
        log.info("resumed from step %d (epoch %d, batch %d)", state["step"], state["epoch"], state["batch_in_epoch"])

    def checkpoint() -> None:
        save_checkpoint(ckpt_dir, model, opt, {**state, "config": config_to_dict(cfg)})

    # One DataLoader for the whole run, its workers forked now and kept (persistent): forking again after
    # validation has started OpenCV's or torch's thread pools can deadlock the new workers.
    sampler = EpochSampler(steps_per_epoch * tc.batch_size)
    loader = DataLoader(dataset, batch_size=tc.batch_size, sampler=sampler, num_workers=tc.num_workers, drop_last=True,
                        pin_memory=dev.type == "cuda", persistent_workers=tc.num_workers > 0, worker_init_fn=worker_init)
    t_start = time.time()
    model.train()
    while state["epoch"] < tc.epochs:
        epoch = state["epoch"]
        sampler.set_epoch(epoch, start=state["batch_in_epoch"] * tc.batch_size)
        run = {"loss": 0.0, "x": 0.0, "y": 0.0, "r": 0.0, "p": 0.0}
        n = 0
        if state["batch_in_epoch"] and state.get("epoch_run"):  # resumed mid-epoch: the sums so far
            saved = dict(state["epoch_run"])
            n = int(saved.pop("n"))
            run.update({k: float(v) for k, v in saved.items()})
        bar = _progress(loader, len(sampler) // tc.batch_size, f"epoch {epoch + 1}/{tc.epochs}", progress)
        for x, t in bar:
            x = x.to(dev, non_blocking=True)
            t = t.to(dev, non_blocking=True)
            loss, parts = detection_loss(model(x), t, cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] += 1
            state["batch_in_epoch"] += 1
            n += 1
            run["loss"] += float(loss.detach())
            for k, v in parts.items():
                run[k] += v
            if progress and hasattr(bar, "set_postfix"):
                bar.set_postfix({k: f"{v / n:.4f}" for k, v in run.items()})
            if tc.checkpoint_every and state["step"] % tc.checkpoint_every == 0:
                state["epoch_run"] = {"n": n, **run}  # so a resumed epoch's mean loss covers all its batches
                checkpoint()
        state["epoch"] += 1
        state["batch_in_epoch"] = 0
        state["epoch_run"] = None
        entry: dict[str, Any] = {"epoch": state["epoch"], "step": state["step"], "time_s": round(time.time() - t_start, 1),
                                 **{f"train_{k}": v / max(n, 1) for k, v in run.items()}}
        if state["epoch"] % tc.val_every == 0 or state["epoch"] == tc.epochs:
            t_val = time.time()
            thresholds, metrics = _validate(model, cfg, val, dev)
            entry.update({"thresholds": thresholds, "val": metrics, "val_time_s": round(time.time() - t_val, 1)})
            score = selection_score(metrics)
            entry["score"] = score
            log.info("epoch %d: loss %.4f  val F1 %.3f  radius err raw %.3f refined %.3f", state["epoch"], entry["train_loss"],
                     metrics["raw"]["f1"], metrics["raw"]["radius_err"], metrics["refined"]["radius_err"])
            if score > state["best_score"]:
                state["best_score"] = score
                save_weights(run_dir / "best", model, cfg, thresholds=thresholds, metrics=metrics)
        state["history"].append(entry)
        atomic_write_text(run_dir / "history.json", json.dumps(json_safe(state["history"]), indent=2, allow_nan=False) + "\n")
        checkpoint()

    provenance.update({"seed": tc.seed, "epochs": tc.epochs, "steps": state["step"], "device": str(dev), "train_time_s": round(time.time() - t_start, 1)})
    metrics = finalize(run_dir / "best", run_dir / "weights", val, provenance=provenance, device=str(dev))
    return TrainResult(run_dir=run_dir, weights_dir=run_dir / "weights", steps=state["step"], metrics=metrics)


def finalize(best_dir: Path, out_dir: Path, val: list[ValImage], *, provenance: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Tune thresholds and refinement on ``val`` for the weights in ``best_dir``; export to ``out_dir``."""
    model, cfg, _ = load_weights(best_dir)
    det = Detector(model, cfg, device=device)
    cands = collect_candidates(det, val)
    thresholds, _ = tune_thresholds(det, val, cands)
    det.p_thresh, det.nms_thresh = thresholds["p_thresh"], thresholds["nms_thresh"]
    uncal = evaluate(det, val, cands)
    refine_choice, refine_report = calibrate_refinement(det, val, cands)
    if refine_choice:
        cfg = dataclasses.replace(cfg, refine=dataclasses.replace(cfg.refine, **refine_choice))
        det.cfg = cfg
    final = evaluate(det, val, cands)
    metrics = {"val_images": len(val), "val_particles": int(sum(len(v.circles) for v in val)), "raw": final["raw"],
               "refined_default": uncal["refined"], "refined": final["refined"], "refine_calibration": refine_report}
    save_weights(out_dir, model.cpu(), cfg, thresholds=thresholds, metrics=metrics, provenance=provenance)
    log.info("exported %s: F1 %.3f, radius error %.3f (network) -> %.3f (refined, %s)", out_dir, final["raw"]["f1"],
             final["raw"]["radius_err"], final["refined"]["radius_err"], cfg.refine.edge)
    return metrics
