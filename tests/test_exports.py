"""Interchange exports (srpsa.io.exports): round trips through roifile, tifffile and json."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import tifffile

from srpsa.errors import InputError
from srpsa.io.exports import EXPORTS, imagej_results, label_image, parse_exports, write_exports
from srpsa.psd.particles import particle_table
from srpsa.psd.shape import shape_table

SHAPE = (120, 200)
CIRCLES = np.array([[30.25, 40.5, 12.0], [80.0, 60.0, 20.0], [150.7, 30.2, 8.5], [196.0, 100.0, 10.0]])


@pytest.fixture
def table() -> pd.DataFrame:
    t = particle_table(CIRCLES, None, SHAPE, 0.5)
    img = np.full(SHAPE, 220.0, np.float32)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    for x, y, r in CIRCLES:
        img[(xx - x) ** 2 + (yy - y) ** 2 < r * r] = 30.0
    return pd.concat([t, shape_table(img, CIRCLES, t["edge"].to_numpy(bool), 0.5)], axis=1)


def test_parse_exports() -> None:
    assert parse_exports("imagej-roi, labels,labels") == ("imagej-roi", "labels")
    assert parse_exports("") == ()
    with pytest.raises(InputError, match="--export"):
        parse_exports("imagej-roi,shp")


def test_roundtrip_all(table, tmp_path) -> None:
    from roifile import ROI_TYPE, roiread

    paths = write_exports(tmp_path, "img", table, SHAPE, 0.5, EXPORTS)
    assert [p.name for p in paths] == ["img_rois.zip", "img_labels.tif", "img.geojson", "img_results.csv"]
    assert not list(tmp_path.glob(".*tmp*"))

    rois = roiread(tmp_path / "img_rois.zip")
    assert len(rois) == len(CIRCLES)
    for roi, (pid, (x, y, r)) in zip(rois, enumerate(CIRCLES, start=1)):
        assert roi.roitype == ROI_TYPE.OVAL and roi.name == str(pid)
        assert roi.subpixelrect
        # ImageJ's origin is the top-left pixel's corner: centre = srpsa centre + 0.5
        assert roi.xd + roi.widthd / 2 == pytest.approx(x + 0.5, abs=1e-4)
        assert roi.yd + roi.heightd / 2 == pytest.approx(y + 0.5, abs=1e-4)
        assert roi.widthd == pytest.approx(2 * r, abs=1e-4)
        assert roi.left <= roi.xd < roi.left + 1 and roi.right >= roi.xd + roi.widthd

    with tifffile.TiffFile(tmp_path / "img_labels.tif") as tif:
        labels = tif.asarray()
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        xres = tif.pages[0].tags["XResolution"].value
        assert xres[1] / xres[0] == pytest.approx(0.5)  # um per px
    assert labels.dtype == np.uint16 and labels.shape == SHAPE
    assert labels.max() == len(CIRCLES) and set(np.unique(labels)) == set(range(len(CIRCLES) + 1))
    assert labels[40, 30] == 1 and labels[60, 80] == 2 and labels[0, 0] == 0
    assert (labels == 2).sum() == pytest.approx(np.pi * 20**2, rel=0.02)

    gj = json.loads((tmp_path / "img.geojson").read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(CIRCLES)
    f = gj["features"][1]
    ring = np.array(f["geometry"]["coordinates"][0])
    assert f["geometry"]["type"] == "Polygon" and (ring[0] == ring[-1]).all() and len(ring) >= 4
    assert np.hypot(ring[:, 0] - 80.5, ring[:, 1] - 60.5) == pytest.approx(20.0, abs=1e-2)
    props = f["properties"]
    assert props["objectType"] == "detection" and props["classification"]["name"] == "ok"
    assert props["measurements"]["d_um"] == pytest.approx(20.0) and props["measurements"]["circularity"] > 0.95
    assert all(isinstance(v, (int, float)) for v in props["measurements"].values())

    res = pd.read_csv(tmp_path / "img_results.csv")
    assert {"Area", "X", "Y", "Major", "Minor", "Circ.", "Feret", "MinFeret", "AR", "Round", "Solidity"} <= set(res.columns)
    assert res.loc[1, "X"] == pytest.approx(40.25) and res.loc[1, "Major"] == pytest.approx(20.0)
    assert res.loc[1, "Area"] == pytest.approx(np.pi * 100, rel=1e-4)
    assert res.loc[1, "Feret"] == pytest.approx(20.0, rel=0.03)


def test_uncalibrated_and_empty(table, tmp_path) -> None:
    write_exports(tmp_path, "u", table, SHAPE, None, ("labels", "imagej-csv"))
    with tifffile.TiffFile(tmp_path / "u_labels.tif") as tif:
        assert "unit" not in (tif.imagej_metadata or {})
    assert imagej_results(table, None).loc[1, "Major"] == pytest.approx(40.0)  # px
    empty = table.iloc[:0]
    write_exports(tmp_path, "e", empty, SHAPE, 0.5, EXPORTS)
    assert zipfile.ZipFile(tmp_path / "e_rois.zip").namelist() == []
    assert json.loads((tmp_path / "e.geojson").read_text())["features"] == []
    assert label_image(empty, SHAPE).max() == 0


def test_small_on_large_stays_visible() -> None:
    t = particle_table(np.array([[50.0, 50.0, 5.0], [50.0, 50.0, 30.0]]), None, (100, 100), None)
    labels = label_image(t, (100, 100))
    assert labels[50, 50] == 1 and labels[50, 75] == 2
