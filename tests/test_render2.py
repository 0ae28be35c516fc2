"""benchmarks/render2: deterministic per seed, ground truth on the particles, independent of srpsa."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import render2  # noqa: E402
from render2.layout import LayoutSpec, place  # noqa: E402
from render2.optics import coverage  # noqa: E402

SHAPE = (160, 160)


def _gray(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=2) if img.ndim == 3 else img.astype(float)


@pytest.mark.parametrize("style", list(render2.STYLES))
def test_deterministic_per_seed(style: str) -> None:
    a = render2.render(style, render2.image_seed(style, 0), SHAPE)
    b = render2.render(style, render2.image_seed(style, 0), SHAPE)
    c = render2.render(style, render2.image_seed(style, 1), SHAPE)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.circles, b.circles)
    assert not np.array_equal(a.circles, c.circles)
    assert a.image.dtype == np.uint8 and a.image.shape[:2] == SHAPE
    assert len(a.circles) > 0 and a.circles[:, 2].min() >= 2.5 and a.circles[:, 2].max() <= 75


@pytest.mark.parametrize("style, sign", [("dark_on_bright", -1), ("tem", -1), ("reflected", 1), ("sem", 1)])
def test_ground_truth_matches_image(style: str, sign: int) -> None:
    # Inside the ground-truth disks the image is darker (dark-on-bright, TEM) or brighter (reflected, SEM).
    for k in range(3):
        r = render2.render(style, render2.image_seed(style, k), SHAPE)
        inside = coverage(r.circles * [1, 1, 1], SHAPE) > 0.99
        g = _gray(r.image)
        assert inside.any() and (~inside).any()
        assert sign * (g[inside].mean() - g[~inside].mean()) > 10, (style, k)


def test_layout_contact_rule_and_density() -> None:
    rng = np.random.default_rng(900_000_123)
    spec = LayoutSpec(median_diameter=20, cv=0.2, area_fraction=0.6, cluster=0.8, overlap=0.0)
    c = place(rng, (256, 256), spec)
    d = np.hypot(c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1])
    s = c[:, None, 2] + c[None, :, 2]
    off = ~np.eye(len(c), dtype=bool)
    assert np.all(d[off] >= s[off] - 1e-6)  # touching allowed, never overlapping
    assert np.any(np.abs(d[off] - s[off]) < 0.15 * s[off])  # and there are touching pairs
    assert np.sum(np.pi * c[:, 2] ** 2) / 256**2 > 0.4


def test_seeds_below_held_out_range_are_refused() -> None:
    with pytest.raises(ValueError, match="seed"):
        render2.render("binary", 12_345, SHAPE)


def test_does_not_import_srpsa() -> None:
    for f in (BENCH / "render2").glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("srpsa") for n in names), f"{f.name} imports {names}"
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); import render2; render2.render('halo', render2.image_seed('halo', 0), (64, 64));"
            "print(sorted(m for m in sys.modules if m.startswith('srpsa')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_cli_writes_a_set(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(BENCH / "render2"), "--out", str(tmp_path), "--styles", "binary", "--n", "1", "--size", "96", "96"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    from render2.files import read_circles

    circ = read_circles(tmp_path / "binary_000.csv")
    assert circ.shape[1] == 3 and len(circ) > 0 and (tmp_path / "manifest.json").exists()
    bad = subprocess.run([sys.executable, str(BENCH / "render2"), "--out", str(tmp_path), "--styles", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--styles" in bad.stderr and "Traceback" not in bad.stderr
