"""The enhance chain (translate -> super-resolve) at particle-following scales, its CLI and `analyze --pipeline full`.

Tiny randomly initialised generators stand in for the shipped ones: these tests check geometry, tiling,
coordinates and the contract, not image quality (that is benchmarks/gan_quality.py's job).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch

from srpsa.cli import main
from srpsa.errors import InputError
from srpsa.inference.enhance import EnhanceConfig, Enhancer, plan_scales, to_input_coordinates
from srpsa.inference.guide import GuideConfig
from srpsa.inference.weights import PACKAGE_WEIGHTS
from srpsa.models.esrgan import RRDBNet
from srpsa.models.pix2pix import Pix2PixGenerator
from srpsa.models.release import save_generator_release

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    g = Pix2PixGenerator(ngf=4, depth=3, attention_levels=1, dropout=0.0)
    s = RRDBNet(nf=8, gc=4, num_blocks=1)
    save_generator_release(root / "translate", g.eval(), task="translate")
    save_generator_release(root / "superres", s.eval(), task="superres")
    shutil.copytree(PACKAGE_WEIGHTS / "detector-sem", root / "detector-sem")
    shutil.copytree(PACKAGE_WEIGHTS / "detector-om", root / "detector-om", ignore=shutil.ignore_patterns("*.onnx"))
    return root


@pytest.fixture(scope="module")
def enhancer(tiny_weights) -> Enhancer:
    return Enhancer.load(tiny_weights / "translate", tiny_weights / "superres", EnhanceConfig(tile=64, overlap=16, sr_tile=32, sr_overlap=8))


def test_plan_keeps_working_range_and_rescales_outside():
    cfg = EnhanceConfig()
    p = plan_scales(48.0, cfg)  # inside 40-56 px: translated as is, SR output on the translation grid
    assert p.translate_scale == 1.0 and p.sr_input_scale == 0.25 and p.output_scale == 1.0
    big = plan_scales(192.0, cfg)  # 192 px particles: translated at 48 px
    assert big.translate_scale == pytest.approx(0.25)
    small = plan_scales(6.0, cfg)  # 6 px: upsampled, but never more than max_upscale (bounded cost)
    assert small.translate_scale == pytest.approx(3.0)
    assert plan_scales(6.0, EnhanceConfig(sr_mode="none")).output_scale == pytest.approx(3.0)
    uncapped = plan_scales(6.0, EnhanceConfig(max_upscale=8.0))  # the old plan: 6 px to 48 px
    assert uncapped.translate_scale == pytest.approx(8.0) and uncapped.output_scale == pytest.approx(8.0)
    # SR input never drops a particle below its floor: the input factor gives way
    floor = plan_scales(48.0, EnhanceConfig(min_sr_input_diameter_px=16.0))
    assert 48.0 * floor.sr_input_scale == pytest.approx(16.0)
    paper = plan_scales(15.0, EnhanceConfig(flow="paper"))
    assert (paper.translate_scale, paper.sr_input_scale, paper.output_scale) == (0.5, 0.125, 0.5)
    with pytest.raises(InputError):
        EnhanceConfig(flow="magic")


def test_coordinates_map_back_to_input_pixels():
    c = np.array([[10.0, 20.0, 5.0]])
    s = 2.0
    fine = np.array([[(10.0 + 0.5) * s - 0.5, (20.0 + 0.5) * s - 0.5, 5.0 * s]])
    np.testing.assert_allclose(to_input_coordinates(fine, s), c)
    # per-axis factors (stage sizes are rounded): x by sx, y by sy, r by their geometric mean
    sx, sy = 1.9, 2.1
    fine = np.array([[(10.0 + 0.5) * sx - 0.5, (20.0 + 0.5) * sy - 0.5, 5.0 * np.sqrt(sx * sy)]])
    np.testing.assert_allclose(to_input_coordinates(fine, (sx, sy)), c)


def test_stage_shapes_and_range(enhancer):
    rng = np.random.default_rng(0)
    om = rng.random((70, 90)).astype(np.float32)
    t = enhancer.translate(om)
    assert t.shape == om.shape and t.dtype == np.float32 and 0.0 <= t.min() and t.max() <= 1.0
    sr = enhancer.super_resolve(om[:40, :50])
    assert sr.shape == (160, 200)
    res = enhancer.enhance(om, diameter_px=24.0)  # translated at 2x (48 px), SR output on that grid
    assert res.image.shape == (140, 180) and res.plan.output_scale == 2.0


def test_tiled_translation_matches_whole_image(enhancer):
    """Feathered tiles vs one whole-image pass: the seams stay invisible (max difference reported)."""
    rng = np.random.default_rng(1)
    om = (0.5 + 0.2 * rng.standard_normal((128, 192))).clip(0, 1).astype(np.float32)
    tiled = enhancer.translate(om)
    whole = Enhancer(enhancer.translator, enhancer.superres, EnhanceConfig(tile=256, overlap=32)).translate(om)
    # A U-Net with a 3-level receptive field sees different context near tile borders; the blend keeps
    # the difference small, it cannot make it 0.
    assert np.abs(tiled - whole).max() < 0.05
    sr_t = enhancer.super_resolve(om[:64, :64])
    sr_w = Enhancer(enhancer.translator, enhancer.superres, EnhanceConfig(sr_tile=128, sr_overlap=16)).super_resolve(om[:64, :64])
    assert np.abs(sr_t - sr_w).max() < 0.05


def test_cli_enhance_writes_image_and_plan(tiny_weights, tmp_path, capsys):
    img = (np.random.default_rng(2).random((64, 80)) * 255).astype(np.uint8)
    src = tmp_path / "om.png"
    iio.imwrite(src, img)
    out = tmp_path / "sem_like.png"
    assert main(["enhance", str(src), "--out", str(out), "--weights", str(tiny_weights), "--diameter", "24"]) == 0
    data = iio.imread(out)
    assert data.dtype == np.uint16 and data.shape == (128, 160)
    plan = json.loads((tmp_path / "sem_like.png.json").read_text())["plan"]
    assert plan["output_scale"] == 2.0
    assert main(["translate", str(src), "--out", str(tmp_path / "t.tif"), "--weights", str(tiny_weights)]) == 0
    assert iio.imread(tmp_path / "t.tif").shape == (64, 80)
    code = main(["translate", str(src), "--out", str(tmp_path / "t.bmp"), "--weights", str(tiny_weights)])
    err = capsys.readouterr().err
    assert code == 2 and "--out must end in" in err and "Traceback" not in err


def test_analyze_full_pipeline_reports_input_coordinates(tiny_weights, tmp_path, capsys):
    from srpsa.synth import make_pair, preset

    cfg = preset("primary")
    cfg = replace(cfg, height=96, width=128, fiducials=replace(cfg.fiducials, count=0))
    pair = make_pair(cfg, 0)
    src = tmp_path / "om.png"
    iio.imwrite(src, np.clip(np.rint(pair.om * 255), 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    code = main(["analyze", str(src), "--out", str(out), "--pipeline", "full", "--weights", str(tiny_weights),
                 "--bootstrap", "0", "--diameter-range", "16", "36", "--sr", "model"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "om" / "summary.json").read_text())
    assert summary["enhance"]["output_scale"] == 2.0 and summary["enhance"]["flow"] == "adaptive"
    assert summary["enhance"]["sr_mode"] == "model"
    assert {"translate", "superres", "detector-sem", "detector-om"} <= set(summary["models"])
    assert summary["enhance"]["size_from"] == "diameter_range" and summary["enhance"]["sizing_calibration"] is False
    # no calibration file is the shipped state: recorded above, not warned about (docs/decisions.md)
    assert not any("sizing calibration" in w for w in summary["warnings"])
    assert {"translate", "super_resolve", "detect"} <= set(summary["seconds"])
    table = pd.read_csv(out / "om" / "particles.csv")
    # whatever random generators produce, circles are reported on the input grid
    if len(table):
        assert table["x_px"].between(-1, 128).all() and table["y_px"].between(-1, 96).all()


def test_full_pipeline_guide_and_sizing_calibration(tiny_weights, tmp_path, capsys):
    """The OM detector sets the working scale; a calibration applies only to the models it was fitted on."""
    from srpsa.inference import weights as W
    from srpsa.inference.full import CALIBRATION_FILE, SizingCalibration, flow_key, load_calibration
    from srpsa.synth import make_pair, preset

    root = tmp_path / "w"
    shutil.copytree(tiny_weights, root)
    cfg = preset("primary")
    cfg = replace(cfg, height=96, width=128, fiducials=replace(cfg.fiducials, count=0))
    pair = make_pair(cfg, 1)
    src = tmp_path / "om.png"
    # enlarged 2x: ~40 px particles go through the GANs (below 16 px the OM detector measures them natively)
    om = cv2.resize(pair.om, (256, 192), interpolation=cv2.INTER_CUBIC)
    iio.imwrite(src, np.clip(np.rint(om * 255), 0, 255).astype(np.uint8))
    hashes = {n: W.weights_hash(root / n) for n in (W.TRANSLATOR, W.SUPERRES, W.DETECTOR_SEM, W.DETECTOR_OM)}
    bias = {"bias_rel": -0.04, "bias_px": 0.0, "bias_inv": 0.0, "bias_sigma": 0.0}
    # fitted for the default chain (translate -> detect): not for the one with the SR stage
    (root / CALIBRATION_FILE).write_text(json.dumps(SizingCalibration(bias, hashes, flow_key("adaptive", "none")).to_dict()))
    assert load_calibration(root / CALIBRATION_FILE).mismatch(hashes, flow_key("adaptive", "none")) is None
    assert "paper" in load_calibration(root / CALIBRATION_FILE).mismatch(hashes, "paper")
    assert "not 'adaptive'" in load_calibration(root / CALIBRATION_FILE).mismatch(hashes, flow_key("adaptive", "model"))

    args = ["analyze", str(src), "--pipeline", "full", "--weights", str(root), "--bootstrap", "0"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "a" / "om" / "summary.json").read_text())
    e = summary["enhance"]
    # ~44 px particles (border-cut ones included, unrefined): the OM detector sets the scale
    assert e["size_from"] == "om_detector" and 16.0 < e["guide_median_diameter_px"] < 60.0
    assert e["translate_scale"] == pytest.approx(48.0 / e["guide_median_diameter_px"])
    assert e["sizing_calibration"] is True and not any("sizing calibration" in w for w in summary["warnings"])

    # Other weights (a retrained translator): the calibration is not applied, and it says so.
    torch.manual_seed(1)
    save_generator_release(root / "translate", Pix2PixGenerator(ngf=4, depth=3, attention_levels=1, dropout=0.0).eval(), task="translate")
    assert main(args + ["--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "b" / "om" / "summary.json").read_text())
    assert summary["enhance"]["sizing_calibration"] is False
    assert any("not applied: fitted with other 'translate' weights" in w for w in summary["warnings"])

    (root / CALIBRATION_FILE).write_text("{not json")
    assert main(args + ["--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "not a valid full-pipeline calibration" in err and "Traceback" not in err


def test_onnx_enhancer_matches_torch_and_reexports_on_new_weights(tiny_weights, tmp_path):
    """Both GAN stages through ONNX Runtime give the torch result; the export is cached by weights hash."""
    pytest.importorskip("onnxruntime")
    root = tmp_path / "w"
    shutil.copytree(tiny_weights, root, ignore=shutil.ignore_patterns("*.onnx"))
    cfg = EnhanceConfig(tile=64, overlap=16, sr_tile=32, sr_overlap=8)
    om = np.random.default_rng(3).random((80, 100)).astype(np.float32)
    ref = Enhancer.load(root / "translate", root / "superres", cfg)
    onnx = Enhancer.load(root / "translate", root / "superres", cfg, backend="onnx")
    np.testing.assert_allclose(onnx.translate(om), ref.translate(om), atol=1e-4)
    np.testing.assert_allclose(onnx.super_resolve(om[:40, :50]), ref.super_resolve(om[:40, :50]), atol=1e-4)
    first = sorted(p.name for p in (root / "translate").glob("generator.*.onnx"))
    assert len(first) == 1
    # New translator weights: a new export replaces the stale one.
    torch.manual_seed(7)
    save_generator_release(root / "translate", Pix2PixGenerator(ngf=4, depth=3, attention_levels=1, dropout=0.0).eval(), task="translate")
    again = Enhancer.load(root / "translate", root / "superres", cfg, backend="onnx")
    second = sorted(p.name for p in (root / "translate").glob("generator.*.onnx"))
    assert len(second) == 1 and second != first
    np.testing.assert_allclose(again.translate(om), Enhancer.load(root / "translate", root / "superres", cfg).translate(om), atol=1e-4)


def test_sr_mode_none_outputs_the_translation(enhancer):
    cfg = replace(enhancer.cfg, sr_mode="none")
    fast = Enhancer(enhancer.translator, enhancer.superres, cfg)
    om = np.random.default_rng(4).random((64, 96)).astype(np.float32)
    res = fast.enhance(om, diameter_px=96.0)  # 96 px particles: translated at 0.5 and not super-resolved
    assert res.plan.translate_scale == res.plan.output_scale == pytest.approx(0.5)
    np.testing.assert_allclose(res.image, enhancer.translate(cv2.resize(om, (48, 32), interpolation=cv2.INTER_AREA)), atol=1e-6)
    with pytest.raises(InputError, match="sr_mode"):
        EnhanceConfig(sr_mode="bicubic")


class _ThresholdDetector:
    """Stands in for the OM detector: bright discs on black, sized by their area (exact on clean discs)."""

    def detect(self, image, refine=False):
        from skimage.measure import label, regionprops

        from srpsa.inference.detect import Detection

        props = regionprops(label(image > 0.5))
        c = np.array([[p.centroid[1], p.centroid[0], np.sqrt(p.area / np.pi)] for p in props]).reshape(-1, 3)
        return Detection(c, np.ones(len(c)), {"scales": [1.0]})


def _disc_image(shape, diameters, seed):
    """Non-overlapping discs at random places; returns the image and the diameters of the discs placed."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    placed = []
    for d in diameters:
        for _ in range(50):
            x, y = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
            disc = (xx - x) ** 2 + (yy - y) ** 2 <= (d / 2) ** 2
            if not img[disc].any() and d / 2 + 1 < x < shape[1] - d / 2 - 1 and d / 2 + 1 < y < shape[0] - d / 2 - 1:
                grow = (xx - x) ** 2 + (yy - y) ** 2 <= (d / 2 + 2) ** 2  # keep a gap: no merged blobs
                if not img[grow].any():
                    img[disc] = 1.0
                    placed.append(d)
                    break
    return img, np.array(placed)


