"""napari plugin (srpsa.viewer): manifest, reader and analyze widget with a hidden viewer (Qt offscreen)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")
npe2 = pytest.importorskip("npe2")

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "srpsa" / "viewer" / "napari.yaml"


@pytest.fixture(scope="module")
def viewer():
    # Under Xvfb (DISPLAY set) the xcb platform gives OpenGL through Mesa; without a display, offscreen
    # Qt builds the viewer but cannot draw layers, and the drawing tests skip.
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    try:
        v = napari.Viewer(show=False)
        v.add_image(np.zeros((4, 4)))  # needs OpenGL: offscreen Qt has none, Xvfb + Mesa has
        v.layers.clear()
    except Exception as exc:  # no Qt binding / OpenGL: nothing to test here
        pytest.skip(f"napari viewer cannot draw layers (run under xvfb-run): {type(exc).__name__}: {exc}")
    yield v
    v.close()


@pytest.fixture(scope="module")
def om_image(tmp_path_factory) -> Path:
    import imageio.v3 as iio

    from srpsa.synth import make_pair, preset

    cfg = preset("primary")
    cfg = replace(cfg, height=160, width=192, fiducials=replace(cfg.fiducials, count=0))
    path = tmp_path_factory.mktemp("nap") / "img0.png"
    iio.imwrite(path, np.clip(np.rint(make_pair(cfg, 0).om * 255), 0, 255).astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def analysed(om_image) -> Path:
    from srpsa.cli import main

    out = om_image.parent / "out"
    assert main(["analyze", str(om_image), "--out", str(out), "--pixel-size", "0.4", "--bootstrap", "0", "--workers", "1", "--pipeline", "detect-only"]) == 0
    return out


def test_manifest_valid() -> None:
    from npe2 import PluginManifest

    pm = PluginManifest.from_file(MANIFEST)
    assert pm.name == "srpsa"
    commands = {c.id: c.python_name for c in pm.contributions.commands}
    assert commands == {"srpsa.get_reader": "srpsa.viewer.reader:get_reader", "srpsa.analyze_widget": "srpsa.viewer.widget:analyze_widget"}
    assert pm.contributions.readers[0].accepts_directories


def test_reader_layers_without_viewer(analysed) -> None:
    """The reader's layer data builds napari layers without any display."""
    from napari.layers import Layer

    from srpsa.viewer.reader import read_analysis

    layers = [Layer.create(d, m, k) for d, m, k in read_analysis(str(analysed / "img0"))]
    assert [type(layer).__name__ for layer in layers] == ["Image", "Shapes"]
    assert layers[0].data.shape[:2] == (160, 192) and len(layers[1].data) == len(layers[1].features) > 0


def test_reader_layers(analysed, viewer) -> None:
    import pandas as pd

    from srpsa.viewer.reader import get_reader

    assert get_reader(str(analysed / "nothing")) is None and get_reader(str(analysed / "img0" / "particles.csv")) is None
    reader = get_reader(str(analysed))  # the batch folder
    assert reader is not None and get_reader(str(analysed / "img0")) is not None
    layers = reader(str(analysed))
    assert [t for _, _, t in layers] == ["image", "shapes"]
    table = pd.read_csv(analysed / "img0" / "particles.csv")
    for data, meta, kind in layers:
        viewer._add_layer_from_data(data, meta, kind)
    shapes = viewer.layers["img0 particles"]
    assert len(shapes.data) == len(table) and set(shapes.shape_type) == {"ellipse"}
    assert list(shapes.features["id"]) == list(table["id"]) and "flag" in shapes.features
    # ellipse centre = circle centre (row, col), width = 2 r; world coordinates in um
    corners = shapes.data[0]
    assert corners.mean(axis=0) == pytest.approx([table.y_px[0], table.x_px[0]], abs=1e-4)
    assert np.ptp(corners[:, 1]) == pytest.approx(2 * table.r_px[0], abs=1e-4)
    assert tuple(shapes.scale) == pytest.approx((0.4, 0.4)) and tuple(viewer.layers["img0"].scale) == pytest.approx((0.4, 0.4))
    viewer.layers.clear()


def test_widget_adds_particles(om_image, viewer) -> None:
    import imageio.v3 as iio

    from srpsa.viewer.widget import analyze_widget

    viewer.add_image(iio.imread(om_image), name="om")
    widget = analyze_widget()
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["om"]
    widget.pixel_size_um.value = 0.4
    widget()
    shapes = viewer.layers["srpsa particles"]
    assert len(shapes.data) > 5 and "d_um" in shapes.features
    assert shapes.features["d_um"].to_numpy() == pytest.approx(2 * 0.4 * shapes.features["r_px"].to_numpy(), rel=1e-3)
