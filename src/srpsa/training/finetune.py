"""``srpsa finetune``: adapt a shipped detector to a user's microscope from a few annotated images.

Which detector (docs/decisions.md, "Fine-tuning adapts the detector of the image's own domain"): the
labels are circles in the user's own image pixels, so the detector that reads those images directly is
adapted: ``detector-om`` for OM images (measured with ``--pipeline detect-only``, which a fine-tuned
weights folder selects by default) and ``detector-sem`` for SEM images (``--modality sem``). Adapting the
full pipeline's SEM detector instead would mean translating every training image through the GAN first
(minutes per image on a CPU) and learning on the GAN's rendering of a microscope it never saw.

The run, top to bottom:

1. read the annotated images (every format ``srpsa train detect --data`` reads, reviewed analysis
   folders included); hold out a quarter of them (at least one) to choose the checkpoint;
2. score the starting detector on the held-out images as ``srpsa analyze`` would run it (automatic
   scales, refinement): F1 and the median radius error of matched circles;
3. train from its weights on random rescaled crops of the other images (the training loss and crops of
   :mod:`srpsa.training.detector_data`) until the wall-clock budget, checked every step, is spent;
   score the held-out images every so often and keep the best network;
4. tune the score threshold and the refinement on the training images; keep each only if it helps on
   the held-out ones. A result that does not beat the start on the held-out images is discarded and
   the original detector is written, with a warning;
5. write the weights folder (:mod:`srpsa.training.finetune_output`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpsa.errors import InputError
from srpsa.inference import weights as W
from srpsa.inference.detect import Detector
from srpsa.inference.scale import choose_scales
from srpsa.losses.detection import detection_loss
from srpsa.models.detector_config import DetectorConfig
from srpsa.models.detector_release import load_weights, save_weights
from srpsa.training.detector_data import CropDataset, Sample, build_cache, folder_pairs, folder_source
from srpsa.training.detector_eval import ValImage, calibrate_refinement, collect_candidates, load_val, score_detections, tune_thresholds
from srpsa.training.finetune_output import check_out, write_weights_folder

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.25
# Adam learning rate: 10x the from-scratch rate (paper 1e-4); measured on render2 `halo`, 60 steps from the
# shipped OM detector: held-out F1 0.969 at 1e-3, 0.938 at 3e-4 (1e-4: 0.80 after 43 steps).
FINETUNE_LR = 1e-3
# The labelled diameter range is widened by this factor on each side for the fixed scales (label_scales).
LABEL_RANGE_FACTOR = 1.5
# Share of the budget the held-out scoring may take: it is scored at most every (its cost / share).
EVAL_SHARE = 0.2
# Held-out scorings spread over a run at least (when they are cheap enough).
MIN_EVALS = 6


@dataclass
class FinetuneResult:
    """What :func:`finetune` did; ``before``/``after`` are held-out scores (score_detections keys)."""

    out: Path
    adapted: str
    kept: str  # "finetuned" or "original"
    steps: int
    seconds: float
    before: dict[str, float]
    after: dict[str, float]
    train_images: list[str]
    holdout_images: list[str]
    pipeline: str | None
    warnings: list[str] = field(default_factory=list)


def selection_key(m: dict[str, float]) -> float:
    """Held-out score used to keep a network: F1 minus half the median radius error (as training)."""
    err = m["radius_err"]
    return float(m["f1"] - 0.5 * (1.0 if math.isnan(err) else err))


def read_samples(folder: Path) -> list[Sample]:
    """The annotated images of ``folder``; one-line errors for anything unusable."""
    try:
        pairs = folder_pairs(folder)
        samples = list(folder_source(pairs))
    except InputError as exc:
        raise InputError(str(exc).replace("--data: ", "FOLDER: ").replace("--data", "FOLDER")) from None
    if len(samples) < 2:
        raise InputError(f"FOLDER {folder}: fine-tuning needs at least 2 annotated images (part of them is held out "
                         f"to choose the checkpoint), found {len(samples)}")
    if sum(len(s.circles) for s in samples) == 0:
        raise InputError(f"FOLDER {folder}: the annotations hold no circles")
    return samples


def split(samples: list[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, held-out): a quarter held out (at least 1), each side with circles."""
    n_hold = max(1, int(round(HOLDOUT_FRACTION * len(samples))))
    order = np.random.default_rng(seed).permutation(len(samples))
    hold = [samples[i] for i in order[:n_hold]]
    train = [samples[i] for i in order[n_hold:]]
    if not any(len(s.circles) for s in train) or not any(len(s.circles) for s in hold):
        raise InputError("FOLDER: circles are needed both in the images trained on and in the held-out ones; "
                         "annotate more images (or change --seed)")
    return train, hold


