"""`srpsa analyze` with the interchange and QC options: --export, --exclude-flagged, --no-shape."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from srpsa.cli import main
from srpsa.synth import make_pair, preset


@pytest.fixture(scope="module")
def om_image(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("qc")
    cfg = preset("primary")
    cfg = replace(cfg, height=160, width=192, fiducials=replace(cfg.fiducials, count=0))
    path = folder / "img0.png"
    iio.imwrite(path, np.clip(np.rint(make_pair(cfg, 0).om * 255), 0, 255).astype(np.uint8))
    return path


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["analyze", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


BASE = ["--pixel-size", "0.4", "--workers", "1", "--bootstrap", "20", "--pipeline", "detect-only"]


@pytest.fixture(scope="module")
def analysed(om_image, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "run"
    code = main(["analyze", str(om_image), "--out", str(out), *BASE, "--export", "imagej-roi,labels,geojson,imagej-csv"])
    assert code == 0
    return out


def test_exports_written_and_consistent(analysed) -> None:
    import tifffile
    from roifile import roiread

    folder = analysed / "img0"
    table = pd.read_csv(folder / "particles.csv")
    assert len(table) > 5
    assert len(roiread(folder / "img0_rois.zip")) == len(table)
    assert tifffile.imread(folder / "img0_labels.tif").max() == len(table)
    assert len(json.loads((folder / "img0.geojson").read_text())["features"]) == len(table)
    assert len(pd.read_csv(folder / "img0_results.csv")) == len(table)
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["shape"]["flags"]) >= {"ok", "non_round", "agglomerate", "occluded", "low_contrast"}
    assert sum(summary["shape"]["flags"].values()) == pytest.approx(1.0, abs=1e-3)


def test_bad_export_names_flag(om_image, tmp_path, capsys) -> None:
    code, _, err = _run([str(om_image), "--out", str(tmp_path / "o"), *BASE, "--export", "imagej-roi,shapefile"], capsys)
    assert code == 2 and "--export" in err and "shapefile" in err and "Traceback" not in err


def test_exclude_flagged_and_no_shape(om_image, analysed, tmp_path, capsys) -> None:
    code, _, err = _run([str(om_image), "--out", str(tmp_path / "x"), *BASE, "--exclude-flagged"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "x" / "img0" / "particles.csv")
    summary = json.loads((tmp_path / "x" / "img0" / "summary.json").read_text())
    ok = (table["edge"] == 0) & ~table["flag"].isin(["non_round", "agglomerate", "occluded", "low_contrast"])
    assert summary["count_used"] == int(ok.sum())
    pooled = pd.read_csv(tmp_path / "x" / "summary.csv").set_index("image").loc["POOLED"]
    assert pooled["count_used"] == int(ok.sum())

    code, _, err = _run([str(om_image), "--out", str(tmp_path / "n"), *BASE, "--no-shape"], capsys)
    assert code == 0, err
    assert "flag" not in pd.read_csv(tmp_path / "n" / "img0" / "particles.csv").columns
    code, _, err = _run([str(om_image), "--out", str(tmp_path / "m"), *BASE, "--no-shape", "--exclude-flagged"], capsys)
    assert code == 2 and "--exclude-flagged" in err
