"""`srpsa report`: report.html from a real `srpsa analyze` folder - numbers, images, links, warnings, errors.

One analysis (a calibrated ImageJ TIFF, an uncalibrated PNG and a broken file) is run once per module
with the shipped detector; variants (all uncalibrated, two pixel sizes, hostile names) are copies of
that folder with files edited in the documented formats, so only one detection pass is paid for.
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from srpsa.cli import main
from srpsa.errors import InputError
from srpsa.psd import size_statistics
from srpsa.report.html import THUMB_WIDTH, fmt, write_report

SHAPE = (160, 192)
PIXEL_SIZE = 0.4
N_BOOT = 50
STAT_KEYS = ("mean", "d10", "d50", "d90", "mode", "std", "cv", "span", "d32", "d43")
CI_KEYS = ("mean", "d10", "d50", "d90")
TABLES = (("Q0", "number"), ("Q3", "volume"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- a tiny DOM for assertions


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list["Node"] = field(default_factory=list)
    text: str = ""

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)

    def find_all(self, tag: str, **attrs: str) -> list["Node"]:
        out = [self] if self.tag == tag and all(self.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()) else []
        for child in self.children:
            out += child.find_all(tag, **attrs)
        return out


class _TreeBuilder(HTMLParser):
    VOID = {"img", "br", "meta", "link", "input", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack[-1].tag == tag, f"unbalanced </{tag}> inside <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        # Text after a child element is appended as a text-only node so all_text keeps document order.
        self.stack[-1].children.append(Node("#text", {}, text=data))


def parse(path: Path) -> Node:
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    assert len(builder.stack) == 1, f"unclosed elements: {[n.tag for n in builder.stack[1:]]}"
    return builder.root


def stats_cells(doc: Node, sample: str) -> dict[str, Node]:
    """data-key -> <td> of the statistics table of one sample ("pooled" or an image name)."""
    (stats,) = doc.find_all("table", **{"class": "stats", "data_sample": sample})
    (counts,) = doc.find_all("table", **{"class": "counts", "data_sample": sample})
    cells = {td.attrs["data-key"]: td for td in stats.find_all("td") + counts.find_all("td") if "data-key" in td.attrs}
    return cells


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def analysis_dir(tmp_path_factory, torch_one_thread) -> Path:
    """A real `srpsa analyze` folder: cal (ImageJ-calibrated TIFF), uncal (plain PNG), broken (fails)."""
    from srpsa.inference.batch import run_batch
    from srpsa.inference.pipeline import AnalyzeSettings
    from srpsa.synth import make_pair, preset

    src = tmp_path_factory.mktemp("images")
    cfg = preset("primary")
    cfg = replace(cfg, height=SHAPE[0], width=SHAPE[1], fiducials=replace(cfg.fiducials, count=0))
    cal, uncal, broken = src / "cal.tif", src / "uncal.png", src / "broken.png"
    for path, seed in ((cal, 1), (uncal, 2)):
        om = np.clip(np.rint(make_pair(cfg, seed).om * 255), 0, 255).astype(np.uint8)
        if path.suffix == ".tif":  # ImageJ calibration: unit + XResolution in pixels per um
            tifffile.imwrite(path, om, imagej=True, resolution=(1 / PIXEL_SIZE, 1 / PIXEL_SIZE), metadata={"unit": "um"})
        else:
            iio.imwrite(path, om)
    broken.write_text("not an image")
    out = tmp_path_factory.mktemp("analysis") / "out"
    result = run_batch([cal, uncal, broken], out, AnalyzeSettings(bootstrap=N_BOOT), workers=1)
    assert [r["status"] for r in result.results] == ["ok", "ok", "error"]
    return out


@pytest.fixture(scope="module")
def report(analysis_dir) -> tuple[Path, Node]:
    path = write_report(analysis_dir)
    return path, parse(path)


def _used_diameters(folder: Path, calibrated: bool) -> np.ndarray:
    table = pd.read_csv(folder / "particles.csv")
    table = table[table["edge"] == 0]
    return table["d_um"].to_numpy() if calibrated else 2.0 * table["r_px"].to_numpy()


def _assert_stats_equal(cells: dict[str, Node], expected: dict[str, dict]) -> None:
    for table, stats in expected.items():
        for key in STAT_KEYS:
            td = cells[f"{table}.{key}"]
            assert float(td.attrs["data-value"]) == stats[key], f"{table}.{key}"
            assert td.all_text() == fmt(stats[key])
        for key in CI_KEYS:
            lo, hi = stats["ci"][key]
            td = cells[f"{table}.{key}.ci"]
            assert (float(td.attrs["data-low"]), float(td.attrs["data-high"])) == (lo, hi), f"{table}.{key} CI"


def _copy(analysis_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(analysis_dir, dest)
    (dest / "report.html").unlink(missing_ok=True)
    return dest


# ---------------------------------------------------------------- the report of the real folder


def test_report_is_written_atomically_as_one_file(analysis_dir, report):
    path, doc = report
    assert path == analysis_dir / "report.html"
    # no temporary left behind (.srpsa.lock is the batch tables' permanent lock file, docs/reliability.md)
    assert not [p for p in analysis_dir.iterdir() if p.name.startswith(".") and p.name != ".srpsa.lock"]
    assert doc.find_all("title")[0].all_text().startswith("Particle size analysis")
    assert not doc.find_all("link") and not doc.find_all("script")  # nothing fetched from elsewhere


def test_pooled_statistics_equal_psd_of_calibrated_particles(analysis_dir, report):
    # Mixed calibrated/uncalibrated: only the calibrated image is pooled, in um, CIs with the run's settings.
    _, doc = report
    d = _used_diameters(analysis_dir / "cal", calibrated=True)
    expected = {t: size_statistics(d, weighting=w, unit="um", ci=True, n_boot=N_BOOT, seed=0).to_dict() for t, w in TABLES}
    cells = stats_cells(doc, "pooled")
    _assert_stats_equal(cells, expected)
    summary = json.loads((analysis_dir / "cal" / "summary.json").read_text())
    assert cells["counted"].all_text() == str(d.size) == str(summary["count_used"])
    assert cells["count"].all_text() == str(summary["count"])
    assert cells["edge_excluded"].all_text() == str(summary["count_edge"])


def test_per_image_statistics_are_those_of_summary_json(analysis_dir, report):
    _, doc = report
    for name in ("cal", "uncal"):
        summary = json.loads((analysis_dir / name / "summary.json").read_text())
        _assert_stats_equal(stats_cells(doc, name), summary["statistics"])
    (uncal_table,) = doc.find_all("table", **{"class": "stats", "data_sample": "uncal"})
    assert "[px]" in uncal_table.all_text()


def test_images_are_embedded_png_and_thumbnails_link_to_overlays(analysis_dir, report):
    _, doc = report
    imgs = doc.find_all("img")
    assert len(imgs) >= 3  # pooled PSD figure + one overlay thumbnail per analysed image
    for img in imgs:
        assert img.attrs["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img.attrs["src"].split(",", 1)[1], validate=True)[:8] == PNG_MAGIC
    thumbs = [img for img in imgs if img.attrs.get("class") == "thumb"]
    assert len(thumbs) == 2
    for img in thumbs:
        width, _ = png_size(base64.b64decode(img.attrs["src"].split(",", 1)[1]))
        assert width <= THUMB_WIDTH
    links = [a.attrs["href"] for a in doc.find_all("a") if not a.attrs["href"].startswith("#")]
    assert {"cal/overlay.png", "uncal/overlay.png"} <= set(links)
    for href in links:
        assert not Path(href).is_absolute() and (analysis_dir / unquote(href)).is_file(), href
    anchors = {a.attrs["href"][1:] for a in doc.find_all("a") if a.attrs["href"].startswith("#")}
    ids = {n.attrs["id"] for n in doc.find_all("div") + doc.find_all("section") if "id" in n.attrs}
    assert anchors <= ids


def test_warnings_calibration_and_failed_inputs(analysis_dir, report):
    _, doc = report
    (warnings,) = doc.find_all("table", **{"class": "warnings"})
    rows = [(tr.attrs["data-category"], tr.attrs["data-scope"], tr.all_text()) for tr in warnings.find_all("tr") if "data-category" in tr.attrs]
    assert any(cat == "Calibration" and scope == "uncal" for cat, scope, _ in rows)
    assert not any(cat == "Calibration" and scope == "cal" for cat, scope, _ in rows)
    assert any(cat == "Pooling" and "uncal" in text for cat, _, text in rows)
    errors = pd.read_csv(analysis_dir / "errors.csv")
    assert len(errors) == 1
    assert any(cat == "Failed input" and scope == "broken" and errors.loc[0, "error"] in text for cat, scope, text in rows)
    # Every count warning the statistics produced shows up (ISO 13322-1 rule).
    for name in ("cal", "uncal"):
        stats = json.loads((analysis_dir / name / "summary.json").read_text())["statistics"]
        for message in stats["Q0"]["warnings"] + stats["Q3"]["warnings"]:
            assert any(scope == name and message in text for _, scope, text in rows), message
    # The per-image table lists the failed input with its error, and says which image is uncalibrated.
    (images,) = doc.find_all("table", **{"class": "images"})
    status = {tr.attrs["data-image"]: (tr.attrs["data-status"], tr.all_text()) for tr in images.find_all("tr") if "data-image" in tr.attrs}
    assert status["cal"][0] == status["uncal"][0] == "ok"
    assert status["broken"][0] == "failed" and errors.loc[0, "error"] in status["broken"][1]
    (calibration,) = doc.find_all("table", **{"class": "calibration"})
    cal_rows = {tr.attrs["data-image"]: tr for tr in calibration.find_all("tr") if "data-image" in tr.attrs}
    assert "imagej" in cal_rows["cal"].all_text() and "uncalibrated" in cal_rows["uncal"].all_text()
    assert float(cal_rows["cal"].find_all("td")[1].attrs["data-value"]) == pytest.approx(PIXEL_SIZE)


def test_settings_and_models_are_listed(analysis_dir, report):
    _, doc = report
    summary = json.loads((analysis_dir / "cal" / "summary.json").read_text())
    (models,) = doc.find_all("table", **{"class": "models"})
    ran = {name for name, info in summary["models"].items() if info["ran"]}
    # the default chain (no super-resolution model) translates and detects on the SEM side; the
    # super-resolution model is loaded for the fingerprint but did not run, so the table leaves it out
    assert {"translate", "detector-sem"} <= ran and "superres" not in ran
    for name, info in summary["models"].items():
        shown = name in models.all_text() and info["sha256"] in models.all_text()
        assert shown == info["ran"], name
    (settings,) = doc.find_all("table", **{"class": "settings"})
    keys = {tr.attrs["data-setting"] for tr in settings.find_all("tr") if "data-setting" in tr.attrs}
    assert keys == set(summary["settings"])


# ---------------------------------------------------------------- variants of the folder


def test_damaged_image_is_listed_as_failed_and_the_rest_pools_in_px(analysis_dir, tmp_path):
    # The only calibrated image becomes unreadable: it is reported as failed, the uncalibrated rest pools in px.
    folder = _copy(analysis_dir, tmp_path)
    (folder / "cal" / "summary.json").write_text("{truncated")
    doc = parse(write_report(folder))
    (images,) = doc.find_all("table", **{"class": "images"})
    status = {tr.attrs["data-image"]: (tr.attrs["data-status"], tr.all_text()) for tr in images.find_all("tr") if "data-image" in tr.attrs}
    assert status["uncal"][0] == "ok" and status["broken"][0] == "failed"
    assert status["cal"][0] == "failed" and "summary.json" in status["cal"][1]
    d = _used_diameters(folder / "uncal", calibrated=False)
    expected = {t: size_statistics(d, weighting=w, unit="px", ci=True, n_boot=N_BOOT, seed=0).to_dict() for t, w in TABLES}
    _assert_stats_equal(stats_cells(doc, "pooled"), expected)
    (pooled,) = doc.find_all("table", **{"class": "stats", "data_sample": "pooled"})
    assert "[px]" in pooled.all_text()
    assert "uncalibrated" in doc.find_all("section", id="overview")[0].all_text()


def test_different_pixel_sizes_pool_in_um(analysis_dir, tmp_path):
    folder = _copy(analysis_dir, tmp_path)
    # Calibrate the second image at another pixel size, as `--pixel-size 0.5` would have written it.
    summary_path, csv_path = folder / "uncal" / "summary.json", folder / "uncal" / "particles.csv"
    summary = json.loads(summary_path.read_text())
    summary.update(pixel_size_um=0.5, pixel_size_source="override", unit="um", warnings=[])
    summary_path.write_text(json.dumps(summary))
    table = pd.read_csv(csv_path)
    table["d_um"] = 2.0 * table["r_px"] * 0.5
    table.to_csv(csv_path, index=False, float_format="%.4f")
    doc = parse(write_report(folder))
    d = np.concatenate([_used_diameters(folder / "cal", True), _used_diameters(folder / "uncal", True)])
    expected = {t: size_statistics(d, weighting=w, unit="um", ci=True, n_boot=N_BOOT, seed=0).to_dict() for t, w in TABLES}
    _assert_stats_equal(stats_cells(doc, "pooled"), expected)
    (warnings,) = doc.find_all("table", **{"class": "warnings"})
    assert "different pixel sizes" in warnings.all_text()
    assert not any(tr.attrs.get("data-category") == "Calibration" for tr in warnings.find_all("tr"))


def test_strings_from_files_are_escaped_and_links_quoted(analysis_dir, tmp_path, capsys):
    folder = _copy(analysis_dir, tmp_path)
    hostile = "un cal#1 <i>"
    (folder / "uncal").rename(folder / hostile)
    summary_path = folder / hostile / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["warnings"].append("<script>alert('x')</script>")
    summary_path.write_text(json.dumps(summary))
    pd.DataFrame([{"image": "/data/<b>evil</b>.png", "error": "bad & <img src=x onerror=alert(1)>"}]).to_csv(folder / "errors.csv", index=False)

    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == str(folder / "report.html")
    text = (folder / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>evil" not in text and "<img src=x" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "bad &amp; &lt;img src=x onerror=alert(1)&gt;" in text
    doc = parse(folder / "report.html")
    hrefs = [a.attrs["href"] for a in doc.find_all("a")]
    assert "un%20cal%231%20%3Ci%3E/overlay.png" in hrefs
    assert (folder / unquote("un%20cal%231%20%3Ci%3E/overlay.png")).is_file()


# ---------------------------------------------------------------- bad folders


def test_bad_folders_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_report(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_report(tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no analysis results"):
        write_report(empty)
    failed = tmp_path / "failed"
    failed.mkdir()
    pd.DataFrame([{"image": "a.png", "error": "boom"}]).to_csv(failed / "errors.csv", index=False)
    with pytest.raises(InputError, match="all 1 input.*boom"):
        write_report(failed)
    (failed / "x").mkdir()
    (failed / "x" / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="all 2 input"):
        write_report(failed)
    assert not list(tmp_path.rglob("report.html"))


def test_cli_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    code = main(["report", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "nope" in err and "Traceback" not in err


# ---------------------------------------------------------------- rendering in a real browser


def _chromium() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def test_report_renders_in_headless_chromium(request, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium/chromium-browser/google-chrome on PATH (Debian: apt-get install -y chromium)")
    path, _ = request.getfixturevalue("report")  # only now: without a browser, skip before the analysis runs
    shot = tmp_path / "report.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1280,2000", path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    img = iio.imread(shot)
    assert img.shape[:2] == (2000, 1280)
    rgb = img[..., :3].astype(np.int16)
    assert rgb.std() > 20  # a blank or error page is nearly uniform
    # The pooled PSD plot is decoded and drawn: its KDE line is matplotlib's C0 blue (31, 119, 180).
    blue = np.all(np.abs(rgb - np.array([31, 119, 180])) <= 12, axis=-1)
    assert blue.sum() > 200


def test_quality_verdict_in_summary_csv_and_report(analysis_dir, tmp_path):
    """The self-check's verdict of each image reaches summary.csv and the report's image table."""
    folder = _copy(analysis_dir, tmp_path)
    path = folder / "uncal" / "summary.json"
    summary = json.loads(path.read_text())
    summary["quality"] = {"status": "doubtful", "reasons": ["a made-up reason"]}
    path.write_text(json.dumps(summary))
    from srpsa.inference.tables import rebuild_batch_tables

    rebuild_batch_tables(folder, [], [])
    table = pd.read_csv(folder / "summary.csv").set_index("image")
    cal = json.loads((folder / "cal" / "summary.json").read_text())["quality"]["status"]
    assert table.loc["cal", "quality"] == cal and table.loc["uncal", "quality"] == "doubtful"
    assert table.loc["uncal", "quality_reasons"] == "a made-up reason"
    assert "POOLED" not in table.index  # px and um do not pool; the pooled verdict is the worst image's:
    from srpsa.inference.tables import _pooled_quality

    pooled = _pooled_quality({"a": {"quality": {"status": "ok"}}, "b": summary, "c": {}})
    assert pooled == {"quality": "doubtful", "quality_reasons": "1 of 2 images doubtful or failed"}
    doc = parse(write_report(folder))
    (images,) = doc.find_all("table", **{"class": "images"})
    rows = {tr.attrs["data-image"]: tr for tr in images.find_all("tr") if "data-image" in tr.attrs}
    assert rows["uncal"].attrs["data-quality"] == "doubtful" and "doubtful" in rows["uncal"].all_text()
    assert rows["cal"].attrs["data-quality"] == cal
