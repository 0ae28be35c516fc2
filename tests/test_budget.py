"""Issue 16: bounded cost. Block-by-block detection, the working-scale cap, the guide's bounded window,
the pre-flight memory estimate and `--max-memory` (a refused image goes to errors.csv, the rest run)."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from disks import disk_image
from srpsa.cli import main
from srpsa.errors import InputError
from srpsa.inference import budget
from srpsa.inference.blocks import block_grid, block_layout, detect_in_blocks
from srpsa.inference.enhance import EnhanceConfig, plan_scales


def _truth(seed: int = 0, shape=(700, 900)) -> np.ndarray:
    """Separate circles (r 3-12 px on a jittered 30 px lattice), all wholly inside the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[15 : shape[0] - 15 : 30, 15 : shape[1] - 15 : 30]
    n = yy.size
    return np.column_stack([xx.ravel() + rng.uniform(-2, 2, n), yy.ravel() + rng.uniform(-2, 2, n), rng.uniform(3, 12, n)])


def test_block_grid_tiles_the_axis_exactly():
    for length, core in [(1, 64), (100, 64), (1000, 333), (4096, 1024)]:
        cells = block_grid(length, core)
        assert cells[0][0] == 0 and cells[-1][1] == length
        assert all(a < b and b - a <= core for a, b in cells)
        assert all(cells[k][1] == cells[k + 1][0] for k in range(len(cells) - 1))


def test_blocks_answer_every_particle_once_as_a_single_pass_would():
    """A fake detector that finds every circle wholly inside what it is shown: blocks with a margin of a
    diameter give back exactly the truth, none twice, none lost at the seams or the borders."""
    shape = (700, 900)
    gt = _truth(shape=shape)
    image = np.zeros(shape, np.float32)
    seen = []

    def detect(sub: np.ndarray):
        # where is this block? the fake reads its offset from a coordinate image
        y0, x0 = int(sub[0, 0] // 10_000), int(sub[0, 0] % 10_000)
        h, w = sub.shape
        x, y, r = gt[:, 0] - x0, gt[:, 1] - y0, gt[:, 2]
        inside = (x - r >= -0.5) & (y - r >= -0.5) & (x + r <= w - 0.5) & (y + r <= h - 0.5)
        seen.append(sub.shape)
        return np.column_stack([x, y, r])[inside], np.ones(int(inside.sum()))

    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = (yy * 10_000 + xx).astype(np.float64)
    circles, scores, n_blocks = detect_in_blocks(detect, image, core=200, margin=30)
    assert n_blocks == len(seen) == 4 * 5
    assert len(circles) == len(gt) and len(scores) == len(gt)
    key = lambda c: np.round(c[np.lexsort((c[:, 1], c[:, 0]))], 6)  # noqa: E731
    np.testing.assert_allclose(key(circles), key(gt))


def test_block_layout_only_when_the_working_image_is_large():
    assert block_layout((1024, 1024), 2.0, 20.0) is None  # 4 Mpx of working pixels: one pass
    core, margin = block_layout((2048, 2048), 3.0, 20.0, context_px=16.0)  # 38 Mpx: blocks
    assert margin >= 20 + 16 and (core + 2 * margin) ** 2 * 9 <= 16_000_000 * 1.01


def test_translation_never_enlarges_beyond_the_cap():
    cfg = EnhanceConfig(sr_mode="none")
    for d in (2.0, 5.0, 7.0, 10.0, 15.0):
        assert plan_scales(d, cfg).translate_scale <= cfg.max_upscale
    assert plan_scales(20.0, cfg).translate_scale == pytest.approx(2.4)  # presets (17-23 px): as before
    assert cfg.native_below_px == pytest.approx(cfg.translate_target_diameter_px / cfg.max_upscale)


def test_estimate_grows_with_pixels_and_refuses_what_cannot_fit(tmp_path):
    small, big = budget.estimate_cost(1_000_000), budget.estimate_cost(50_000_000)
    assert small.peak_bytes < big.peak_bytes and small.seconds < big.seconds
    assert budget.estimate_cost(budget.max_pixels_for(4.0)).peak_gb == pytest.approx(4.0, abs=0.01)
    path = tmp_path / "a.png"
    iio.imwrite(path, np.zeros((64, 64), np.uint8))
    assert budget.preflight_image(path, 4.0).pixels == 64 * 64
    with pytest.raises(InputError, match=r"--max-memory 0\.5 GB"):
        budget.preflight_image(path, 0.5)
    with pytest.raises(InputError, match="--max-memory must be a positive"):
        budget.check_max_memory(0.0)


def test_batch_with_one_image_that_cannot_fit(tmp_path, capsys, monkeypatch):
    """--max-memory refuses the large image before decoding (errors.csv names the limit and the option);
    the small ones complete and summary.csv is written."""
    # a limit between the estimates of a 96x96 and a 2000x2000 image
    limit = (budget.estimate_cost(96 * 96).peak_gb + budget.estimate_cost(2000 * 2000).peak_gb) / 2
    folder = tmp_path / "in"
    folder.mkdir()
    iio.imwrite(folder / "a.png", disk_image(0))
    iio.imwrite(folder / "big.png", np.full((2000, 2000), 200, np.uint8))
    iio.imwrite(folder / "c.png", disk_image(2))
    out = tmp_path / "o"
    code = main(["analyze", str(folder), "--out", str(out), "--pipeline", "detect-only", "--bootstrap", "0",
                 "--workers", "1", "--max-memory", f"{limit:.4f}"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["image"]) == [str(folder / "big.png")]
    assert "--max-memory" in errors.loc[0, "error"] and "GB" in errors.loc[0, "error"]
    assert list(pd.read_csv(out / "summary.csv")["image"]) == ["a", "c", "POOLED"]
    assert not (out / "big").exists() or not (out / "big" / "summary.json").exists()


def test_max_memory_default_is_one_value_and_errors_name_the_parameter():
    """The defaults table, the budget module and AnalyzeSettings agree; the library names max_memory_gb,
    the CLI its flag."""
    from srpsa.cli.analyze import FLAGS
    from srpsa.errors import ParameterError
    from srpsa.inference import defaults as D
    from srpsa.inference.pipeline import AnalyzeSettings

    assert D.MAX_MEMORY_GB == budget.DEFAULT_MAX_MEMORY_GB == AnalyzeSettings().max_memory_gb
    with pytest.raises(ParameterError, match="max_memory_gb must be a positive"):
        AnalyzeSettings(max_memory_gb=0.0)
    assert FLAGS["max_memory_gb"] == "--max-memory"


def test_api_records_the_cost_estimate(tmp_path):
    """srpsa.analyze on a file: the pre-flight estimate is in the summary; too little memory refuses it."""
    import srpsa

    path = tmp_path / "a.png"
    iio.imwrite(path, disk_image(0))
    res = srpsa.analyze(path, pipeline="detect-only", bootstrap=0)
    assert res.summary["cost_estimate"]["pixels"] == 96 * 96
    assert srpsa.analyze(disk_image(0), pipeline="detect-only", bootstrap=0).summary["cost_estimate"]["pixels"] == 96 * 96
    with pytest.raises(InputError, match="--max-memory"):
        srpsa.analyze(path, pipeline="detect-only", bootstrap=0, max_memory_gb=0.5)
