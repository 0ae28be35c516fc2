"""GAN trainer: data pairs, TTUR on the optimisers, exact resume, learning, outputs, release weights, CLI, DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from srpsa.cli import main as cli_main
from srpsa.errors import ConfigError, InputError
from srpsa.models.release import META_FILE, WEIGHTS_FILE, load_generator_release, save_generator_release
from srpsa.training.gan_config import load_gan_config
from srpsa.training.gan_data import PatchPairs, area_downsample, batch_indices
from srpsa.training import gan_budget, gan_train
from srpsa.training.gan_train import GANTrainer, train_gan

pytestmark = pytest.mark.usefixtures("torch_one_thread")

K = 2  # SEM pixels per OM pixel in the test data
OM_SIDE = 40  # OM patch side: random 32 px crops (translate) and 64 px HR crops of the 80 px SEM (superres)

TRANSLATE_TOML = """
task = "translate"
name = "tiny"
[generator]
ngf = 4
depth = 3
attention_levels = 1
[discriminator]
ndf = 4
n_layers = 2
[train]
patch_size = 32
batch_size = 2
total_steps = 6
[ttur]
decay_every = 2
"""

SUPERRES_TOML = """
task = "superres"
name = "tiny"
[generator]
nf = 8
gc = 4
num_blocks = 1
[discriminator]
nf = 8
[train]
lr_patch_size = 16
batch_size = 2
total_steps = 6
psnr_warmup_steps = 2
perceptual_layer = "conv2_2"
"""


def _png16(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16))


def _sem_image(rng: np.random.Generator, side: int) -> np.ndarray:
    """Bright discs on a dark, slightly noisy background: learnable structure at any scale."""
    yy, xx = np.mgrid[:side, :side]
    img = np.full((side, side), 0.15)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(side / 12, side / 5)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 0.8
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


def make_prepared(folder: Path, n_train: int = 4, n_val: int = 2) -> Path:
    """A srpsa-prepare-style folder: 16-bit PNG pairs (SEM K x finer, OM = blurred darker SEM) + patches.csv."""
    rng = np.random.default_rng(7)
    rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            sem = _sem_image(rng, OM_SIDE * K)
            om = cv2.GaussianBlur(area_downsample(sem.astype(np.float32), K), (5, 5), 1.0) * 0.7 + 0.1
            base = f"{split}/img{i}_y0_x0_a0"
            _png16(folder / f"{base}_om.png", om)
            _png16(folder / f"{base}_sem.png", sem)
            rows.append({"split": split, "stem": f"img{i}", "om_file": f"{base}_om.png", "sem_file": f"{base}_sem.png",
                         "y": 0, "x": 0, "aug": 0, "dihedral": 0, "brightness": 0, "contrast": 1, "gamma": 1, "noise": 0})
    with open(folder / "patches.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder


def write_config(folder: Path, text: str, name: str = "cfg.toml", **train: object) -> Path:
    """Write a config TOML with ``[train]`` keys replaced or added."""
    lines = text.strip().splitlines()
    start = lines.index("[train]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for key, value in train.items():
        line = f"{key} = {json.dumps(value)}"
        hits = [i for i in range(start + 1, end) if lines[i].split("=")[0].strip() == key]
        if hits:
            lines[hits[0]] = line
        else:
            lines.insert(start + 1, line)
            end += 1
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("prepared"))


def _cfg(tmp_path: Path, text: str, **train: object):
    return load_gan_config(write_config(tmp_path, text, **train))


def _train_log(out: Path) -> list[dict]:
    return [e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if e["kind"] == "train"]


# -- data -----------------------------------------------------------------------------------------------


def test_translate_pairs_put_sem_on_the_om_grid(data):
    pairs = PatchPairs(data, "train", "translate", crop=32)
    assert len(pairs) == 4 and pairs.k == K
    inp, tgt = pairs.crop_pair(0, (3, 5))
    assert inp.shape == tgt.shape == (32, 32) and inp.dtype == np.float32
    sem = cv2.imread(str(pairs.records[0].sem), cv2.IMREAD_UNCHANGED).astype(np.float64) / 65535
    block_mean = sem.reshape(OM_SIDE, K, OM_SIDE, K).mean(axis=(1, 3))  # INTER_AREA = k x k block means
    np.testing.assert_allclose(tgt, block_mean[3:35, 5:37], atol=2e-5)


def test_superres_pairs_are_hr_crop_and_its_area_downsample(data):
    pairs = PatchPairs(data, "train", "superres", crop=64, scale=4)
    lr, hr = pairs.crop_pair(1, (4, 8))
    assert hr.shape == (64, 64) and lr.shape == (16, 16)
    np.testing.assert_allclose(lr, hr.reshape(16, 4, 16, 4).mean(axis=(1, 3)), atol=1e-6)


def test_sampling_is_seeded_and_sharded_like_distributed_sampler():
    one = batch_indices(5, 7, 4, seed=3)
    assert one == batch_indices(5, 7, 4, seed=3) and one != batch_indices(5, 7, 4, seed=4)
    shards = [batch_indices(5, 7, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(one)  # the two ranks split the global batch
    epoch = [i for s in range(7) for _, i in batch_indices(s, 7, 1, seed=0)]
    assert sorted(epoch) == list(range(7))  # without replacement within an epoch


def test_bad_data_is_a_one_line_input_error(tmp_path, data):
    with pytest.raises(InputError, match="patches.csv"):
        PatchPairs(tmp_path, "train", "translate", crop=32)
    with pytest.raises(InputError, match="smaller than the 64 px"):
        PatchPairs(data, "train", "translate", crop=64)


# -- training -------------------------------------------------------------------------------------------


def test_ttur_switch_reaches_the_optimisers(tmp_path, data):
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=4)  # swap at round(0.5 * 4) = 2, then decay every 2
    trainer = GANTrainer(cfg, data, tmp_path / "run")
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))
    trainer.close()
    assert seen == [(0.005, 0.001), (0.005, 0.001), (0.001, 0.005), (0.001, 0.005)]
    assert trainer.opt_g.param_groups[0]["betas"] == (0.5, 0.999)


def test_superres_warmup_trains_g_alone_then_switches_to_gan(tmp_path, data):
    cfg = _cfg(tmp_path, SUPERRES_TOML)
    trainer = GANTrainer(cfg, data, tmp_path / "run")
    d_before = {k: v.clone() for k, v in trainer.d_net.state_dict().items()}
    logs = [trainer.train_step() for _ in range(3)]
    trainer.close()
    assert set(logs[0]) >= {"l1", "loss_g"} and "loss_d" not in logs[0]
    assert logs[0]["lr_g"] == 2e-4 and logs[0]["lr_d"] == 0.0
    assert set(logs[2]) >= {"loss_d", "perceptual", "gan", "l1"} and logs[2]["lr_g"] == 0.003
    changed = any(not torch.equal(v, trainer.d_net.state_dict()[k]) for k, v in d_before.items())
    assert changed  # D moved only in step 3 (the first GAN step)


@pytest.mark.parametrize("toml", [TRANSLATE_TOML, SUPERRES_TOML], ids=["translate", "superres"])
def test_resume_is_exact(tmp_path, data, toml):
    cfg = _cfg(tmp_path, toml)
    kw = dict(progress=False, eval_every=0, checkpoint_every=3, eval_patches=2)
    train_gan(cfg, data, tmp_path / "full", **kw)
    train_gan(cfg, data, tmp_path / "part", steps=3, **kw)
    train_gan(cfg, None, tmp_path / "part", resume=True, **kw)
    full, part = _train_log(tmp_path / "full"), _train_log(tmp_path / "part")
    assert [e["step"] for e in part] == list(range(1, 7))
    for a, b in zip(full, part):
        for key in a:
            if key not in ("seconds", "kind"):
                assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), (a["step"], key)


def test_outputs_checkpoints_samples_and_weights(tmp_path, data):
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=5)
    out = tmp_path / "run"
    result = train_gan(cfg, data, out, progress=False, eval_every=2, checkpoint_every=2, eval_patches=3)
    assert result["step"] == 5 and result["metrics"]["n"] == 2 and 0 < result["metrics"]["ssim"] <= 1
    assert sorted(p.name for p in (out / "checkpoint").glob("step_*")) == ["step_000000004", "step_000000005"]
    latest = json.loads((out / "checkpoint" / "latest.json").read_text())
    assert latest == {"step": 5, "dir": "step_000000005"}
    ck = out / "checkpoint" / "step_000000005"
    assert {p.name for p in ck.iterdir()} == {"generator.safetensors", "discriminator.safetensors", "optimizer.pt", "state.json"}
    assert set(torch.load(ck / "optimizer.pt", weights_only=True)) == {"opt_g", "opt_d", "rng", "step"}
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000004.png", "step_000005.png"]
    grid = cv2.imread(str(out / "samples" / "step_000005.png"), cv2.IMREAD_UNCHANGED)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 32 + 2, 3 * 32 + 4)  # 2 val rows of input|output|target
    evals = [e for e in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if e["kind"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4, 5] and all("psnr" in e for e in evals)
    g, meta = load_generator_release(out / "weights")
    assert meta["task"] == "translate" and meta["provenance"]["steps"] == 5 and meta["metrics"]["psnr"] == evals[-1]["psnr"]
    with pytest.raises(InputError, match="already holds"):
        train_gan(cfg, data, out, progress=False)


def test_superres_run_records_the_perceptual_source(tmp_path, data):
    cfg = _cfg(tmp_path, SUPERRES_TOML, total_steps=3)
    out = tmp_path / "run"
    result = train_gan(cfg, data, out, progress=False, eval_every=0, eval_patches=2)
    saved = json.loads((out / "config.json").read_text())
    assert saved["loss"]["source"] == "random:seed=0" == result["perceptual_source"]
    assert {"psnr", "psnr_bicubic"} <= set(result["metrics"])
    grid = cv2.imread(str(out / "samples" / "step_000003.png"), cv2.IMREAD_UNCHANGED)
    assert grid.shape == (2 * 64 + 2, 3 * 64 + 4)  # LR input shown nearest-upsampled to the HR size


def test_a_few_steps_reduce_the_pixel_loss(tmp_path, data):
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=30, lambda_pixel=100.0)
    trainer = GANTrainer(cfg, data, tmp_path / "run")
    pixel = [trainer.train_step()["pixel"] for _ in range(30)]
    trainer.close()
    assert np.mean(pixel[-5:]) < 0.7 * np.mean(pixel[:5]), pixel


def test_resume_with_another_config_is_refused(tmp_path, data):
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=2)
    train_gan(cfg, data, tmp_path / "run", progress=False, eval_patches=1)
    other = _cfg(tmp_path, TRANSLATE_TOML, total_steps=2, lambda_pixel=1.0)
    with pytest.raises(ConfigError, match="train"):
        train_gan(other, data, tmp_path / "run", resume=True, progress=False)


# -- release weights ------------------------------------------------------------------------------------


@pytest.mark.parametrize("toml", [TRANSLATE_TOML, SUPERRES_TOML], ids=["translate", "superres"])
def test_release_round_trip(tmp_path, data, toml):
    from srpsa.training.gan_config import build_gan

    cfg = _cfg(tmp_path, toml)
    g, _ = build_gan(cfg)
    g.train()
    x = torch.rand(2, 1, 32, 32) if cfg.task == "translate" else torch.rand(2, 1, 16, 16)
    for _ in range(2):  # move the SN vectors and batch-norm statistics off their initial values
        g(x)
    g.eval()
    with torch.no_grad():
        expected = g(x)
    folder = save_generator_release(tmp_path / "w", g, task=cfg.task, config_dict={"name": "tiny"}, metrics={"psnr": float("inf")},
                                    provenance={"note": "test"})
    model, meta = load_generator_release(folder)
    with torch.no_grad():
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert not model.training and meta["format"] == "srpsa-gan/1" and meta["model_args"]["spectral_norm"] is False
    assert meta["model_class"] == ("Pix2PixGenerator" if cfg.task == "translate" else "RRDBNet")
    assert meta["metrics"]["psnr"] is None  # inf is not JSON
    assert not any("parametrizations" in k for k in model.state_dict())


def test_release_corruption_is_an_input_error(tmp_path, data):
    from srpsa.training.gan_config import build_gan

    g, _ = build_gan(_cfg(tmp_path, TRANSLATE_TOML))
    folder = save_generator_release(tmp_path / "w", g, task="translate")
    wfile = folder / WEIGHTS_FILE
    blob = bytearray(wfile.read_bytes())
    blob[-10] ^= 0xFF
    wfile.write_bytes(bytes(blob))
    with pytest.raises(InputError, match="sha256"):
        load_generator_release(folder)
    (folder / META_FILE).write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        load_generator_release(folder)
    with pytest.raises(InputError, match="not found"):
        load_generator_release(tmp_path / "nowhere")


# -- CLI ------------------------------------------------------------------------------------------------


def test_cli_happy_path_and_task_mismatch(tmp_path, data, capsys):
    cfg = write_config(tmp_path, SUPERRES_TOML, total_steps=3)
    out = tmp_path / "run"
    rc = cli_main(["train", "superres", "--config", str(cfg), "--data", str(data), "--out", str(out), "--no-progress",
                   "--eval-every", "1", "--checkpoint-every", "1", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    assert (out / "weights" / WEIGHTS_FILE).is_file() and "weights" in capsys.readouterr().out
    rc = cli_main(["train", "translate", "--config", str(cfg), "--data", str(data), "--out", str(tmp_path / "bad"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "superres" in err
    rc = cli_main(["train", "translate", "--config", str(write_config(tmp_path, TRANSLATE_TOML)), "--data", str(tmp_path / "none"),
                   "--out", str(tmp_path / "bad2"), "--no-progress"])
    assert rc == 2 and "not found" in capsys.readouterr().err


# -- distributed ----------------------------------------------------------------------------------------


_DDP_SCRIPT = """
import sys
import torch
from srpsa.training.gan_config import load_gan_config
from srpsa.training.gan_train import train_gan
torch.distributed.init_process_group("gloo")  # as train_gan would; kept for both runs below
translate, superres, data, out = sys.argv[1:]
train_gan(load_gan_config(translate), data, out + "/translate", progress=False, threads=1, eval_patches=2)
train_gan(load_gan_config(superres), data, out + "/superres", steps=2, progress=False, threads=1, eval_patches=2)
torch.distributed.destroy_process_group()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes(tmp_path, data):
    """Two ranks as torchrun starts them (RANK/WORLD_SIZE/MASTER_* set): gloo + DDP, rank 0 writes.

    Translate runs the full D + G step through DDP (spectral norm, two D forwards per D step). The
    superres run stops inside the L1 warm-up, where 2 ranks x batch 1 must equal 1 process x batch 2
    (same global samples, gradients averaged): this checks sharding and gradient sync.
    The processes are started directly rather than through ``torch.distributed.run`` and call
    ``train_gan`` rather than the CLI: that spares a third torch import and the CLI's imports of every
    command (seconds each on a loaded machine); the trainer sees the same environment either way.
    """
    translate = write_config(tmp_path, TRANSLATE_TOML, "translate.toml", total_steps=3)
    superres = write_config(tmp_path, SUPERRES_TOML, "superres.toml", batch_size=1)
    out = tmp_path / "ddp"
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, "-c", _DDP_SCRIPT, str(translate), str(superres), str(data), str(out)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=150)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert [e["step"] for e in _train_log(out / "translate")] == [1, 2, 3]
    assert json.loads((out / "translate" / "config.json").read_text())["world_size"] == 2
    assert (out / "translate" / "weights" / WEIGHTS_FILE).is_file()

    single = _cfg(tmp_path, SUPERRES_TOML, batch_size=2)
    train_gan(single, data, tmp_path / "single", steps=2, progress=False, eval_patches=2)
    (g_ddp, _), (g_one, _) = load_generator_release(out / "superres" / "weights"), load_generator_release(tmp_path / "single" / "weights")
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(g_ddp(x), g_one(x), rtol=1e-4, atol=1e-5)
    ddp_l1 = [e["l1"] for e in _train_log(out / "superres")]
    one_l1 = [e["l1"] for e in _train_log(tmp_path / "single")]
    assert ddp_l1[0] != pytest.approx(one_l1[0], rel=1e-9)  # rank 0 logs its own half of the batch