class _IndexDetector:
    """Stands in for the OM detector on an image whose pixels hold their own flat index: it recovers
    where the crop it is given lies and returns the known circles centred in it (cut ones included, as
    the network finds them)."""

    def __init__(self, circles: np.ndarray, width: int) -> None:
        self.circles, self.width, self.shapes = circles, width, []

    def detect(self, image, refine=False):
        self.shapes.append(image.shape)
        y0, x0 = divmod(int(image[0, 0]), self.width)
        c = self.circles - [x0, y0, 0]
        inside = (c[:, 0] >= 0) & (c[:, 0] < image.shape[1]) & (c[:, 1] >= 0) & (c[:, 1] < image.shape[0])
        from srpsa.inference.detect import Detection

        return Detection(c[inside], np.ones(int(inside.sum())), {"scales": [1.0]})


def test_guide_on_large_image_samples_a_window_without_edge_bias():
    """Above ``max_pixels`` the guide reads a centred window; the edge-corrected median stays unbiased."""
    from srpsa.inference.guide import GuideConfig, size_guide
    from srpsa.inference.window import centred_window

    h, w = 1200, 1800
    rng = np.random.default_rng(0)
    d = rng.uniform(10.0, 250.0, 20000)
    circles = np.column_stack([rng.uniform(0, w, d.size), rng.uniform(0, h, d.size), d / 2])
    om = np.arange(h * w, dtype=np.float32).reshape(h, w)  # exact up to 2**24
    det = _IndexDetector(circles, w)
    med, (lo, hi) = size_guide(det, om, GuideConfig(max_pixels=400_000))
    assert det.shapes == [(516, 774)]  # one window of <= 400k px with the image's aspect ratio
    assert med == pytest.approx(130.0, rel=0.05)  # the median of U(10, 250)
    # range: median / 3 below (the 2 % quantile / 1.3 is smaller), the 98 % quantile x 1.3 above (< median x 3)
    assert lo == pytest.approx(med / 3) and hi == pytest.approx(245.2 * 1.3, rel=0.03)
    # Without the edge correction the large particles, more often cut by the window, would be lost:
    ys, xs = centred_window((h, w), 400_000)
    c = circles[(circles[:, 0] - circles[:, 2] >= xs.start) & (circles[:, 0] + circles[:, 2] <= xs.stop - 1)
                & (circles[:, 1] - circles[:, 2] >= ys.start) & (circles[:, 1] + circles[:, 2] <= ys.stop - 1)]
    assert np.median(2 * c[:, 2]) < 0.9 * 130.0
    # Below the limit the whole image is read.
    det.shapes.clear()
    med_all, _ = size_guide(det, om, GuideConfig(max_pixels=0))
    assert det.shapes == [(h, w)] and med_all == pytest.approx(130.0, rel=0.05)


