"""Multi-scale inference (coordinate mapping, tiling, thresholds), scale estimation and refinement."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from srpsa.inference.detect import Detector
from srpsa.inference.refine import apply_bias, calibrate_bias, refine_circles
from srpsa.inference.scale import choose_scales, estimate_particle_diameter
from srpsa.models.detector import SRPSADetector, encode_targets
from srpsa.models.detector_release import load_weights, save_weights
from srpsa.models.detector_config import STRIDE, DetectorConfig, InferenceConfig, ModelConfig, RefineConfig


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def render_discs(shape, circles, *, fg=0.8, bg=0.2, blur=1.0, noise=0.0, seed=0, ss=4):
    """Anti-aliased discs (supersampled ``ss`` times), Gaussian blur, Gaussian noise."""
    h, w = shape
    mask = np.zeros((h * ss, w * ss), np.float32)
    for x, y, r in circles:  # each disc only within its bounding box (supersampled pixel centres)
        x0, x1 = max(int((x - r - 1) * ss), 0), min(int((x + r + 2) * ss), w * ss)
        y0, y1 = max(int((y - r - 1) * ss), 0), min(int((y + r + 2) * ss), h * ss)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        inside = ((xx + 0.5) / ss - 0.5 - x) ** 2 + ((yy + 0.5) / ss - 0.5 - y) ** 2 <= r * r
        mask[y0:y1, x0:x1][inside] = 1.0
    img = bg + (fg - bg) * cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def grid_circles(shape, d, fill=0.8, jitter=0.1, seed=0):
    """Non-overlapping discs of diameter ``d`` (+-10 %) on a jittered grid."""
    rng = np.random.default_rng(seed)
    pitch = d / fill
    ys = np.arange(pitch / 2, shape[0] - pitch / 2 + 1e-9, pitch)
    xs = np.arange(pitch / 2, shape[1] - pitch / 2 + 1e-9, pitch)
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    n = cx.size
    r = d / 2 * rng.uniform(0.9, 1.1, n)
    slack = np.maximum(pitch / 2 - r, 0) * jitter
    return np.column_stack([cx.ravel() + rng.uniform(-1, 1, n) * slack, cy.ravel() + rng.uniform(-1, 1, n) * slack, r])


class OracleNet(nn.Module):
    """Stands in for the network: outputs the perfect maps of known full-resolution circles.

    It infers the scale from the input size, so it checks the whole chain: resize, decode, mapping back.
    """

    def __init__(self, circles: np.ndarray, full_shape: tuple[int, int], max_radius: float = 5.0) -> None:
        super().__init__()
        self.circles, self.full_shape = circles, full_shape
        self.cfg = ModelConfig(max_radius=max_radius)
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        h, w = x.shape[-2:]
        sh, sw = self.seen_shape
        sx, sy = sw / self.full_shape[1], sh / self.full_shape[0]
        c = self.circles
        scaled = np.column_stack([(c[:, 0] + 0.5) * sx - 0.5, (c[:, 1] + 0.5) * sy - 0.5, c[:, 2] * np.sqrt(sx * sy)])
        maps = encode_targets(scaled, (h // STRIDE, w // STRIDE), max_radius=self.cfg.max_radius)[:4]
        return torch.from_numpy(maps)[None].expand(x.shape[0], -1, -1, -1)


def oracle_detector(circles, shape, cfg=None):
    cfg = cfg or DetectorConfig()
    net = OracleNet(circles, shape)
    det = Detector(net, cfg, thresholds={"p_thresh": 0.5, "nms_thresh": 0.6})
    orig = det.predict_maps

    def predict(img, stats=None):
        net.seen_shape = img.shape
        return orig(img, stats)

    det.predict_maps = predict
    return det


def test_detection_at_one_eighth_maps_back_to_full_resolution():
    shape = (250, 333)  # not multiples of 8: checks the exact per-axis resize factors
    circles = np.array([[101.3, 57.8, 30.0], [20.0, 200.5, 22.0], [300.2, 120.0, 40.0]])
    det = oracle_detector(circles, shape)
    got, scores, _ = det.detect(np.zeros(shape, np.float32), scales=[0.125], refine=False)
    assert len(got) == 3 and np.all(scores == 1.0)
    got = got[np.argsort(got[:, 0])]
    want = circles[np.argsort(circles[:, 0])]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_two_scales_each_answer_for_their_band_and_merge():
    shape = (256, 256)
    # Small particles (r = 8 px: 2 cells at scale 1, 0.5 cells at 1/4) and big ones (r = 48 px: 12 cells
    # at 1, 3 cells at 1/4): each must come from exactly one scale, with no duplicates after merging.
    circles = np.array([[40.0, 40.0, 8.0], [60.0, 200.0, 8.0], [150.0, 70.0, 48.0], [180.0, 190.0, 48.0]])
    det = oracle_detector(circles, shape)
    cands = det.candidates(np.zeros(shape, np.float32), [1.0, 0.25])
    np.testing.assert_allclose(np.sort(cands.circles[cands.scale_index == 0, 2]), [8.0, 8.0], atol=1e-4)
    np.testing.assert_allclose(np.sort(cands.circles[cands.scale_index == 1, 2]), [48.0, 48.0], atol=1e-4)
    got, _ = det.merge(cands)
    assert len(got) == 4


def test_pyramid_grows_when_detections_sit_below_the_band():
    shape = (128, 128)
    rng = np.random.default_rng(0)
    circles = np.column_stack([rng.uniform(8, 120, 12), rng.uniform(8, 120, 12), np.full(12, 6.0)])
    circles = circles[np.unique(np.floor((circles[:, :2] + 0.5) / 4).astype(int), axis=0, return_index=True)[1]]
    cfg = DetectorConfig()
    cfg.inference.auto_scale = False  # start from the configured scale only
    cfg.inference.scales = (0.25,)  # r = 6 px -> 0.375 cells: far below the band
    det = oracle_detector(circles, shape, cfg)
    got, _, info = det.detect(np.zeros(shape, np.float32), refine=False)
    assert info["scales"] == [1.0, 0.5, 0.25] and info["scales_added"] == [0.5, 1.0]
    np.testing.assert_allclose(np.sort(got[:, 2]), np.full(len(circles), 6.0), atol=1e-4)


def test_pyramid_extends_down_for_a_coarse_minority():
    # 3 large particles (r = 30 px: 7.5 cells at scale 1, beyond the head's 5-cell range) beside 48
    # small ones: 6 % of the detections, under the 10 % an upward extension needs, yet a smaller scale
    # is cheap and without it the coarse tail is lost (missed or sized at 5 cells).
    shape = (256, 448)
    big = np.array([[60.0, 60.0, 30.0], [60.0, 190.0, 30.0], [150.0, 128.0, 30.0]])
    xs, ys = np.meshgrid(np.arange(230.0, 440.0, 30.0), np.arange(20.0, 250.0, 34.0))
    small = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, 6.0)])
    circles = np.vstack([big, small])
    cfg = DetectorConfig()
    cfg.inference.auto_scale = False
    cfg.inference.scales = (1.0,)
    det = oracle_detector(circles, shape, cfg)
    got, _, info = det.detect(np.zeros(shape, np.float32), refine=False)
    assert info["scales"] == [1.0, 0.5]
    assert len(got) == len(circles)
    np.testing.assert_allclose(np.sort(got[:, 2])[-3:], [30.0, 30.0, 30.0], atol=1e-3)
    # With the upward rule's threshold no scale is added (the oracle, unlike the trained head, does not
    # saturate at 5 cells, so only the pyramid is checked here).
    cfg.inference.extend_down_fraction = cfg.inference.extend_fraction
    det = oracle_detector(circles, shape, cfg)
    assert det.detect(np.zeros(shape, np.float32), refine=False).info["scales"] == [1.0]


def test_tiled_maps_equal_whole_image_maps():
    torch.manual_seed(0)
    net = SRPSADetector(ModelConfig(channels=(4, 4, 8, 8, 8), dilations=(1, 1, 1, 2, 2), head_kernel=3))
    img = np.random.default_rng(0).uniform(size=(150, 210)).astype(np.float32)
    whole = Detector(net, DetectorConfig()).predict_maps(img)
    cfg = DetectorConfig()
    cfg.inference.tile, cfg.inference.tile_margin = 64, 24  # many tiles, margin > receptive radius (22 px)
    tiled = Detector(net, cfg).predict_maps(img)
    assert whole.shape == tiled.shape == (4, 38, 53)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_weights_round_trip_and_stored_thresholds_are_used(tmp_path):
    torch.manual_seed(0)
    net = SRPSADetector(ModelConfig(channels=(4, 4, 8, 8, 8)))
    with torch.no_grad():  # a constant network: p = 0.6 everywhere
        for p in net.parameters():
            p.zero_()
        net.head.bias.copy_(torch.tensor([np.log(0.6 / 0.4), 0.0, 0.0, 0.5]))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.3)
    cfg = DetectorConfig()
    save_weights(tmp_path / "w", net, cfg, thresholds={"p_thresh": 0.7, "nms_thresh": 0.5}, metrics={"f1": float("nan")})
    model, cfg2, meta = load_weights(tmp_path / "w")
    assert cfg2 == cfg and meta["thresholds"] == {"p_thresh": 0.7, "nms_thresh": 0.5} and meta["metrics"]["f1"] is None
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    det = Detector.load(tmp_path / "w")
    assert det.thresholds == {"p_thresh": 0.7, "nms_thresh": 0.5}
    img = np.zeros((64, 64), np.float32)
    assert len(det.detect(img, scales=[1.0], refine=False)[0]) == 0
    assert len(det.detect(img, scales=[1.0], refine=False, p_thresh=0.5)[0]) > 0
    # A replaced weights file is refused.
    (tmp_path / "w" / "detector.safetensors").write_bytes(b"not the weights")
    from srpsa.errors import InputError

    with pytest.raises(InputError, match="sha256"):
        Detector.load(tmp_path / "w")


@pytest.mark.parametrize("d", [10.0, 30.0, 90.0])
@pytest.mark.parametrize("invert", [False, True])
def test_scale_estimator_on_synthetic_discs(d, invert):
    shape = (256, 256) if d < 50 else (400, 400)
    img = render_discs(shape, grid_circles(shape, d, fill=0.75, seed=int(d)), blur=1.0, noise=0.02)
    est, conf = estimate_particle_diameter(1.0 - img if invert else img)
    assert abs(est / d - 1) < 0.2
    assert conf > 0.3


def test_choose_scales_cover_the_range_inside_the_band():
    cfg = InferenceConfig()
    for d_min, d_max in [(8, 8), (10, 300), (20, 40), (50, 60), (14, 90)]:
        scales = choose_scales(d_min, d_max, cfg)
        assert scales == sorted(scales, reverse=True)
        lo, hi = cfg.target_band
        for d in np.geomspace(d_min, d_max, 25):
            cells = [d * s / 8 for s in scales]
            clipped = scales[0] >= cfg.max_scale and d * scales[0] / 8 < lo
            assert clipped or any(lo - 1e-9 <= c <= hi + 1e-9 for c in cells)
    assert choose_scales(20, 40) == pytest.approx([0.645], abs=1e-3)
    # Clipping at max_scale must not leave near-duplicate scales (each would cost a full pass).
    for d_min in np.geomspace(1.5, 12, 40):
        sc = choose_scales(float(d_min), float(d_min) * 6, cfg)
        assert all(a / b >= np.sqrt(cfg.scale_step) - 1e-9 for a, b in zip(sc, sc[1:]))


def test_scale_estimator_on_real_images(real_data):
    bf = real_data / "trackpy_brightfield" / "brightfield" / "bf_0000.png"
    beads = real_data / "polymer_beads_om" / "monodisperse" / "DSC00002.JPG"
    if not bf.is_file() or not beads.is_file():
        pytest.skip("real images not found")
    from srpsa.io import read_image

    d, _ = estimate_particle_diameter(read_image(bf).data)
    assert 14 * 0.7 < d < 14 * 1.3  # 2.12 um spheres at 0.152 um/px: 14 px nominal
    d, _ = estimate_particle_diameter(read_image(beads).data)
    # The README says 70-100 px, but on the full-resolution JPEG the beads measure about 110-180 px
    # across (docs/detector.md); the estimate must land in that span.
    assert 100 < d < 190


@pytest.mark.parametrize("r", [8.0, 20.0, 45.0])
@pytest.mark.parametrize("invert", [False, True])
def test_refinement_recovers_blurred_disc_radius(r, invert):
    size = int(6 * r)
    true = np.array([[size / 2 + 0.37, size / 2 - 0.21, r]])
    img = render_discs((size, size), true, blur=1.5, noise=0.02, seed=3)
    if invert:
        img = 1.0 - img
    start = true * [1, 1, 1.15] + [0.8, -0.6, 0]  # 15 % too large, centre off by 1 px
    out, ok = refine_circles(img, start, RefineConfig())
    assert ok[0]
    assert abs(out[0, 2] / r - 1) < 0.02
    assert np.hypot(*(out[0, :2] - true[0, :2])) < 0.2


def test_refinement_is_vectorised_over_touching_particles():
    shape = (200, 200)
    circles = grid_circles(shape, 24.0, fill=0.97, jitter=0.0, seed=1)  # nearly touching neighbours
    img = render_discs(shape, circles, blur=0.8, noise=0.01)
    rng = np.random.default_rng(2)
    start = circles * np.column_stack([np.ones(len(circles)), np.ones(len(circles)), rng.uniform(0.88, 1.12, len(circles))])
    out, ok = refine_circles(img, start, RefineConfig())
    assert ok.mean() > 0.95
    err = np.abs(out[ok, 2] / circles[ok, 2] - 1)
    assert np.median(err) < 0.02
    # Bias calibration: a known inward offset of 0.5 px is recovered.
    bias = calibrate_bias(circles[:, 2] - 0.5, circles[:, 2], terms=("px",))
    assert bias["bias_px"] == pytest.approx(0.5)


def test_bias_calibration_follows_the_measured_edge_width():
    """Edges that sit further inside the wider they are (SEM rims) are corrected per particle."""
    rng = np.random.default_rng(3)
    r_true = rng.uniform(5, 40, 400)
    sigma = rng.uniform(0.3, 3.0, 400)
    r_edge = r_true - 0.4 * sigma + 0.1 + rng.normal(0, 0.02, 400)
    bias = calibrate_bias(r_edge, r_true, sigma=sigma, terms=("px", "sigma"))
    assert bias["bias_sigma"] == pytest.approx(0.4, abs=0.01) and bias["bias_px"] == pytest.approx(-0.1, abs=0.01)
    cfg = RefineConfig(**{k: v for k, v in bias.items()})
    np.testing.assert_allclose(apply_bias(r_edge, cfg, sigma), r_true, atol=0.08)
    # Without sigma the term is neither fitted nor applied.
    assert calibrate_bias(r_edge, r_true, terms=("px", "sigma"))["bias_sigma"] == 0.0
    # refine_circles reports the width it measured: larger for a blurrier image of the same discs.
    circles = np.array([[50.0, 50.0, 15.0], [120.0, 60.0, 20.0]])
    sharp = render_discs((140, 180), circles, blur=0.7, noise=0.0)
    soft = render_discs((140, 180), circles, blur=2.5, noise=0.0)
    s_sharp = refine_circles(sharp, circles, RefineConfig(), return_sigma=True)[2]
    s_soft = refine_circles(soft, circles, RefineConfig(), return_sigma=True)[2]
    assert np.all(s_soft > s_sharp + 1.0)


def test_suppress_clusters_drops_cluster_circle_keeps_satellite_particle():
    from srpsa.inference.nms import suppress_clusters

    # A big circle answering a cluster of four touching small particles: dropped.
    cluster = np.array([[50, 50, 20.0], [42, 42, 8], [58, 42, 8], [42, 58, 8], [58, 58, 8]])
    out, sc = suppress_clusters(cluster, np.ones(5), 0.5)
    assert len(out) == 4 and not np.any(out[:, 2] == 20.0) and len(sc) == 4
    # A big particle with two small satellites near its rim: kept (they cover ~2 % of it).
    satellites = np.array([[50, 50, 30.0], [75, 50, 3], [50, 77, 3]])
    out, _ = suppress_clusters(satellites, np.ones(3), 0.5)
    assert len(out) == 3
    # Disabled.
    out, _ = suppress_clusters(cluster, np.ones(5), 0.0)
    assert len(out) == 5