def score(det: Detector, images: list[ValImage], *, refine: bool = True) -> dict[str, float]:
    """Held-out score of ``det`` run as ``srpsa analyze`` runs it (automatic scales, refinement)."""
    preds = [det.detect(v.image, refine=refine).circles for v in images]
    return score_detections([v.circles for v in images], preds, [v.image.shape for v in images])


def label_scales(train: list[Sample], cfg: DetectorConfig) -> DetectorConfig:
    """``cfg`` with pyramid scales that cover the labelled sizes (2nd-98th percentile of the diameters,
    widened by LABEL_RANGE_FACTOR) pinned: always run besides the automatic ones.

    On a new microscope the size estimate can be fooled (a halo or a dark core read as the particle, and
    the image then upsampled until the true radius is beyond the head's range); the labels say what
    sizes this microscope shows. The estimate's scales stay (other images may hold other sizes), so do
    the adaptive extension and ``--diameter-range``. Kept only when it scores better on the held-out
    images.
    """
    d = 2.0 * np.concatenate([s.circles[:, 2] for s in train if len(s.circles)])
    lo, hi = float(np.percentile(d, 2)) / LABEL_RANGE_FACTOR, float(np.percentile(d, 98)) * LABEL_RANGE_FACTOR
    scales = tuple(float(v) for v in choose_scales(max(lo, 1.0), max(hi, 2.0), cfg.inference))
    return dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, pinned_scales=scales))


def _keep_better(det: Detector, hold: list[ValImage], current: dict[str, float], new_cfg: DetectorConfig) -> dict[str, float]:
    """Switch ``det`` to ``new_cfg`` if that scores better on the held-out images; returns the kept score."""
    old_cfg, det.cfg = det.cfg, new_cfg
    m = score(det, hold)
    if selection_key(m) > selection_key(current):
        return m
    det.cfg = old_cfg
    return current


def _pick_thresholds_and_refinement(det: Detector, train: list[ValImage], hold: list[ValImage], current: dict[str, float],
                                    auto_cfg: DetectorConfig) -> dict[str, float]:
    """Tune the score threshold and the refinement on the training images; keep a change only when the
    held-out score improves, likewise the automatic scales (``auto_cfg``) instead of the labels' ones.
    Returns the held-out score of what is kept (``det`` is changed in place)."""
    current = _keep_better(det, hold, current, dataclasses.replace(det.cfg, inference=auto_cfg.inference))
    cands = collect_candidates(det, train)  # the network's candidates: shared by both tunings below
    base_thr = det.thresholds
    thr, _ = tune_thresholds(det, train, cands)
    det.p_thresh, det.nms_thresh = thr["p_thresh"], thr["nms_thresh"]
    m = score(det, hold)
    if selection_key(m) > selection_key(current):
        current = m
    else:
        det.p_thresh, det.nms_thresh = base_thr["p_thresh"], base_thr["nms_thresh"]
    choice, _ = calibrate_refinement(det, train, cands)
    if choice:
        current = _keep_better(det, hold, current, dataclasses.replace(det.cfg, refine=dataclasses.replace(det.cfg.refine, **choice)))
    return current


