"""Image-quality metrics (SSIM, PSNR, density, coverage) and `srpsa evaluate images`."""

from __future__ import annotations

import json
import math

import cv2
import imageio.v3 as iio
import numpy as np
import pytest

from srpsa.errors import InputError
from srpsa.evaluation.embedder import make_embedder, torchvision_available
from srpsa.evaluation.image_quality import image_quality, pair_image_files

PATCH = 32  # small crops keep the tests fast: 4 images of 128 x 128 give 64 crops


def _discs(rng: np.random.Generator, size: int = 128, n: int = 12) -> np.ndarray:
    """A blurred, slightly noisy image of bright discs: a stand-in for an SEM-like target."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 0.2, np.float32)
    for _ in range(n):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(5, 14)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 0.8
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    # Sensor noise also keeps flat background crops from being exact duplicates (see the zero-radius test).
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def targets() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [_discs(rng) for _ in range(4)]


def _noisy(images, sigma, seed):
    rng = np.random.default_rng(seed)
    return [np.clip(t + rng.normal(0, sigma, t.shape), 0, 1).astype(np.float32) for t in images]


def test_identical_images_score_perfectly(targets, torch_one_thread):
    r = image_quality(targets, targets, patch=PATCH)
    assert r["ssim"] == pytest.approx(1.0)
    assert math.isinf(r["psnr"]) and r["psnr_finite"] is None and r["n_identical"] == 4
    assert r["density"] == pytest.approx(1.0) and r["coverage"] == 1.0
    assert r["n_real"] == r["n_fake"] == 4 * (128 // PATCH) ** 2
    assert r["embedder"].endswith(":seed=0") and r["embedder_info"]["seed"] == 0
    assert r["resized"] == [] and r["n_pairs"] == 4


def test_degraded_preds_score_lower(targets, torch_one_thread):
    light = image_quality(_noisy(targets, 0.01, 1), targets, patch=PATCH)
    noisy = image_quality(_noisy(targets, 0.15, 2), targets, patch=PATCH)
    blurred = image_quality([cv2.GaussianBlur(t, (0, 0), 2.0) for t in targets], targets, patch=PATCH)
    assert light["ssim"] > 0.95 and light["coverage"] > 0.9
    assert 39 < light["psnr"] < 41  # 10 log10(1 / 0.01^2) = 40 dB, a little less clipping at 0 and 1
    for bad in (noisy, blurred):
        assert bad["ssim"] < light["ssim"] - 0.2
        assert bad["psnr"] < light["psnr"] - 10
        assert bad["coverage"] < light["coverage"] - 0.2
        assert bad["density"] < light["density"]


def test_pred_of_other_size_is_resized(targets, torch_one_thread):
    half = [cv2.resize(t, (64, 64), interpolation=cv2.INTER_AREA) for t in targets]
    r = image_quality(half, targets, patch=PATCH)
    assert r["resized"] == [0, 1, 2, 3] and any("resized" in n for n in r["notes"])
    assert r["per_pair"][0]["pred_shape"] == [64, 64] and r["per_pair"][0]["shape"] == [128, 128]
    assert 0.5 < r["ssim"] < 1.0 and math.isfinite(r["psnr"])


def test_max_patches_subsamples_the_same_positions(targets, torch_one_thread):
    r = image_quality(targets, targets, patch=PATCH, max_patches=20)
    assert r["n_real"] == r["n_fake"] == 20
    assert r["coverage"] == 1.0  # real and fake crops stay aligned after subsampling


def test_flat_duplicate_crops_are_reported(torch_one_thread):
    flat = [np.full((128, 128), 0.3, np.float32) for _ in range(2)]
    r = image_quality(flat, flat, patch=PATCH)
    # All 32 crops embed identically: every k-NN radius is 0 and prdc's strict '<' counts nothing.
    assert r["n_real_zero_radius"] == 32 and r["coverage"] == 0.0
    assert any("radius of 0" in n for n in r["notes"])


def test_embedder_is_deterministic_per_seed(targets, torch_one_thread):
    crops = np.stack([t[:PATCH, :PATCH] for t in targets])
    a = make_embedder(0).embed(crops)
    make_embedder.cache_clear()  # rebuild the network to show the weights come from the seed alone
    b = make_embedder(0).embed(crops)
    c = make_embedder(1).embed(crops)
    assert a.shape == (4, make_embedder(0).dim)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert make_embedder(1).description.endswith(":seed=1")


def test_embedder_leaves_global_rng_alone():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_embedder.cache_clear()
    make_embedder(5)
    assert torch.equal(torch.rand(3), expected)


def test_auto_embedder_matches_what_imports():
    net = make_embedder(0)
    if torchvision_available():
        assert net.name == "torchvision-inception_v3-random" and net.dim == 2048 and net.input_size == 299
    else:
        assert net.name == "srpsa-random-cnn" and net.dim == 512
        with pytest.raises(ValueError, match="torchvision"):
            make_embedder(0, "inception")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch": 128}, "need at least 7"),  # 4 crops of 128 px < nearest_k + 2
        ({"patch": 16}, "below the 32 px"),
        ({"max_patches": 3}, "max_patches"),
        ({"nearest_k": 0}, "nearest_k"),
    ],
)
def test_bad_settings_raise_input_error(targets, kwargs, match):
    if torchvision_available() and kwargs.get("patch") == 16:
        pytest.skip("Inception resizes every patch to 299 px, so small patches are allowed")
    with pytest.raises(InputError, match=match):
        image_quality(targets, targets, **{"patch": PATCH, **kwargs})


def test_bad_images_raise_input_error(targets):
    with pytest.raises(InputError, match="pair up"):
        image_quality(targets[:2], targets, patch=PATCH)
    with pytest.raises(InputError, match="no image pairs"):
        image_quality([], [], patch=PATCH)
    with pytest.raises(InputError, match=r"expected \[0, 1\]"):
        image_quality([targets[0] * 255], [targets[0]], patch=PATCH)
    with pytest.raises(InputError, match="NaN"):
        image_quality([np.full((64, 64), np.nan, np.float32)], [targets[0]], patch=PATCH)


def _write_set(folder, images, names):
    folder.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images, names):
        iio.imwrite(folder / name, (img * 255).round().astype(np.uint8))


def test_pairing_by_stem_then_sorted_order(tmp_path, targets):
    _write_set(tmp_path / "t", targets[:2], ["b.png", "a.png"])
    _write_set(tmp_path / "p", targets[:2], ["a.png", "b.tif"])
    pairs, notes = pair_image_files(tmp_path / "p", tmp_path / "t")
    assert [(p.name, t.name) for p, t in pairs] == [("a.png", "a.png"), ("b.tif", "b.png")] and not notes

    _write_set(tmp_path / "q", targets[:2], ["a_fake.png", "b_fake.png"])
    pairs, notes = pair_image_files(tmp_path / "q", tmp_path / "t")
    assert [(p.name, t.name) for p, t in pairs] == [("a_fake.png", "a.png"), ("b_fake.png", "b.png")]
    assert "sorted" in notes[0]

    _write_set(tmp_path / "r", targets[:3], ["a.png", "b.png", "c.png"])
    with pytest.raises(InputError, match="unpaired: c"):
        pair_image_files(tmp_path / "r", tmp_path / "t")
    with pytest.raises(InputError, match="both be image files or both be folders"):
        pair_image_files(tmp_path / "r" / "a.png", tmp_path / "t")


def test_cli_images_writes_json(tmp_path, targets, torch_one_thread):
    from typer.testing import CliRunner

    from srpsa.cli.evaluate import app

    _write_set(tmp_path / "t", targets, [f"img{i}.png" for i in range(4)])
    _write_set(tmp_path / "p", _noisy(targets, 0.02, 3), [f"img{i}.png" for i in range(4)])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["images", "--pred", str(tmp_path / "p"), "--target", str(tmp_path / "t"),
                                   "--out", str(out), "--patch", str(PATCH)])
    assert res.exit_code == 0, res.output
    assert "SSIM" in res.output and "coverage" in res.output
    data = json.loads((out / "image_quality.json").read_text())
    assert data["n_pairs"] == 4 and data["n_real"] == 64 and 0.0 < data["coverage"] <= 1.0
    assert data["per_pair"][0]["pred"].endswith("img0.png") and data["settings"]["nearest_k"] == 5

    # Identical images: PSNR is inf, written as null so the JSON stays strict.
    res = CliRunner().invoke(app, ["images", "--pred", str(tmp_path / "t"), "--target", str(tmp_path / "t"),
                                   "--out", str(out), "--patch", str(PATCH)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "image_quality.json").read_text())
    assert data["psnr"] is None and data["n_identical"] == 4 and data["ssim"] == pytest.approx(1.0)


def test_cli_images_bad_input_is_one_line_exit_2(tmp_path, targets, capsys):
    from srpsa.cli import main

    _write_set(tmp_path / "t", targets[:1], ["img0.png"])
    assert main(["evaluate", "images", "--pred", str(tmp_path / "missing"), "--target", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("srpsa: error: --pred") and "not found" in err

    # One 128 x 128 image gives a single default-size crop: too few for density and coverage.
    assert main(["evaluate", "images", "--pred", str(tmp_path / "t"), "--target", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need at least 7" in err
