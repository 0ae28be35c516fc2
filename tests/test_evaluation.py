"""Circle matching, detection metrics, size-distribution comparison, pairing and `srpsa evaluate detect`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from srpsa.errors import InputError
from srpsa.evaluation import (
    aggregate,
    compare_size_distributions,
    detection_count_table,
    evaluate_image,
    match_circles,
    paper_layout,
    to_markdown,
)
from srpsa.evaluation.pairing import key_of

GT = np.array([[10.0, 10.0, 4.0], [30.0, 10.0, 6.0], [50.0, 40.0, 8.0]])


def _no_nan(d: dict) -> bool:
    return all(not (isinstance(v, float) and math.isnan(v)) for v in d.values())


# --- matching ---------------------------------------------------------------------------------------


def test_perfect_match():
    m = match_circles(GT, GT[::-1])
    assert m.n_matched == 3
    assert np.array_equal(m.gt_idx, [0, 1, 2]) and np.array_equal(m.pred_idx, [2, 1, 0])
    assert np.allclose(m.distances, 0)
    met = evaluate_image(GT, GT).metrics
    assert (met.tp, met.fp, met.fn, met.f1, met.percent_detected) == (3, 0, 0, 1.0, 100.0)
    assert met.radius_rmse_px == 0 and met.centre_median_error_px == 0


@pytest.mark.parametrize(("shift", "matched"), [(1.9, True), (2.0, True), (2.1, False)])
def test_shift_against_half_radius(shift, matched):
    gt = np.array([[20.0, 20.0, 4.0]])  # admissible distance 0.5 * 4 = 2 px
    pred = gt + [shift, 0.0, 0.0]
    met = evaluate_image(gt, pred).metrics
    assert (met.tp, met.fp, met.fn) == ((1, 0, 0) if matched else (0, 1, 1))


def test_match_factor_is_a_parameter():
    gt = np.array([[20.0, 20.0, 4.0]])
    pred = gt + [3.0, 0.0, 0.0]
    assert match_circles(gt, pred).n_matched == 0
    assert match_circles(gt, pred, factor=1.0).n_matched == 1
    with pytest.raises(InputError):
        match_circles(gt, pred, factor=0)


def test_duplicate_prediction_is_one_tp_one_fp_and_the_closer_wins():
    gt = np.array([[20.0, 20.0, 6.0]])
    pred = np.array([[21.5, 20.0, 6.0], [20.5, 20.0, 6.0]])
    m = match_circles(gt, pred)
    assert m.pred_idx.tolist() == [1] and m.unmatched_pred().tolist() == [0]
    met = evaluate_image(gt, pred).metrics
    assert (met.tp, met.fp, met.fn) == (1, 1, 0)
    assert met.precision == 0.5 and met.recall == 1.0 and met.percent_detected == 200.0


def test_cardinality_beats_distance():
    # A greedy nearest match gives p0 to g0 and leaves g1 unmatched; the optimum matches both.
    gt = np.array([[0.0, 0.0, 4.0], [3.0, 0.0, 4.0]])
    pred = np.array([[1.0, 0.0, 4.0], [-1.5, 0.0, 4.0]])
    m = match_circles(gt, pred)
    assert m.n_matched == 2
    assert dict(zip(m.gt_idx.tolist(), m.pred_idx.tolist())) == {0: 1, 1: 0}


@pytest.mark.parametrize("seed", range(5))
def test_sparse_matching_equals_dense_optimum(seed):
    rng = np.random.default_rng(seed)
    gt = np.column_stack([rng.uniform(0, 60, (40, 2)), rng.uniform(3, 8, 40)])
    pred = np.column_stack([rng.uniform(0, 60, (45, 2)), rng.uniform(3, 8, 45)])
    m = match_circles(gt, pred)
    d = np.hypot(gt[:, None, 0] - pred[None, :, 0], gt[:, None, 1] - pred[None, :, 1])
    ok = d <= 0.5 * gt[:, 2:3]
    big = d[ok].sum() + 1.0
    rows, cols = linear_sum_assignment(np.where(ok, d, big))
    keep = ok[rows, cols]
    assert m.n_matched == keep.sum()
    assert m.distances.sum() == pytest.approx(d[rows[keep], cols[keep]].sum())
    assert np.all(m.distances <= 0.5 * gt[m.gt_idx, 2] + 1e-12)
    assert len(set(m.pred_idx.tolist())) == m.n_matched


@pytest.mark.parametrize(
    ("gt", "pred", "expected"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3)), (1.0, 1.0, 1.0, 100.0)),
        (GT, np.zeros((0, 3)), (1.0, 0.0, 0.0, 0.0)),
        (np.zeros((0, 3)), GT, (0.0, 1.0, 0.0, None)),
    ],
)
def test_empty_inputs_give_defined_metrics(gt, pred, expected):
    met = evaluate_image(gt, pred).metrics
    assert (met.precision, met.recall, met.f1, met.percent_detected) == expected
    assert met.radius_rmse_px is None and met.centre_median_error_px is None
    assert _no_nan(met.to_dict())
    json.dumps(met.to_dict(), allow_nan=False)


def test_bad_circles_raise_input_error():
    with pytest.raises(InputError):
        match_circles(np.array([[1.0, 2.0, np.nan]]), GT)
    with pytest.raises(InputError):
        match_circles(np.ones((2, 2)), GT)


# --- metrics ----------------------------------------------------------------------------------------


def test_radius_and_centre_errors():
    pred = GT * [1, 1, 1.1] + [1.0, 0.0, 0.0]  # radii 10 % too large, centres 1 px off
    met = evaluate_image(GT, pred).metrics
    assert met.radius_median_abs_rel_error == pytest.approx(0.1)
    assert met.radius_mean_rel_error == pytest.approx(0.1)
    assert met.radius_rmse_px == pytest.approx(np.sqrt(np.mean((0.1 * GT[:, 2]) ** 2)))
    assert met.centre_median_error_px == pytest.approx(1.0)


def test_pooling_sums_counts_not_f1():
    a = evaluate_image(GT, GT, name="a")  # 3 TP
    b = evaluate_image(GT[:1], np.zeros((0, 3)), name="b")  # 1 FN
    pooled = aggregate([a, b])
    assert (pooled.n_images, pooled.tp, pooled.fp, pooled.fn, pooled.n_gt) == (2, 3, 0, 1, 4)
    assert pooled.recall == 0.75 and pooled.f1 == pytest.approx(2 * 0.75 / 1.75)
    assert pooled.f1 != pytest.approx((a.metrics.f1 + b.metrics.f1) / 2)
    assert pooled.percent_detected == 75.0


def test_ignore_border_counts_edge_circles_neither_way():
    shape = (40, 40)
    gt = np.array([[20.0, 20.0, 5.0], [2.0, 20.0, 5.0], [38.0, 5.0, 4.0]])  # 2nd and 3rd cut by the frame
    pred = np.array([[20.5, 20.0, 5.0], [2.5, 20.0, 5.0], [1.0, 35.0, 3.0]])  # 3rd: unmatched, at the border
    full = evaluate_image(gt, pred).metrics
    assert (full.tp, full.fp, full.fn) == (2, 1, 1)
    met = evaluate_image(gt, pred, image_shape=shape, ignore_border=True).metrics
    assert (met.tp, met.fp, met.fn, met.n_gt_ignored, met.n_pred_ignored) == (1, 0, 0, 2, 2)
    with pytest.raises(InputError):
        evaluate_image(gt, pred, ignore_border=True)


def test_fifty_thousand_circles_match_quickly():
    import time

    rng = np.random.default_rng(0)
    side = 224
    xx, yy = np.meshgrid(np.arange(side) * 20.0, np.arange(side) * 20.0)
    n = 50_000
    gt = np.column_stack([xx.ravel()[:n], yy.ravel()[:n], rng.uniform(6, 9, n)])
    pred = gt + np.column_stack([rng.normal(0, 1.0, (n, 2)), np.zeros(n)])
    t0 = time.perf_counter()
    m = match_circles(gt, pred)
    assert time.perf_counter() - t0 < 5.0
    assert m.n_matched > 0.99 * n


# --- size-distribution comparison --------------------------------------------------------------------


def test_compare_size_distributions_table():
    rng = np.random.default_rng(1)
    gt = rng.normal(9.3, 2.3, 400)
    table = compare_size_distributions(gt, {"A": gt * 1.1, "B": gt})
    assert list(table.index) == ["Mean", "D50", "Mode", "StDev", "CV"]
    assert table.loc["Mean", "A diff %"] == pytest.approx(10.0)
    assert table.loc["D50", "B diff"] == pytest.approx(0.0)
    assert table.loc["CV", "A diff"] == pytest.approx(0.0, abs=1e-9)  # CV is scale-free
    assert list(paper_layout(table).index) == ["Ground truth", "A", "B"]
    md = to_markdown(table)
    assert md.startswith("| statistic | Ground truth | A |") and "| Mean |" in md
    few = compare_size_distributions(gt, np.array([5.0]))
    assert few["Prediction"].isna().all()


def test_detection_count_table_matches_paper_table6():
    t = detection_count_table({"Primary": (47166, 46282), "Secondary": (14806, 14772), "Tertiary": (14697, 13397)})
    assert t.loc["Primary", "% detected"] == pytest.approx(98.13, abs=0.005)
    assert t.loc["Combined", "% detected"] == pytest.approx(97.1, abs=0.02)
    assert "| Combined | 76669 | 74451 | 97.11 |" in to_markdown(t)


# --- pairing and CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key"),
    [("a/img01.csv", "img01"), ("a/img01_gt_om.csv", "img01"), ("out/img01/particles.csv", "img01"), ("x/s_pred.json", "s")],
)
def test_pairing_keys(path, key):
    assert key_of(Path(path)) == key


def _write_csv(path, circles):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["x_px,y_px,r_px"] + [f"{x},{y},{r}" for x, y, r in circles]
    path.write_text("\n".join(lines) + "\n")


def test_cli_detect_writes_metrics(tmp_path):
    from typer.testing import CliRunner

    from srpsa.cli.evaluate import app

    rng = np.random.default_rng(2)
    gt_dir, pred_dir, out = tmp_path / "gt", tmp_path / "pred", tmp_path / "out"
    for k in range(2):
        gt = np.column_stack([rng.uniform(10, 90, (30, 2)), rng.uniform(3, 6, 30)])
        _write_csv(gt_dir / f"img{k}_gt.csv", gt)
        _write_csv(pred_dir / f"img{k}" / "particles.csv", gt[:25] + [0.3, 0.0, 0.1])
    (pred_dir / "img0" / "summary.json").write_text(json.dumps({"height": 100, "width": 100, "pixel_size_um": 0.5}))
    (pred_dir / "summary.csv").write_text("not,circles\n")  # batch summary: never read

    result = CliRunner().invoke(app, ["detect", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pooled"]["tp"] == 50 and metrics["pooled"]["fn"] == 10 and metrics["pooled"]["fp"] == 0
    assert set(metrics["per_image"]) == {"img0", "img1"}
    assert (out / "per_image.csv").read_text().count("\n") == 3
    assert (out / "kde.png").stat().st_size > 0
    assert "F1" in result.output

    border = CliRunner().invoke(
        app, ["detect", "--gt", str(gt_dir), "--pred", str(pred_dir), "--out", str(out), "--ignore-border", "--image-size", "60", "60"]
    )
    assert border.exit_code == 0, border.output
    pooled = json.loads((out / "metrics.json").read_text())["pooled"]
    assert pooled["n_gt_ignored"] > 0 and pooled["tp"] + pooled["fn"] + pooled["n_gt_ignored"] == 60

    missing = CliRunner().invoke(app, ["detect", "--gt", str(gt_dir), "--pred", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and isinstance(missing.exception, InputError)


def test_evaluate_detections_is_what_the_cli_reports(tmp_path):
    from typer.testing import CliRunner

    from srpsa.cli.evaluate import app
    from srpsa.errors import ParameterError
    from srpsa.evaluation import evaluate_detections

    rng = np.random.default_rng(3)
    gt = np.column_stack([rng.uniform(10, 90, (20, 2)), rng.uniform(3, 6, 20)])
    _write_csv(tmp_path / "gt" / "a_gt.csv", gt)
    _write_csv(tmp_path / "pred" / "a" / "particles.csv", gt[:15])
    report = evaluate_detections(tmp_path / "gt", tmp_path / "pred")
    assert (report.pooled.tp, report.pooled.fn, report.pooled.fp) == (15, 5, 0)
    assert report.unit == "px" and len(report.gt_diameters) == 20 and len(report.pred_diameters) == 15
    written = report.save(tmp_path / "lib")
    assert all(p.is_file() for p in written)
    res = CliRunner().invoke(app, ["detect", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "metrics.json").read_text() == (tmp_path / "lib" / "metrics.json").read_text()
    # library errors name the parameter, the command names its flag
    with pytest.raises(ParameterError, match="match_factor"):
        evaluate_detections(tmp_path / "gt", tmp_path / "pred", match_factor=0)
    with pytest.raises(ParameterError, match="ignore_border"):
        evaluate_detections(tmp_path / "gt", tmp_path / "pred", ignore_border=True)
    bad = CliRunner().invoke(app, ["detect", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--pixel-size", "-1"])
    assert bad.exit_code != 0 and str(bad.exception).startswith("--pixel-size must be")
    edge = CliRunner().invoke(app, ["detect", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--ignore-border"])
    assert "--ignore-border needs the image size of 'a': pass --images DIR or --image-size WIDTH HEIGHT" in str(edge.exception)