def test_guide_falls_back_to_shrunk_image_when_window_holds_few_particles():
    from srpsa.inference.guide import GuideConfig, size_guide

    img, placed = _disc_image((1000, 1000), [180.0] * 12, seed=2)
    det = _ThresholdDetector()
    med, _ = size_guide(det, img, GuideConfig(max_pixels=90_000, min_guide_particles=5))
    assert abs(med / float(np.median(placed)) - 1) < 0.05


def test_guide_tail_quantiles_narrow_the_detector_range():
    from srpsa.inference.guide import GuideConfig, size_guide

    img, placed = _disc_image((600, 600), [30.0] * 60, seed=3)
    med, (lo, hi) = size_guide(_ThresholdDetector(), img, GuideConfig(tail_quantile=0.02, tail_margin=1.3))
    assert med == pytest.approx(30.0, rel=0.05)
    assert lo == pytest.approx(med / 1.3, rel=0.05) and hi == pytest.approx(med * 1.3, rel=0.05)


class _ResizeEnhancer:
    """Stands in for the GANs: the 'SEM-like' image is the input resized so particles span 48 px."""

    cfg = EnhanceConfig(sr_mode="none")

    def __init__(self) -> None:
        self.calls: list[float] = []

    def plan(self, om, diameter_px=None):
        from srpsa.inference.enhance import EnhancePlan

        s = 48.0 / diameter_px
        return EnhancePlan(diameter_px, s, s, s)

    def enhance(self, om, diameter_px=None, timer=None):
        from srpsa.inference.enhance import EnhancePlan, EnhanceResult

        self.calls.append(diameter_px)
        s = 48.0 / diameter_px
        img = cv2.resize(om, (round(om.shape[1] * s), round(om.shape[0] * s)), interpolation=cv2.INTER_LINEAR)
        return EnhanceResult(img, EnhancePlan(diameter_px, s, s, s))


