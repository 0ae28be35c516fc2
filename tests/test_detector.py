"""SR-PSA network, target encoding/decoding, loss (eq. 4-5), circle NMS and the detector config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from srpsa.errors import ConfigError
from srpsa.inference.nms import circle_nms
from srpsa.losses.detection import detection_loss
from srpsa.models.detector import T_POS, T_R, T_WNEG, T_X, SRPSADetector, decode_maps, encode_targets
from srpsa.models.detector_config import LossConfig, ModelConfig, config_from_dict, config_to_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "detector"
TINY = ModelConfig(channels=(4, 4, 8, 8, 8))


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_output_shape_and_ranges():
    torch.manual_seed(0)
    net = SRPSADetector(TINY).eval()
    out = net(torch.randn(2, 1, 32, 48))
    assert out.shape == (2, 4, 8, 12)
    assert torch.all((out[:, :3] >= 0) & (out[:, :3] <= 1))
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 1, 30, 32))
    rebuilt = SRPSADetector.from_model_args(net.model_args())
    assert rebuilt.model_args() == net.model_args()


def _one_per_cell(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    cells = rng.choice(h * w, size=n, replace=False)
    ci, cj = np.divmod(cells, w)
    x = (cj + rng.uniform(0, 1, n)) * 4 - 0.5
    y = (ci + rng.uniform(0, 1, n)) * 4 - 0.5
    r = rng.uniform(1.0, 25.0, n)
    return np.column_stack([x, y, r])


def test_encode_decode_round_trip_is_exact():
    rng = np.random.default_rng(0)
    circles = _one_per_cell(rng, 16, 20, 60)
    maps = encode_targets(circles, (16, 20), max_radius=5.0)
    got, scores = decode_maps(maps[:4], max_radius=5.0, p_thresh=0.5)
    order_in = np.lexsort((circles[:, 0], circles[:, 1]))
    order_out = np.lexsort((got[:, 0], got[:, 1]))
    np.testing.assert_allclose(got[order_out], circles[order_in], atol=1e-5)
    assert np.all(scores == 1.0)
    assert maps[T_POS].sum() == 60


def test_encode_collision_keeps_larger_and_band_ignores():
    # Two centres in cell (2, 3): the larger one is encoded.
    circles = np.array([[13.0, 9.0, 6.0], [14.0, 10.0, 10.0], [30.0, 30.0, 60.0], [50.0, 10.0, 2.0]])
    maps = encode_targets(circles, (16, 16), max_radius=5.0, radius_band=(1.0, 4.5), neighbour_weight=0.25)
    assert maps[T_POS].sum() == 1
    assert maps[T_R, 2, 3] == pytest.approx(10.0 / 4 / 5.0)
    assert maps[T_X, 2, 3] == pytest.approx((14.0 + 0.5) / 4 - 3)
    # Out-of-band particles (r = 15 cells, r = 0.5 cells): centre + neighbours ignored, not negatives.
    assert maps[T_WNEG, 7, 7] == 0 and maps[T_WNEG, 6, 8] == 0
    assert maps[T_WNEG, 2, 12] == 0
    # Neighbours of a positive are soft negatives; far cells are plain negatives.
    assert maps[T_WNEG, 2, 4] == pytest.approx(0.25)
    assert maps[T_WNEG, 12, 1] == 1.0


def test_loss_decreases_on_tiny_overfit_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(2, 1, 32, 32)).astype(np.float32))
    t = torch.from_numpy(np.stack([encode_targets(_one_per_cell(rng, 8, 8, 6) * [1, 1, 0.4], (8, 8), max_radius=5.0) for _ in range(2)]))
    net = SRPSADetector(TINY)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss, parts = detection_loss(net(x), t, LossConfig())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"x", "y", "r", "p"}
    assert losses[-1] < 0.3 * losses[0]


def test_paper_masked_loss_never_penalises_false_positives():
    t = torch.from_numpy(encode_targets(np.array([[5.0, 5.0, 6.0]]), (4, 4), max_radius=5.0))[None]
    pred = t[:, :4].clone()
    pred[:, 0] = 1.0  # confident everywhere: false positives in 15 of 16 cells
    masked, _ = detection_loss(pred, t, LossConfig(p_loss="paper_masked"))
    balanced, _ = detection_loss(pred, t, LossConfig(p_loss="balanced"))
    assert float(masked) == 0.0
    assert float(balanced) > 0.2


def test_nms_hand_made_cases():
    circles = np.array([
        [10.0, 10.0, 5.0],   # A
        [11.0, 10.0, 5.2],   # duplicate of A, lower score
        [20.0, 10.0, 5.0],   # touching A: kept
        [50.0, 50.0, 20.0],  # big particle
        [55.0, 52.0, 4.0],   # small false detection inside the big one
        [80.0, 80.0, 3.0],   # isolated
    ])
    scores = np.array([0.9, 0.8, 0.85, 0.95, 0.6, 0.3])
    kept, ks = circle_nms(circles, scores, 0.6)
    assert ks.tolist() == [0.95, 0.9, 0.85, 0.3]
    np.testing.assert_array_equal(kept, circles[[3, 0, 2, 5]])
    merged, _ = circle_nms(circles[:2], scores[:2], 0.6, merge="weighted")
    np.testing.assert_allclose(merged[0], (0.9 * circles[0] + 0.8 * circles[1]) / 1.7)
    empty, es = circle_nms(np.zeros((0, 3)), np.zeros(0), 0.6)
    assert empty.shape == (0, 3) and es.shape == (0,)


def test_nms_chain_is_greedy():
    # B is suppressed by A; C (close to B only) survives because a suppressed circle suppresses nothing.
    circles = np.array([[0.0, 0, 10], [5.0, 0, 10], [11.0, 0, 10]])
    kept, _ = circle_nms(circles, np.array([0.9, 0.8, 0.7]), 0.6)
    np.testing.assert_array_equal(kept[:, 0], [0.0, 11.0])


def test_shipped_configs_load_and_paper_defaults():
    paper = load_config(CONFIGS / "paper.toml")
    assert paper.train.lr == 1e-4 and paper.train.weight_decay == 1e-6 and paper.train.batch_size == 4
    assert paper.loss.lambda_p == 5.0 and paper.model.max_radius == 5.0
    assert paper.inference.scales == (0.25, 0.125)
    for f in sorted(CONFIGS.glob("*.toml")):
        cfg = load_config(f)
        assert config_from_dict(config_to_dict(cfg)) == cfg


def test_config_rejects_unknown_and_ill_typed(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nchanels = [1, 2, 3, 4, 5]\n")
    with pytest.raises(ConfigError, match="unknown config key model.chanels"):
        load_config(bad)
    with pytest.raises(ConfigError, match="train.lr must be a number"):
        config_from_dict({"train": {"lr": "fast"}})
    with pytest.raises(ConfigError, match="5 entries"):
        config_from_dict({"model": {"channels": [8, 8]}})
