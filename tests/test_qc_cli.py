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
    meta = out.parent / "sample.toml"
    meta.write_text('sample = "beads <A&B>"\nlot = "L-42"\noperator = "QC"\n')
    code = main(["analyze", str(om_image), "--out", str(out), *BASE, "--export", "imagej-roi,labels,geojson,imagej-csv",
                 "--meta", str(meta), "--spec", "D50=1..100,CV<0.5", "--report"])
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


def test_meta_spec_in_summary_and_report(analysed, capsys) -> None:
    summary = json.loads((analysed / "img0" / "summary.json").read_text())
    assert summary["meta"] == {"sample": "beads <A&B>", "lot": "L-42", "operator": "QC"}
    spec = summary["spec"]
    assert spec["verdict"] == "fail" and [c["verdict"] for c in spec["criteria"]] == ["pass", "fail"]
    html = (analysed / "report.html").read_text()
    assert "beads &lt;A&amp;B&gt;" in html and 'data-meta="lot"' in html and "L-42" in html
    assert 'data-image="img0" data-verdict="fail"' in html and 'data-image="POOLED" data-verdict="fail"' in html
    assert 'id="shape"' in html and 'data-flag="agglomerate"' in html


def test_bad_spec_and_meta_fail_before_work(om_image, tmp_path, capsys) -> None:
    code, _, err = _run([str(om_image), "--out", str(tmp_path / "s"), *BASE, "--spec", "D50=450..400"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--spec" in err
    code, _, err = _run([str(om_image), "--out", str(tmp_path / "s"), *BASE, "--meta", str(tmp_path / "none.toml")], capsys)
    assert code == 2 and "--meta" in err and "not found" in err
    assert not (tmp_path / "s").exists()


def test_report_pdf_pages(analysed, capsys) -> None:
    import shutil
    import subprocess

    from srpsa.report.pdf import find_chromium

    if find_chromium() is None or shutil.which("pdftoppm") is None:
        pytest.skip("chromium or pdftoppm not installed")
    assert main(["report", str(analysed), "--pdf"]) == 0
    pdf = analysed / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(analysed / "page")], check=True)
    pages = sorted(analysed.glob("page-*.png"))
    assert len(pages) >= 2
    import imageio.v3 as iio

    first = iio.imread(pages[0])
    assert first.shape[0] > first.shape[1] and first.min() < 80  # portrait page with dark text