# -- wall-clock budget ------------------------------------------------------------------------------------


class _FakeClock:
    """A monotonic clock that advances one second per step (patched into the trainer module)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _one_second_steps(monkeypatch, clock: _FakeClock) -> None:
    real_step = GANTrainer.train_step

    def step(self):
        entry = real_step(self)
        clock.now += 1.0
        return {**entry, "seconds": 1.0}

    monkeypatch.setattr(GANTrainer, "train_step", step)
    monkeypatch.setattr(gan_train.time, "monotonic", clock.monotonic)


def test_budget_shrinks_the_whole_schedule_to_what_fits(tmp_path, data, monkeypatch):
    clock = _FakeClock()
    _one_second_steps(monkeypatch, clock)
    monkeypatch.setattr(gan_budget, "BUDGET_CALIBRATION_STEPS", 3)
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=40)  # planned: swap at 20
    out = tmp_path / "run"
    result = train_gan(cfg, data, out, progress=False, eval_every=0, checkpoint_every=0, eval_patches=2,
                       budget_minutes=20 / 60)  # fmt: skip
    # after 3 one-second steps 17 s are left: 3 + int(0.9 * 17) = 18 steps, swap now at 9
    assert result["step"] == 18
    saved = json.loads((out / "config.json").read_text())["config"]["train"]["total_steps"]
    assert saved == 18
    rates = [(e["lr_g"], e["lr_d"]) for e in _train_log(out)]
    assert rates[8] == (0.005, 0.001) and rates[9][0] == 0.001  # the swap moved with the schedule
    assert (out / "weights" / "generator.safetensors").is_file()


def test_budget_longer_than_the_run_changes_nothing(tmp_path, data, monkeypatch):
    clock = _FakeClock()
    _one_second_steps(monkeypatch, clock)
    monkeypatch.setattr(gan_budget, "BUDGET_CALIBRATION_STEPS", 3)
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=4)  # swap at 2: past it before the budget is fitted
    out = tmp_path / "run"
    train_gan(cfg, data, out, steps=3, progress=False, eval_every=0, checkpoint_every=0, eval_patches=2)
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=4)
    # resumed at step 3 with a 2 s budget: step 4 is the last planned one anyway
    result = train_gan(cfg, None, out, resume=True, progress=False, eval_every=0, checkpoint_every=0,
                       eval_patches=2, budget_minutes=2 / 60)  # fmt: skip
    assert result["step"] == 4
    assert json.loads((out / "config.json").read_text())["config"]["train"]["total_steps"] == 4


def test_budget_hard_stop_at_the_deadline(tmp_path, data, monkeypatch):
    clock = _FakeClock()
    _one_second_steps(monkeypatch, clock)
    monkeypatch.setattr(gan_budget, "BUDGET_CALIBRATION_STEPS", 3)
    cfg = _cfg(tmp_path, TRANSLATE_TOML, total_steps=12)  # swap at 6
    out = tmp_path / "run"
    train_gan(cfg, data, out, steps=4, progress=False, eval_every=0, checkpoint_every=0, eval_patches=2)
    # resumed at 4: fitting at step 7 (past the swap) is refused; the first step past the 5 s deadline is 10
    result = train_gan(cfg, None, out, resume=True, progress=False, eval_every=0, checkpoint_every=0,
                       eval_patches=2, budget_minutes=5 / 60)  # fmt: skip
    assert result["step"] == 10
    assert json.loads((out / "config.json").read_text())["config"]["train"]["total_steps"] == 12
    assert (out / "checkpoint" / "step_000000010").is_dir()


def test_budget_must_be_positive(tmp_path, data):
    with pytest.raises(InputError, match="budget"):
        train_gan(_cfg(tmp_path, TRANSLATE_TOML), data, tmp_path / "run", budget_minutes=0)


def test_preload_fills_the_cache_with_what_lazy_loading_gives(data):
    lazy = PatchPairs(data, "train", "translate", crop=32)
    eager = PatchPairs(data, "train", "translate", crop=32)
    eager.preload(workers=3)
    assert len(eager._cache) == len(eager) > 0
    for i in range(len(lazy)):
        for a, b in zip(lazy.crop_pair(i), eager.crop_pair(i)):
            np.testing.assert_array_equal(a, b)