class _ScaledDetector(_ThresholdDetector):
    """A detector that reads every particle ``factor`` times too small (the OM detector on bead photos)."""

    nms_thresh = 0.6

    @property
    def cfg(self):
        from srpsa.models.detector_config import DetectorConfig

        return DetectorConfig()

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    def detect(self, image, refine=False, diameter_range=None, extend=None):
        found = super().detect(image, refine)
        return found._replace(circles=found.circles * [1.0, 1.0, self.factor])


# a guide 2.2x too large is kept: the check only re-plans upward (a small SEM-side median is texture)
@pytest.mark.parametrize("om_factor, replanned", [(1.0, False), (0.8, False), (0.45, True), (2.2, False)])
def test_full_pipeline_replans_when_the_sem_side_disagrees_with_the_om_guide(om_factor, replanned):
    """An OM guide more than verify_ratio too small is caught on the SEM-like image and re-planned."""
    from srpsa.inference.full import FullPipeline

    img, placed = _disc_image((600, 600), [40.0] * 40, seed=4)
    enh = _ResizeEnhancer()
    pipe = FullPipeline(enh, _ScaledDetector(), _ScaledDetector(om_factor))
    res = pipe.detect(img, refine=False)
    assert res.info["size_from"] == ("sem_check" if replanned else "om_detector")
    assert res.info["verify_median_diameter_px"] == pytest.approx(40.0, rel=0.05)
    assert enh.calls[0] == pytest.approx(40.0 * om_factor, rel=0.05)
    assert len(enh.calls) == (2 if replanned else 1)
    if replanned:  # the second plan is the SEM side's: particles at 48 px, circles in input px
        assert res.info["enhance"]["diameter_px"] == pytest.approx(40.0, rel=0.05)
    assert np.median(2 * res.circles[:, 2]) == pytest.approx(40.0, rel=0.05)
    assert len(res.circles) == len(placed)
    # verify off: the OM guide is taken as it is
    enh.calls.clear()
    pipe = FullPipeline(enh, _ScaledDetector(), _ScaledDetector(om_factor), guide=GuideConfig(verify=False))
    assert pipe.detect(img, refine=False).info["size_from"] == "om_detector" and len(enh.calls) == 1


