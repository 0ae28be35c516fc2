"""QC pieces: --spec parsing and verdicts (srpsa.psd.spec), --meta files (srpsa.io.meta), report.pdf."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from srpsa.errors import InputError, SrpsaError
from srpsa.io.meta import read_meta
from srpsa.psd.spec import evaluate_spec, parse_spec

STATS = {"Q0": {"d50": 420.0, "cv": 12.0, "n": 300, "d90": 480.0}, "Q3": {"d50": 455.0, "d90": 520.0, "cv": None}}


def test_parse_and_evaluate() -> None:
    crit = parse_spec("D50=400..450, CV<15, Q3:D90<=520, n>=500")
    assert [c.text for c in crit] == ["D50=400..450", "CV<15", "Q3:D90<=520", "N>=500"]
    res = evaluate_spec(crit, STATS, "um")
    assert [r["verdict"] for r in res["criteria"]] == ["pass", "pass", "pass", "fail"]
    assert res["verdict"] == "fail" and res["spec"] == "D50=400..450,CV<15,Q3:D90<=520,N>=500"
    assert evaluate_spec(parse_spec("D50=400..450,CV<15"), STATS, "um")["verdict"] == "pass"
    assert evaluate_spec(parse_spec("d50 > 420"), STATS, "um")["verdict"] == "fail"  # strict
    assert evaluate_spec(parse_spec("D50=420..420"), STATS, "um")["verdict"] == "pass"  # inclusive


def test_na_when_uncalibrated_or_missing() -> None:
    res = evaluate_spec(parse_spec("D50=400..450,CV<15"), STATS, "px")
    assert [r["verdict"] for r in res["criteria"]] == ["n/a", "pass"] and res["verdict"] == "n/a"
    assert "uncalibrated" in res["criteria"][0]["note"]
    assert evaluate_spec(parse_spec("Q3:CV<15"), STATS, "um")["verdict"] == "n/a"
    assert evaluate_spec(parse_spec("D50<500"), {"Q0": {"d50": math.nan}}, "um")["verdict"] == "n/a"


@pytest.mark.parametrize("bad", ["D50=450..400", "D50~400", "D55<3", "D50=400-450", "Q1:D50<4", "CV<"])
def test_bad_spec_names_flag(bad: str) -> None:
    with pytest.raises(InputError, match="^--spec: "):
        parse_spec(f"CV<15,{bad}")


def test_meta(tmp_path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('lot = "L1"\nsample = "beads"\nobjective = 20\n')
    assert read_meta(p) == {"sample": "beads", "lot": "L1", "objective": "20"}
    p.write_text('lot = "L1"\noprator = "x"\n')
    with pytest.raises(InputError, match="--meta: unknown key.*oprator"):
        read_meta(p)
    p.write_text("lot = \n")
    with pytest.raises(InputError, match="--meta file .* not valid TOML"):
        read_meta(p)
    with pytest.raises(InputError, match="--meta file not found"):
        read_meta(tmp_path / "nope.toml")
    p.write_text("[sample]\nname = 'x'\n")
    with pytest.raises(InputError, match="single value"):
        read_meta(p)


def test_pdf_without_chromium(tmp_path, monkeypatch) -> None:
    from srpsa.report.pdf import print_pdf

    html = tmp_path / "r.html"
    html.write_text("<html><body>x</body></html>")
    monkeypatch.setenv("SRPSA_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(SrpsaError, match="^--pdf needs Chromium"):
        print_pdf(html)
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed")
def test_pdf_pages(tmp_path) -> None:
    from srpsa.report.pdf import find_chromium, print_pdf

    if find_chromium() is None:
        pytest.skip("chromium not installed")
    html = tmp_path / "r.html"
    html.write_text("<html><body><h1>QC report</h1>" + "<p>line</p>" * 200 + "</body></html>")
    pdf = print_pdf(html)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    import imageio.v3 as iio

    first = iio.imread(pages[0])
    assert first.min() < 100 and first.max() > 200  # text on a white page


def test_scale_bar_and_ids(tmp_path) -> None:
    import imageio.v3 as iio
    import numpy as np

    from srpsa.report.annotate import nice_length
    from srpsa.report.figures import plot_overlay

    assert [nice_length(v) for v in (0.37, 1.0, 7.3, 19.9, 20.0, 480.0)] == [0.2, 1.0, 5.0, 10.0, 20.0, 200.0]
    img = np.full((300, 400), 0.5, np.float32)
    circles = np.array([[100.0, 100.0, 30.0], [250.0, 150.0, 40.0]])
    plot_overlay(img, circles, tmp_path / "plain.png")
    plot_overlay(img, circles, tmp_path / "qc.png", ids=np.array([1, 2]), pixel_size_um=0.5)
    plain, qc = iio.imread(tmp_path / "plain.png"), iio.imread(tmp_path / "qc.png")
    assert plain.shape == qc.shape
    diff = np.abs(plain.astype(int) - qc.astype(int)).sum(axis=2) > 0
    assert diff[90:112, 90:112].any() and diff[140:162, 240:262].any()  # ids at the centres
    assert diff[260:, 300:].any() and not diff[200:250, :60].any()  # bar bottom right, nothing elsewhere


def test_psd_ci_whiskers(tmp_path) -> None:
    import imageio.v3 as iio
    import numpy as np

    from srpsa.report.figures import plot_psd

    d = np.random.default_rng(0).lognormal(2.0, 0.2, 300)
    ci = {"number": {"d10": [6.0, 6.6], "d50": [7.0, 7.8], "d90": [8.8, 10.0]}, "volume": {"d50": [None, 9.0]}}
    plot_psd(d, tmp_path / "a.png")
    plot_psd(d, tmp_path / "b.png", ci=ci)
    a, b = iio.imread(tmp_path / "a.png"), iio.imread(tmp_path / "b.png")
    assert a.shape == b.shape and (a != b).any()
    half = a.shape[1] // 2
    assert (a[:, half:] == b[:, half:]).all()  # the Q3 CI with a missing bound is not drawn