def finetune(
    folder: str | Path,
    out: str | Path,
    *,
    minutes: float = 10.0,
    from_weights: str | Path | None = None,
    modality: str = "om",
    seed: int = 0,
    lr: float | None = None,
    max_steps: int | None = None,
    eval_every: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FinetuneResult:
    """Fine-tune the detector of ``modality`` on ``folder``'s annotated images; write weights to ``out``.

    ``minutes`` bounds the wall-clock time of the whole run (training, held-out scoring, tuning);
    ``max_steps`` and ``eval_every`` (steps) make a run deterministic (tests). ``progress`` is called
    after every step with ``step``, ``elapsed_s``, ``budget_s``, ``loss`` and the best held-out ``f1``.
    """
    t0 = time.monotonic()
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise InputError(f"--minutes must be a positive number of minutes, got {minutes}")
    if modality not in ("om", "sem"):
        raise InputError(f"--modality must be om or sem, got {modality!r}")
    folder, out = Path(folder), Path(out)
    check_out(out)
    adapted = W.DETECTOR_OM if modality == "om" else W.DETECTOR_SEM
    base_root = W.weights_root(from_weights)
    base_dir = W.model_dir(adapted, base_root)
    model, cfg, meta = load_weights(base_dir)
    samples = read_samples(folder)
    train_s, hold_s = split(samples, seed)
    budget_s = 60.0 * minutes
    torch.manual_seed(seed)

    with tempfile.TemporaryDirectory(prefix="srpsa-finetune-") as cache:
        train_files = build_cache(train_s, cache, "train", {"images": [s.name for s in train_s]})
        hold = load_val(build_cache(hold_s, cache, "holdout", {"images": [s.name for s in hold_s]}))
        train_val = load_val(train_files)
        dataset = CropDataset(train_files, cfg, seed=seed)

    det = Detector(model, cfg, meta.get("thresholds"))
    t_eval = time.monotonic()
    before = score(det, hold)
    eval_cost = time.monotonic() - t_eval
    best = (selection_key(before), None, before)
    log.info("held-out before: F1 %.3f, radius error %.3f (%d images)", before["f1"], before["radius_err"], len(hold))

    tc = cfg.train
    lr = lr or FINETUNE_LR
    det.cfg = label_scales(train_s, cfg)  # held-out scoring during training with the labels' scales
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=tc.weight_decay)
    # Held-out scoring: at most EVAL_SHARE of the budget, at least MIN_EVALS times when that allows.
    eval_interval_s = max(eval_cost / EVAL_SHARE, budget_s / (MIN_EVALS + 1) if eval_every is None else 0.0)
    def reserve() -> float:
        """Time kept for the end: a last scoring, 3 for the kept settings, candidates on the training images."""
        return eval_cost * (4.0 + len(train_val) / len(hold)) + 5.0

    step, last_eval, last_eval_step, loss_avg = 0, time.monotonic(), 0, float("nan")
    while max_steps is None or step < max_steps:
        if time.monotonic() - t0 + reserve() >= budget_s:
            break
        xs, ts = zip(*(dataset.sample(step * tc.batch_size + i) for i in range(tc.batch_size)))
        x, t = torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ts))
        loss, _ = detection_loss(model(x), t, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        value = float(loss.detach())
        loss_avg = value if math.isnan(loss_avg) else 0.9 * loss_avg + 0.1 * value
        due = (step % eval_every == 0) if eval_every else (time.monotonic() - last_eval >= eval_interval_s)
        if due or (max_steps is not None and step == max_steps):
            model.eval()
            t_eval = time.monotonic()
            m = score(det, hold)
            model.train()
            last_eval, last_eval_step = time.monotonic(), step
            eval_cost = max(eval_cost, last_eval - t_eval)  # the pinned scales may cost more than the start's
            if selection_key(m) > best[0]:
                best = (selection_key(m), copy.deepcopy(model.state_dict()), m)
            log.info("step %d: loss %.4f, held-out F1 %.3f, radius error %.3f", step, loss_avg, m["f1"], m["radius_err"])
        if progress:
            progress({"step": step, "elapsed_s": time.monotonic() - t0, "budget_s": budget_s, "loss": loss_avg, "f1": best[2]["f1"]})
    if step > last_eval_step:  # the budget ended between two scorings: score the last network too
        model.eval()
        m = score(det, hold)
        if selection_key(m) > best[0]:
            best = (selection_key(m), copy.deepcopy(model.state_dict()), m)
    model.eval()

    warnings: list[str] = []
    if best[1] is None:
        kept, after = "original", before
        warnings.append(f"fine-tuning did not beat the starting {adapted} on the held-out image(s) "
                        f"(F1 {before['f1']:.3f}); the original detector is written unchanged")
    else:
        model.load_state_dict(best[1])
        after = _pick_thresholds_and_refinement(det, train_val, hold, best[2], cfg)
        kept = "finetuned"
    seconds = time.monotonic() - t0
    # An OM fine-tune measures in detect-only; a kept original names no pipeline (analyses stay as shipped).
    pipeline = "detect-only" if modality == "om" and kept == "finetuned" else None
    manifest = {
        "adapted": adapted, "kept": kept, "modality": modality, "pipeline": pipeline,
        "base": {"root": str(base_root), "detector_sha256": W.weights_hash(base_dir)},
        "data": {"folder": str(folder), "train_images": [s.name for s in train_s], "holdout_images": [s.name for s in hold_s],
                 "train_circles": int(sum(len(s.circles) for s in train_s)), "holdout_circles": int(sum(len(s.circles) for s in hold_s))},
        "training": {"steps": step, "seconds": round(seconds, 1), "minutes_budget": minutes, "seed": seed, "lr": lr,
                     "batch_size": tc.batch_size, "max_steps": max_steps},
        "holdout": {"before": before, "after": after}, "warnings": warnings,
    }

    def write_adapted(dest: Path) -> None:
        if kept == "original":
            import shutil

            shutil.copytree(base_dir, dest, ignore=shutil.ignore_patterns(".*", "*.onnx"))
            return
        prov = {"finetune": {k: manifest[k] for k in ("base", "data", "training")}, "base_provenance": meta.get("provenance", {})}
        save_weights(dest, model.cpu(), det.cfg, thresholds=det.thresholds, metrics={"holdout_before": before, "holdout_after": after},
                     provenance=prov)

    write_weights_folder(out, base_root, adapted, write_adapted, manifest)
    return FinetuneResult(out, adapted, kept, step, seconds, before, after, manifest["data"]["train_images"],
                          manifest["data"]["holdout_images"], pipeline, warnings)