def test_full_pipeline_runs_block_by_block_when_the_enhanced_image_is_large(monkeypatch):
    """Above BLOCK_PIXELS of enhanced pixels the chain runs block by block and finds the same particles."""
    from srpsa.inference import blocks
    from srpsa.inference.full import FullPipeline

    img, placed = _disc_image((600, 600), [40.0] * 40, seed=4)
    single = FullPipeline(_ResizeEnhancer(), _ScaledDetector(), _ScaledDetector()).detect(img, refine=False)
    monkeypatch.setattr(blocks, "BLOCK_PIXELS", 200_000)
    enh = _ResizeEnhancer()
    res = FullPipeline(enh, _ScaledDetector(), _ScaledDetector()).detect(img, refine=False)
    assert res.info["blocks"] > 1 and "blocks" not in single.info
    assert len(res.circles) == len(single.circles) == len(placed)
    key = lambda c: np.round(c[np.lexsort((c[:, 1], c[:, 0]))], 1)  # noqa: E731
    np.testing.assert_allclose(key(res.circles), key(single.circles), atol=0.6)


def test_full_pipeline_measures_small_particles_natively():
    """A guide below native_below_px: the OM detector's own detections, no GAN call (bounded cost)."""
    from srpsa.inference.full import FullPipeline

    img, placed = _disc_image((300, 300), [12.0] * 40, seed=5)
    enh = _ResizeEnhancer()
    res = FullPipeline(enh, _ScaledDetector(), _ScaledDetector()).detect(img, refine=False)
    assert res.info["route"] == "native" and enh.calls == [] and res.info["enhance"] is None
    assert len(res.circles) == len(placed)


