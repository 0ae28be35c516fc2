"""The `srpsa analyze` contract: files, columns, exit codes, bad inputs, resume, schedulers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from srpsa.cli import main
from srpsa.psd.shape import FLAGS, SHAPE_COLUMNS
from srpsa.synth import make_pair, preset

SHAPE = (160, 192)


@pytest.fixture(scope="module")
def om_images(tmp_path_factory) -> tuple[Path, list[Path], list[pd.DataFrame]]:
    folder = tmp_path_factory.mktemp("om")
    paths, gts = [], []
    for seed in (0, 1):
        cfg = preset("primary")
        cfg = replace(cfg, height=SHAPE[0], width=SHAPE[1], fiducials=replace(cfg.fiducials, count=0))
        pair = make_pair(cfg, seed)
        path = folder / f"img{seed}.png"
        iio.imwrite(path, np.clip(np.rint(pair.om * 255), 0, 255).astype(np.uint8))
        paths.append(path)
        gts.append(pair.gt)
    return folder, paths, gts


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["analyze", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_outputs_and_columns(om_images, tmp_path, capsys):
    folder, paths, gts = om_images
    out = tmp_path / "out"
    code, stdout, err = _run([*map(str, paths), "--out", str(out), "--pixel-size", "0.4", "--workers", "1", "--bootstrap", "50"], capsys)
    assert code == 0, err
    for path, gt in zip(paths, gts):
        folder_out = out / path.stem
        assert {p.name for p in folder_out.iterdir()} == {"particles.csv", "summary.json", "overlay.png", "psd.png"}
        header = (folder_out / "particles.csv").read_text().splitlines()[0]
        assert header == "id,x_px,y_px,r_px,d_um,score,edge," + ",".join(SHAPE_COLUMNS)
        assert set(pd.read_csv(folder_out / "particles.csv")["flag"]) <= set(FLAGS)
        table = pd.read_csv(folder_out / "particles.csv")
        assert len(table) > 0.5 * len(gt)  # the shipped detector finds most simulated particles
        np.testing.assert_allclose(table["d_um"], 2 * table["r_px"] * 0.4, rtol=1e-3)
        assert set(table["edge"].unique()) <= {0, 1}
        summary = json.loads((folder_out / "summary.json").read_text())
        assert summary["pixel_size_um"] == 0.4 and summary["pixel_size_source"] == "override"
        assert summary["count"] == len(table)
        assert summary["count_used"] == int((table["edge"] == 0).sum())
        q0 = summary["statistics"]["Q0"]
        # particles.csv holds 4 decimals, so the means agree to the rounding (<= 5e-5)
        assert q0["mean"] == pytest.approx(table.loc[table.edge == 0, "d_um"].mean(), abs=1e-4)
        assert set(q0["ci"]) >= {"mean", "d10", "d50", "d90"}
        assert summary["models"]["detector-om"]["sha256"]
        assert set(summary["seconds"]) >= {"load", "detect", "statistics", "write", "total"}
    batch = pd.read_csv(out / "summary.csv")
    assert list(batch["image"]) == ["img0", "img1", "POOLED"]
    # POOLED counts like the image rows: count = all particles, count_used = those in the statistics
    assert batch.loc[2, "count"] == batch.loc[:1, "count"].sum()
    assert batch.loc[2, "count_used"] == batch.loc[:1, "count_used"].sum()
    assert pd.read_csv(out / "errors.csv").empty
    assert str(out / "summary.csv") in stdout


def test_uncalibrated_leaves_d_um_empty_and_warns(om_images, tmp_path, capsys):
    _, paths, _ = om_images
    out = tmp_path / "out"
    code, _, err = _run([str(paths[0]), "--out", str(out), "--bootstrap", "0"], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "img0" / "particles.csv")
    assert table["d_um"].isna().all()
    summary = json.loads((out / "img0" / "summary.json").read_text())
    assert summary["unit"] == "px" and summary["pixel_size_source"] == "none"
    assert any("px" in w for w in summary["warnings"])


def test_bad_input_in_batch_fails_alone(om_images, tmp_path, capsys):
    _, paths, _ = om_images
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    code, _, err = _run([str(paths[0]), str(bad), "--out", str(out), "--workers", "1", "--bootstrap", "0"], capsys)
    assert code == 1
    assert "Traceback" not in err
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["image"]) == [str(bad)]
    assert (out / "img0" / "summary.json").is_file()
    assert not (out / "broken").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--modality", "xray"], "--modality"),
        (["--pixel-size", "-1"], "--pixel-size"),
        (["--diameter-range", "10", "5"], "--diameter-range"),
        (["--backend", "tensorrt"], "--backend"),
        (["--flow", "magic"], "--flow"),
    ],
)
def test_bad_usage_is_one_line_exit_2(om_images, tmp_path, capsys, args, message):
    _, paths, _ = om_images
    code, _, err = _run([str(paths[0]), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_input_is_exit_2(tmp_path, capsys):
    code, _, err = _run([str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "nope.png" in err and "Traceback" not in err


def test_full_pipeline_without_gan_weights_is_a_clear_error(om_images, tmp_path, capsys):
    import shutil

    from srpsa.inference.weights import PACKAGE_WEIGHTS

    _, paths, _ = om_images
    root = tmp_path / "weights"  # a weights folder with the detectors but no GAN models
    for name in ("detector-sem", "detector-om"):
        shutil.copytree(PACKAGE_WEIGHTS / name, root / name)
    code, _, err = _run([*map(str, paths), "--out", str(tmp_path / "o"), "--pipeline", "full", "--weights", str(root)], capsys)
    assert code == 2  # bad usage, reported once up front (not once per image), before any image is read
    assert len(err.strip().splitlines()) == 1 and "--weights" in err and "translate" in err
    assert not (tmp_path / "o" / "img0").exists()


def test_rerun_skips_finished_images_unless_forced(om_images, tmp_path, capsys):
    _, paths, _ = om_images
    out = tmp_path / "out"
    args = [str(paths[0]), "--out", str(out), "--bootstrap", "0"]
    assert _run(args, capsys)[0] == 0
    summary = out / "img0" / "summary.json"
    first = summary.stat().st_mtime_ns
    code, _, err = _run(args, capsys)
    assert code == 0 and "skipped" in err
    assert summary.stat().st_mtime_ns == first
    assert _run([*args, "--force"], capsys)[0] == 0
    assert summary.stat().st_mtime_ns != first


def test_sem_modality_uses_sem_detector(tmp_path, capsys):
    cfg = preset("primary")
    cfg = replace(cfg, height=SHAPE[0], width=SHAPE[1], fiducials=replace(cfg.fiducials, count=0))
    cfg = replace(cfg, misregistration=replace(cfg.misregistration, enabled=False))
    pair = make_pair(cfg, 3)
    path = tmp_path / "sem.png"
    iio.imwrite(path, np.clip(np.rint(pair.sem * 255), 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    code, _, err = _run([str(path), "--out", str(out), "--modality", "sem", "--bootstrap", "0"], capsys)
    assert code == 0, err
    summary = json.loads((out / "sem" / "summary.json").read_text())
    assert list(summary["models"]) == ["detector-sem"]
    assert summary["count"] > 0.5 * len(pair.gt)


def test_dask_local_cluster_matches_local_run(om_images, tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    _, paths, _ = om_images
    local, dask = tmp_path / "local", tmp_path / "dask"
    common = [*map(str, paths), "--bootstrap", "0", "--workers", "1"]
    assert _run([*common, "--out", str(local)], capsys)[0] == 0
    assert _run([*common, "--out", str(dask), "--scheduler", "local"], capsys)[0] == 0
    for path in paths:
        a = (local / path.stem / "particles.csv").read_text()
        b = (dask / path.stem / "particles.csv").read_text()
        assert a == b


def test_onnx_backend_gives_the_same_particles(om_images, tmp_path, capsys):
    _, paths, _ = om_images
    outs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        code, _, err = _run([str(paths[0]), "--out", str(out), "--bootstrap", "0", "--backend", backend], capsys)
        assert code == 0, err
        outs[backend] = pd.read_csv(out / "img0" / "particles.csv")
        assert json.loads((out / "img0" / "summary.json").read_text())["settings"]["backend"] == backend
    assert len(outs["torch"]) == len(outs["onnx"]) > 0
    # rows are ordered by score, which may swap near-ties between engines: compare in position order
    a, b = (o[["x_px", "y_px", "r_px"]].to_numpy() for o in (outs["onnx"], outs["torch"]))
    a, b = a[np.lexsort((a[:, 1], a[:, 0]))], b[np.lexsort((b[:, 1], b[:, 0]))]
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_report_flag_writes_html_report(om_images, tmp_path, capsys):
    _, paths, _ = om_images
    out = tmp_path / "out"
    code, stdout, err = _run([str(paths[0]), "--out", str(out), "--bootstrap", "0", "--report"], capsys)
    assert code == 0, err
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"report: {out / 'report.html'}" in stdout
    assert "img0" in html and "data:image/png;base64," in html
