"""Tests of the paired OM/SEM simulator: ground truth, physics sanity, determinism, config, CLI."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from scipy.spatial import cKDTree
from typer.testing import CliRunner

from srpsa.errors import ConfigError
from srpsa.synth import PRESETS, check_not_heldout, load_synth_config, make_pair, preset, write_pair
from srpsa.synth.config import SynthConfig, preset_toml, resolve
from srpsa.synth.layout import make_layout, sample_diameters
from srpsa.synth.om import psf_sigma_um, transmitted_profiles
from srpsa.synth.raster import rasterize_spheres

REPO = Path(__file__).resolve().parents[1]


def small(name: str = "primary", h: int = 96, w: int = 128) -> SynthConfig:
    cfg = preset(name)
    cfg.height, cfg.width = h, w
    return cfg


@pytest.fixture(scope="module")
def pair():
    cfg = small("secondary", 128, 160)
    cfg.layout.mode = "dense"
    return make_pair(cfg, 3)


@pytest.fixture(scope="module")
def aligned_pair():
    cfg = small("primary", 128, 160)
    cfg.layout.mode = "sparse"
    cfg.layout.sparse_area_fraction = 0.15
    cfg.misregistration.enabled = False
    return make_pair(cfg, 4)


def test_contract_shapes_and_columns(pair):
    h, w = 128, 160
    assert pair.om.shape == (h, w) and pair.om.dtype == np.float32
    assert pair.sem.shape == (256, 320) and pair.sem.dtype == np.float32
    assert 0.0 <= pair.om.min() and pair.om.max() <= 1.0 and 0.0 <= pair.sem.min() and pair.sem.max() <= 1.0
    for col in ["id", "x_px", "y_px", "r_px", "x_sem_px", "y_sem_px", "r_sem_px", "d_um", "z_um", "edge"]:
        assert col in pair.gt.columns
    assert pair.transform.shape == (3, 3)
    assert pair.fiducials_om.shape == (4, 2) and pair.fiducials_sem.shape == (4, 2)
    json.dumps(pair.params)  # JSON-serialisable
    assert pair.params["seed"] == 3


def test_transform_maps_om_gt_to_sem_gt(pair):
    t = pair.transform
    xy = pair.gt[["x_px", "y_px"]].to_numpy()
    mapped = xy @ t[:2, :2].T + t[:2, 2]
    np.testing.assert_allclose(mapped, pair.gt[["x_sem_px", "y_sem_px"]].to_numpy(), atol=1e-9)
    k = math.sqrt(abs(np.linalg.det(t[:2, :2])))
    np.testing.assert_allclose(pair.gt["r_sem_px"], pair.gt["r_px"] * k)
    np.testing.assert_allclose(pair.pixel_size_sem_um, pair.pixel_size_om_um / k)
    np.testing.assert_allclose(pair.gt["d_um"], 2 * pair.gt["r_px"] * pair.pixel_size_om_um)
    fid = pair.fiducials_om @ t[:2, :2].T + t[:2, 2]
    np.testing.assert_allclose(fid, pair.fiducials_sem)


def test_edge_flags(pair):
    h, w = pair.om.shape
    g = pair.gt
    cut = (g.x_px - g.r_px < -0.5) | (g.x_px + g.r_px > w - 0.5) | (g.y_px - g.r_px < -0.5) | (g.y_px + g.r_px > h - 0.5)
    assert (g.edge.astype(bool) == cut).all()
    assert g.edge.sum() > 0 and (g.edge == 0).sum() > 0  # dense field: both kinds present
    # every listed particle is at least partly inside the image
    assert ((g.x_px + g.r_px > -0.5) & (g.x_px - g.r_px < w - 0.5)).all()


def test_aligned_transform_is_pure_scale(aligned_pair):
    t = aligned_pair.transform
    np.testing.assert_allclose(t, [[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]])


@pytest.mark.parametrize(
    ("dist", "mean", "cv"), [("lognormal", 9.34, 25.0), ("normal", 6.73, 14.0), ("bimodal", 5.0, 15.0)]
)
def test_diameters_follow_requested_distribution(dist, mean, cv):
    size = preset("primary").size
    size.distribution, size.mean_um, size.cv_percent = dist, mean, cv
    size.mode2_ratio, size.mode2_cv_percent, size.mode2_fraction = 2.0, 10.0, 0.3
    d = sample_diameters(size, 40000, np.random.default_rng(0), pixel_size_um=0.4)
    if dist == "bimodal":
        m2 = 2.0 * mean
        want_mean = 0.7 * mean + 0.3 * m2
        var = 0.7 * (cv / 100 * mean) ** 2 + 0.3 * (0.1 * m2) ** 2 + 0.7 * 0.3 * (m2 - mean) ** 2
        want_cv = math.sqrt(var) / want_mean * 100
    else:
        want_mean, want_cv = mean, cv
    assert d.mean() == pytest.approx(want_mean, rel=0.02)
    assert d.std() / d.mean() * 100 == pytest.approx(want_cv, rel=0.05)


def test_dense_layout_area_fraction_and_overlap_limit():
    cfg = resolve(small(), np.random.default_rng(0))
    cfg.layout.mode, cfg.layout.area_fraction, cfg.layout.max_overlap = "dense", 0.62, 0.05
    cfg.size.distribution, cfg.size.mean_um, cfg.size.cv_percent = "lognormal", 8.0, 25.0
    lay = make_layout(cfg.size, cfg.layout, 0.4, (-15, -15, 415, 315), np.random.default_rng(1))
    inside = (lay.xy[:, 0] >= 0) & (lay.xy[:, 0] < 400) & (lay.xy[:, 1] >= 0) & (lay.xy[:, 1] < 300)
    assert np.sum(np.pi * lay.r_px[inside] ** 2) / (400 * 300) >= 0.5
    pairs = cKDTree(lay.xy).query_pairs(2 * lay.r_px.max(), output_type="ndarray")
    i, j = pairs.T
    dist = np.hypot(*(lay.xy[i] - lay.xy[j]).T)
    depth = lay.r_px[i] + lay.r_px[j] - dist
    assert (depth <= 0.05 * np.minimum(lay.r_px[i], lay.r_px[j]) + 1e-9).all()
    assert (depth > 0).sum() > 10  # dense: many touching / slightly overlapping pairs


def test_sem_and_om_particles_are_where_gt_says(aligned_pair):
    p = aligned_pair
    yy, xx = np.mgrid[: p.sem.shape[0], : p.sem.shape[1]]
    inner = np.zeros(p.sem.shape, bool)
    near = np.zeros(p.sem.shape, bool)
    for x, y, r in p.gt_sem[["x_sem_px", "y_sem_px", "r_sem_px"]].to_numpy():
        d = np.hypot(xx - x, yy - y)
        inner |= d < 0.7 * r
        near |= d < r + 3
    assert inner.sum() > 500
    assert p.sem[inner].mean() > p.sem[~near].mean() + 0.2  # particles bright on a dark substrate
    om = p.om
    yy, xx = np.mgrid[: om.shape[0], : om.shape[1]]
    rim = np.zeros(om.shape, bool)
    far = np.ones(om.shape, bool)
    for x, y, r in p.gt[["x_px", "y_px", "r_px"]].to_numpy():
        d = np.hypot(xx - x, yy - y)
        rim |= (d > 0.75 * r) & (d < 0.95 * r)
        far &= d > r + 4
    # Bright-field refracting spheres: a dark rim against the bright background.
    assert om[rim].mean() < 0.8 * np.median(om[far])


def test_fiducials_visible_in_both_images_and_free_of_particles(pair):
    om, sem = pair.om, pair.sem
    bg_om = np.median(om)
    sub_sem = np.percentile(sem, 20)
    for (xo, yo), (xs, ys) in zip(pair.fiducials_om, pair.fiducials_sem):
        assert om[int(round(yo)), int(round(xo))] < 0.5 * bg_om  # dark in OM
        assert sem[int(round(ys)), int(round(xs))] > sub_sem + 0.4  # bright in SEM
    arm = pair.params["derived"]["fiducial_arm_px"]
    width = pair.params["derived"]["fiducial_width_px"]
    for x, y, r in pair.gt[["x_px", "y_px", "r_px"]].to_numpy():
        for cx, cy in pair.fiducials_om:
            for hw, hh in ((arm, width / 2), (width / 2, arm)):
                dx, dy = max(abs(x - cx) - hw, 0.0), max(abs(y - cy) - hh, 0.0)
                assert math.hypot(dx, dy) >= r


def test_fiducial_shapes_match_in_both_images():
    # An empty slide (one tiny particle at most) with misregistration: the bright SEM crosses and the
    # dark OM crosses must be the same shapes, mapped through the ground-truth transform.
    from srpsa.synth.raster import rasterize_crosses

    cfg = small("primary", 160, 192)
    cfg.layout.mode, cfg.layout.sparse_area_fraction = "sparse", 1e-4
    cfg.misregistration.rotation_deg = (2.0, 3.0)
    p = make_pair(cfg, 8)
    arm, width = p.params["derived"]["fiducial_arm_px"], p.params["derived"]["fiducial_width_px"]
    want_om = rasterize_crosses(p.fiducials_om, arm, width, np.eye(3), p.om.shape)[0] > 0.5
    want_sem = rasterize_crosses(p.fiducials_om, arm, width, p.transform, p.sem.shape)[0] > 0.5
    # Half-way thresholds: a symmetric blur (the markers lie below the OM focal plane) crosses 50 %
    # at the true edge.
    got_om = p.om < 0.5 * (np.median(p.om) + np.percentile(p.om, 0.5))
    got_sem = p.sem > 0.5 * (np.median(p.sem) + np.percentile(p.sem, 99.5))
    for got, want, centres, min_iou in ((got_om, want_om, p.fiducials_om, 0.7), (got_sem, want_sem, p.fiducials_sem, 0.85)):
        iou = (got & want).sum() / (got | want).sum()
        assert iou > min_iou, iou  # the OM crosses lie below the focal plane: blurred corners
        yy, xx = np.nonzero(got)
        for cx, cy in centres:  # each marker's centroid is its stated centre
            near = np.hypot(xx - cx, yy - cy) < 0.6 * want.shape[0] / 4
            assert abs(xx[near].mean() - cx) < 1.0 and abs(yy[near].mean() - cy) < 1.0


def test_no_fiducials_option():
    cfg = small()
    cfg.fiducials.count = 0
    p = make_pair(cfg, 0)
    assert p.fiducials_om.shape == (0, 2) and p.fiducials_sem.shape == (0, 2)


def test_depth_order_occlusion():
    # Two overlapping discs; the one whose top is higher is drawn over the other.
    xy = np.array([[20.0, 20.0], [30.0, 20.0]])
    r = np.array([8.0, 8.0])
    ras = rasterize_spheres(xy, r, np.array([1.0, 5.0]), np.eye(3), (40, 50))
    assert ras.ids[20, 25] == 1 and ras.ids[20, 14] == 0 and ras.ids[2, 2] == -1
    ras = rasterize_spheres(xy, r, np.array([5.0, 1.0]), np.eye(3), (40, 50))
    assert ras.ids[20, 25] == 0
    assert ras.cov[20, 20] == 1.0 and 0.0 < ras.cov[20, 12] <= 1.0  # anti-aliased rim


def test_optics_physics():
    assert psf_sigma_um(0.55, 0.4) == pytest.approx(0.21 * 0.55 / 0.4)
    om = preset("primary").om
    om.n_medium, om.n_particle, om.na = 1.0, 1.59, 0.4
    prof = transmitted_profiles(om, np.array([0.0, 1.3]))
    assert prof[0, -5:].mean() < 0.2  # rim rays refracted out of the objective's cone: dark rim
    assert prof[1, :10].mean() > 1.5  # focus above the centre: ball-lens focal spot brighter than background


def test_determinism_same_seed_same_bytes(tmp_path):
    cfg = small("train", 96, 96)
    hashes = []
    for sub in ("a", "b", "c"):
        seed = 5 if sub != "c" else 6
        write_pair(make_pair(cfg, seed), tmp_path / sub, "x")
        hashes.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted((tmp_path / sub).iterdir())})
    assert hashes[0] == hashes[1]
    assert hashes[0]["x_om.png"] != hashes[2]["x_om.png"]


def test_train_preset_draws_within_ranges():
    cfg = preset("train")
    seen_modes = set()
    for s in range(20):
        r = resolve(cfg, np.random.default_rng(s))
        assert 8.0 <= r.size.mean_px <= 120.0
        assert 0.1 <= r.om.na <= 0.95
        seen_modes.add(r.layout.mode)
    assert seen_modes == {"sparse", "dense", "clusters"}
    p = make_pair(small("train", 128, 128), 11)
    d_px = 2 * p.gt["r_px"].to_numpy()
    assert len(d_px) == 0 or d_px.max() < 128 * 3


def test_toml_override_and_errors(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('preset = "tertiary"\nheight = 64\n[size]\nmean_um = 5.0\ncv_percent = [10.0, 20.0]\n[om]\ncolour = true\n')
    cfg = load_synth_config(good)
    assert cfg.name == "tertiary" and cfg.height == 64 and cfg.size.mean_um == 5.0
    assert cfg.size.cv_percent == (10.0, 20.0) and cfg.om.colour is True
    assert cfg.size.distribution == "normal"  # untouched tertiary value
    cases = {
        "unknown_key.toml": "[size]\nmean_diameter = 5.0\n",
        "unknown_section.toml": "[optics]\nna = 0.3\n",
        "bad_type.toml": '[om]\nna = "high"\n',
        "bad_range.toml": "[om]\nna = [0.9, 0.1]\n",
        "bad_choice.toml": '[layout]\nmode = "hexagonal"\n',
        "out_of_bounds.toml": "[layout]\narea_fraction = 0.95\n",
        "bad_preset.toml": 'preset = "nope"\n',
        "bad_toml.toml": "[size\n",
    }
    for fname, text in cases.items():
        path = tmp_path / fname
        path.write_text(text)
        with pytest.raises(ConfigError):
            load_synth_config(path)
    with pytest.raises(ConfigError):
        load_synth_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError):
        preset("nope")


def test_shipped_preset_files_are_canonical():
    from srpsa.synth.config import PRESET_DIR

    assert sorted(PRESETS) == sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    for name in PRESETS:
        path = PRESET_DIR / f"{name}.toml"
        assert path.read_text() == preset_toml(name), f"{path} is not canonical: rewrite with write_preset_files()"
        assert load_synth_config(path) == preset(name)


def test_presets_are_the_files_values():
    # spot checks against the paper's tables (Tables 3-5) and the held-out optics
    assert preset("primary").size.mean_um == 9.34 and preset("primary").size.cv_percent == 25.0
    assert preset("tertiary").size.distribution == "normal"
    assert preset("heldout").om.wavelength_um == 0.46
    a = preset("train")
    a.size.mean_um = 1.0
    assert preset("train").size.mean_um == (2.0, 150.0)  # each call is a fresh copy


def test_heldout_rule():
    check_not_heldout("train")
    for name in ("heldout", "heldout_eyepiece", "heldout_lowmag"):
        with pytest.raises(ConfigError):
            check_not_heldout(name)


def test_cli_writes_expected_files(tmp_path):
    from srpsa.cli.synth import command

    app = typer.Typer()
    app.command()(command)
    out = tmp_path / "out"
    args = [str(out), "--preset", "tertiary", "--n", "2", "--seed", "1", "--height", "64", "--width", "80", "--aligned"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for i in range(2):
        for suffix in ("om.png", "sem.png", "gt_om.csv", "gt_sem.csv", "transform.json", "fiducials.csv"):
            assert (out / f"tertiary_{i:05d}_{suffix}").is_file()
    gt = pd.read_csv(out / "tertiary_00000_gt_om.csv")
    assert list(gt.columns) == ["id", "x_px", "y_px", "r_px", "d_um", "z_um", "edge"]
    gts = pd.read_csv(out / "tertiary_00000_gt_sem.csv")
    assert list(gts.columns) == list(gt.columns)
    tr = json.loads((out / "tertiary_00000_transform.json").read_text())
    np.testing.assert_allclose(tr["matrix"], [[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]])
    fid = pd.read_csv(out / "tertiary_00000_fiducials.csv")
    assert list(fid.columns) == ["id", "x_om_px", "y_om_px", "x_sem_px", "y_sem_px"] and len(fid) == 4
    man = json.loads((out / "manifest.json").read_text())
    assert [p["stem"] for p in man["pairs"]] == ["tertiary_00000", "tertiary_00001"]
    params = man["pairs"][0]["params"]
    assert params["run"]["seed"] == 1 and params["config"]["misregistration"]["enabled"] is False
    assert params["config"]["size"]["mean_um"] == 6.73
    bad = CliRunner().invoke(app, [str(out), "--preset", "nope"])
    assert bad.exit_code != 0


def test_docs_list_every_parameter():
    import dataclasses

    from srpsa.synth.config import SECTIONS

    text = (REPO / "docs" / "simulator.md").read_text()
    for sec in SECTIONS:
        for f in dataclasses.fields(getattr(SynthConfig(), sec)):
            assert f"`{sec}.{f.name}`" in text, f"docs/simulator.md lacks {sec}.{f.name}"