def test_cli_enhance_picks_the_scale_analyze_picks(tiny_weights, tmp_path, capsys):
    """`srpsa enhance` runs the full pipeline's own size guide (OM detector + SEM-side check)."""
    from srpsa.synth import make_pair, preset

    cfg = preset("primary")
    cfg = replace(cfg, height=96, width=128, fiducials=replace(cfg.fiducials, count=0))
    src = tmp_path / "om.png"
    iio.imwrite(src, np.clip(np.rint(make_pair(cfg, 1).om * 255), 0, 255).astype(np.uint8))
    out = tmp_path / "e.png"
    assert main(["enhance", str(src), "--out", str(out), "--weights", str(tiny_weights)]) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "e.png.json").read_text())
    args = ["analyze", str(src), "--out", str(tmp_path / "a"), "--weights", str(tiny_weights), "--bootstrap", "0", "--sr", "model"]
    assert main(args) == 0, capsys.readouterr().err
    e = json.loads((tmp_path / "a" / "om" / "summary.json").read_text())["enhance"]
    if e.get("route") == "native":
        # bounded cost: a guide below native_below_px sends analyze to the OM detector at native scale
        # (no working scale, no SEM-side check); the enhance command still enhances, from the same guide
        assert e["size_from"] == "om_detector" and meta["size_from"] in ("om_detector", "sem_check")
        assert meta["guide_median_diameter_px"] == pytest.approx(e["guide_median_diameter_px"])
        assert meta["plan"]["translate_scale"] <= EnhanceConfig().max_upscale + 1e-9
        return
    assert meta["size_from"] == e["size_from"]
    assert meta["plan"]["output_scale"] == pytest.approx(e["output_scale"])
    h, w = iio.imread(out).shape
    assert abs(h - 96 * e["output_scale"]) <= 1 and abs(w - 128 * e["output_scale"]) <= 1
