"""Detector training: crops and targets, user folders, checkpoint/resume, export, CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from srpsa.errors import InputError
from srpsa.models.detector import T_POS, T_R, T_X, T_Y
from srpsa.models.detector_config import config_from_dict
from srpsa.training.detector_data import CropDataset, Sample, build_cache, folder_pairs
from srpsa.training.detector_train import train_detector


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _discs(shape, circles, fg=0.85, bg=0.15):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.full(shape, bg, np.float32)
    for x, y, r in circles:
        img[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = fg
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def _scene(seed, shape=(64, 64)):
    rng = np.random.default_rng(seed)
    pts = []
    for _ in range(200):
        r = rng.uniform(4, 7)
        x, y = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        if all(np.hypot(x - a, y - b) > r + c + 1 for a, b, c in pts):
            pts.append((x, y, r))
    circles = np.array(pts)
    return _discs(shape, circles), circles


TINY = {
    "model": {"channels": [4, 4, 8, 8, 8]},
    "data": {"crop": 32, "samples_per_epoch": 8, "val_fraction": 0.34, "noise_std": 0.0},
    "train": {"num_workers": 0, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 1},
    "inference": {"tile": 256, "tile_margin": 16},
}


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    from srpsa.io import write_circles

    folder = tmp_path_factory.mktemp("annotated")
    for i in range(3):
        img, circles = _scene(i)
        cv2.imwrite(str(folder / f"img{i}.png"), np.round(img * 255).astype(np.uint8))
        write_circles(folder / f"img{i}.csv", circles)
    (folder / "notes.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())  # unannotated
    return folder


def test_crops_are_deterministic_and_targets_sit_on_the_discs(tmp_path):
    img, circles = _scene(5, (96, 96))
    files = build_cache([Sample(img, circles, "a")], tmp_path / "cache", "train")
    cfg = config_from_dict({"data": {"crop": 48, "noise_std": 0.0, "contrast_jitter": 0.0, "gamma_jitter": 0.0}})
    ds = CropDataset(files, cfg, seed=3, length=10)
    x1, t1 = ds[7]
    x2, t2 = ds[7]
    assert torch.equal(x1, x2) and torch.equal(t1, t2)
    assert x1.shape == (1, 48, 48) and t1.shape == (6, 12, 12)
    found = 0
    for g in range(40):
        x, t = ds.sample(g)
        ci, cj = np.nonzero(t[T_POS])
        for i, j in zip(ci, cj):
            cx = (j + t[T_X, i, j]) * 4 - 0.5
            cy = (i + t[T_Y, i, j]) * 4 - 0.5
            r = t[T_R, i, j] * cfg.model.max_radius * 4
            # The encoded centre is inside a bright disc of the (possibly flipped/rescaled) crop.
            assert x[int(round(cy)), int(round(cx))] > x.mean()
            assert 4 * cfg.data.radius_band[0] - 1e-6 <= r <= 4 * cfg.data.radius_band[1] + 1e-6
            found += 1
    assert found > 20


def test_cache_refuses_other_data(tmp_path):
    img, circles = _scene(0)
    build_cache([Sample(img, circles)], tmp_path, "train", {"seeds": [0]})
    assert len(build_cache([], tmp_path, "train", {"seeds": [0]})) == 1  # reused without regenerating
    with pytest.raises(InputError, match="other train data"):
        build_cache([Sample(img, circles)], tmp_path, "train", {"seeds": [1]})


def test_folder_pairs_skip_unannotated(data_folder):
    pairs = folder_pairs(data_folder)
    assert [p[0].name for p in pairs] == ["img0.png", "img1.png", "img2.png"]
    with pytest.raises(InputError, match="not a folder"):
        folder_pairs(data_folder / "missing")


def test_train_checkpoint_resume_and_export(data_folder, tmp_path):
    cfg = config_from_dict(TINY)
    cache = tmp_path / "cache"
    straight = train_detector(cfg, tmp_path / "straight", data=data_folder, epochs=2, seed=1, cache_dir=cache, progress=False)
    assert straight.steps == 4

    run = tmp_path / "resumed"
    first = train_detector(cfg, run, data=data_folder, epochs=1, seed=1, cache_dir=cache, progress=False)
    assert first.steps == 2
    with pytest.raises(InputError, match="--resume"):
        train_detector(cfg, run, data=data_folder, epochs=2, seed=1, cache_dir=cache, progress=False)
    again = train_detector(cfg, run, epochs=2, seed=1, resume=True, cache_dir=cache, progress=False)
    assert again.steps == 4
    latest = json.loads((run / "checkpoint" / "latest.json").read_text())
    assert latest["step"] == 4

    # Resuming reproduces the uninterrupted run exactly (index-seeded crops, restored optimiser).
    a = load_file(str(straight.run_dir / "checkpoint" / "step_000000004" / "model.safetensors"))
    b = load_file(str(run / "checkpoint" / "step_000000004" / "model.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k

    meta = json.loads((again.weights_dir / "detector.json").read_text())
    assert set(meta) >= {"model_args", "config", "thresholds", "sha256", "metrics", "provenance"}
    assert set(meta["thresholds"]) == {"p_thresh", "nms_thresh"}
    assert meta["provenance"]["source"] == "folder" and meta["provenance"]["steps"] == 4
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "val" in history[-1]


def test_cli_train_detect(data_folder, tmp_path):
    from typer.testing import CliRunner

    from srpsa.cli.train import app

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        "[model]\nchannels = [4, 4, 8, 8, 8]\n"
        "[data]\ncrop = 32\nsamples_per_epoch = 4\n"
        "[train]\nnum_workers = 0\nlr = 1e-3\n"
    )
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["detect", "--config", str(cfg), "--data", str(data_folder), "--out", str(out), "--epochs", "1", "--no-progress", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "weights:" in res.output and (out / "weights" / "detector.safetensors").is_file()
    res = CliRunner().invoke(app, ["detect", "--config", str(cfg), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)


def test_history_loss_is_exact_after_a_mid_epoch_resume(data_folder, tmp_path):
    import shutil

    cfg = config_from_dict(TINY)  # checkpoint_every 1: step_3 is a checkpoint in the middle of epoch 2
    cache = tmp_path / "cache"
    straight = train_detector(cfg, tmp_path / "straight", data=data_folder, epochs=2, seed=1, cache_dir=cache, progress=False)
    run = tmp_path / "killed"
    shutil.copytree(straight.run_dir, run)
    state = json.loads((run / "checkpoint" / "step_000000003" / "state.json").read_text())
    assert state["batch_in_epoch"] == 1  # as if killed after the first batch of epoch 2
    (run / "checkpoint" / "latest.json").write_text(json.dumps({"step": 3, "dir": "step_000000003"}))
    train_detector(cfg, run, epochs=2, seed=1, resume=True, cache_dir=cache, progress=False)
    want = json.loads((straight.run_dir / "history.json").read_text())
    got = json.loads((run / "history.json").read_text())
    assert [h["train_loss"] for h in got] == [h["train_loss"] for h in want]
