"""The public Python API: srpsa.analyze / srpsa.Analyzer / Result, and its agreement with the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

import srpsa
from srpsa.cli import main
from srpsa.errors import ParameterError
from srpsa.synth import make_pair, preset

SHAPE = (160, 192)


@pytest.fixture(scope="module")
def om_png(tmp_path_factory) -> tuple[Path, np.ndarray]:
    cfg = preset("primary")
    cfg = replace(cfg, height=SHAPE[0], width=SHAPE[1], fiducials=replace(cfg.fiducials, count=0))
    pixels = np.clip(np.rint(make_pair(cfg, 0).om * 255), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("api") / "img.png"
    iio.imwrite(path, pixels)
    return path, pixels


def test_import_srpsa_stays_cheap():
    code = "import sys, srpsa; print(sorted(m for m in ('torch', 'pandas', 'cv2', 'srpsa.inference') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert {"analyze", "Analyzer", "Result"} <= set(dir(srpsa))


def test_analyze_on_an_array_gives_the_cli_circles(om_png, tmp_path, capsys):
    path, pixels = om_png
    assert main(["analyze", str(path), "--out", str(tmp_path), "--pixel-size", "0.4", "--bootstrap", "0", "--workers", "1"]) == 0
    capsys.readouterr()
    cli = pd.read_csv(tmp_path / "img" / "particles.csv")
    result = srpsa.analyze(pixels, pixel_size_um=0.4, bootstrap=0)
    assert len(cli) > 3 and list(result.particles.columns) == list(cli.columns)
    np.testing.assert_allclose(result.particles[["x_px", "y_px", "r_px", "d_um"]].to_numpy(), cli[["x_px", "y_px", "r_px", "d_um"]].to_numpy(), atol=5e-5)
    np.testing.assert_array_equal(result.particles["edge"].to_numpy(), cli["edge"].to_numpy())
    summary = json.loads((tmp_path / "img" / "summary.json").read_text())
    assert result.statistics.q0["mean"] == pytest.approx(summary["statistics"]["Q0"]["mean"], rel=1e-9)
    assert isinstance(result.warnings, list)
    assert result.quality.status in ("ok", "doubtful", "failed")
    assert summary["quality"]["status"] == result.quality.status

    # save() writes exactly the CLI's per-image files, with the same particles
    out = result.save(tmp_path / "api")
    assert {p.name for p in out.iterdir()} == {p.name for p in (tmp_path / "img").iterdir()}
    assert (out / "particles.csv").read_text() == (tmp_path / "img" / "particles.csv").read_text()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["settings"] == summary["settings"] and saved["count"] == summary["count"]


def test_analyzer_loads_models_once_and_takes_paths_and_float_colour(om_png):
    path, pixels = om_png
    analyzer = srpsa.Analyzer(pipeline="detect-only", bootstrap=0)
    detector = analyzer.detector
    from_file = analyzer.analyze(path, pixel_size_um=0.4)
    rgb = np.repeat(pixels[..., None], 3, axis=2).astype(np.float64) / 255.0  # gray as RGB floats: same luma
    from_rgb = analyzer.analyze(rgb, pixel_size_um=0.4)
    assert analyzer.detector is detector and len(from_file.particles) > 3
    # the same circles; their order (by score) may differ where scores tie to float noise (saturated at 1)
    def by_position(c):
        return c[np.lexsort((c[:, 1], c[:, 0]))]

    np.testing.assert_allclose(by_position(from_rgb.circles), by_position(from_file.circles), atol=1e-4)
    # uncalibrated array: sizes in px, said in a warning
    bare = analyzer.analyze(pixels)
    assert bare.statistics.unit == "px" and bare.particles["d_um"].isna().all()
    assert len(bare.diameters) == bare.summary["count_used"]
    assert any("pixel size" in w for w in bare.warnings)
    frame = bare.statistics.to_frame()
    assert set(frame["distribution"]) == {"Q0", "Q3"} and {"mean", "d50", "d90"} <= set(frame["statistic"])
    assert frame.loc[(frame.distribution == "Q0") & (frame.statistic == "n"), "value"].item() == bare.summary["count_used"]


@pytest.mark.parametrize(
    "call, param",
    [
        (lambda img: srpsa.analyze(img, pixel_size_um=-1), "pixel_size_um"),
        (lambda img: srpsa.analyze(img, pipeline="magic"), "pipeline"),
        (lambda img: srpsa.analyze(img, backend="tensorrt"), "backend"),
        (lambda img: srpsa.analyze(img, diameter_range=(10, 5)), "diameter_range"),
        (lambda img: srpsa.analyze(img, diameter_range=(5, 10), diameter_unit="um"), "diameter_range"),
        (lambda img: srpsa.analyze(img, pixel_size=0.4), "pixel_size"),
        (lambda img: srpsa.analyze("no/such/file.png"), "file.png"),
        (lambda img: srpsa.analyze(img[None]), "image"),
        (lambda img: srpsa.Analyzer(pipeline="detect-only").analyze(img, pipeline="full"), "pipeline"),
    ],
)
def test_errors_name_the_parameter(om_png, call, param):
    _, pixels = om_png
    with pytest.raises(srpsa.errors.InputError) as info:
        call(pixels)
    message = str(info.value)
    assert param in message and "--" not in message.split()[0]


def test_parameter_error_message_and_cli_flag():
    from srpsa.cli.analyze import as_flag_error

    exc = ParameterError("pixel_size_um", "must be > 0, got -1")
    assert str(exc) == "pixel_size_um must be > 0, got -1"
    assert str(as_flag_error(exc)) == "--pixel-size must be > 0, got -1"


def test_one_defaults_table_for_cli_and_api():
    import inspect

    from srpsa.cli.analyze import command
    from srpsa.inference import defaults as D
    from srpsa.inference.pipeline import AnalyzeSettings
    from srpsa.io.guard import DEFAULT_MAX_PIXELS

    assert D.MAX_PIXELS == DEFAULT_MAX_PIXELS
    options = {name: p.default.default for name, p in inspect.signature(command).parameters.items()}
    # --pipeline has no fixed default: defaults.PIPELINE, or what a fine-tuned --weights folder names
    assert options["pipeline"] is None and AnalyzeSettings.__dataclass_fields__["pipeline"].default == D.PIPELINE
    fields = {"modality": "modality", "flow": "enhance_flow", "sr": "enhance_sr",
              "diameter_unit": "diameter_unit", "bootstrap": "bootstrap", "seed": "seed", "max_pixels": "max_pixels",
              "include_edge": "include_edge"}
    for option, field in fields.items():
        assert options[option] == AnalyzeSettings.__dataclass_fields__[field].default, option
    assert options["backend"] == AnalyzeSettings.__dataclass_fields__["backend"].default == "auto"


def test_loaded_image_takes_the_given_pixel_size_and_settings_do_not_mix(om_png):
    from srpsa.inference.pipeline import AnalyzeSettings
    from srpsa.io import read_image

    path, _ = om_png
    analyzer = srpsa.Analyzer(settings=AnalyzeSettings(pipeline="detect-only", bootstrap=0))
    result = analyzer.analyze(read_image(path), pixel_size_um=0.5)
    assert result.summary["pixel_size_um"] == 0.5 and result.summary["pixel_size_source"] == "override"
    assert result.statistics.unit == "um" and not any("no pixel size" in w for w in result.warnings)
    assert result.summary["image"] == str(path.resolve())
    assert analyzer.analyze(np.zeros((64, 64), np.uint8), name="blank").summary["image"] == "blank"
    with pytest.raises(ParameterError, match="^settings "):
        srpsa.Analyzer(settings=AnalyzeSettings(pipeline="detect-only"), bootstrap=0)
