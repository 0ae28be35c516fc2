"""Dataset preparation: split by image, aligned patch pairs under augmentation, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from srpsa.cli.prepare import command
from srpsa.errors import InputError
from srpsa.training.prepare import AugmentConfig, PrepareConfig, dihedral, parse_split, prepare_dataset, split_stems

K = 2  # SEM pixels per OM pixel in the test pairs


def _png16(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), np.round(image * 65535).astype(np.uint16))


def _read16(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float64) / 65535


def _pairs(folder: Path, n: int, shape: tuple[int, int] = (64, 96)) -> Path:
    """Pairs whose SEM is the OM with every pixel repeated K x K: alignment is checkable exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(123)
    for i in range(n):
        om = np.round(rng.random(shape) * 65535) / 65535
        _png16(folder / f"img{i:02d}_om.png", om)
        _png16(folder / f"img{i:02d}_sem.png", np.kron(om, np.ones((K, K))))
    (folder / "img00_gt_om.csv").write_text("x_px,y_px,r_px\n")  # unrelated files are ignored
    return folder


def _index(out: Path) -> list[dict]:
    with open(out / "patches.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_split_is_by_image(tmp_path):
    src = _pairs(tmp_path / "pairs", 6)
    summary = prepare_dataset(src, tmp_path / "out", PrepareConfig(patch=32, stride=32, split=(0.5, 0.25, 0.25), augment=1))
    meta = json.loads((tmp_path / "out" / "split.json").read_text())
    stems = [s for name in ("train", "val", "test") for s in meta[name]]
    assert sorted(stems) == [f"img{i:02d}" for i in range(6)]  # each image in exactly one split
    assert all(meta[name] for name in ("train", "val", "test"))
    split_of = {s: name for name in ("train", "val", "test") for s in meta[name]}
    rows = _index(tmp_path / "out")
    assert all(split_of[r["stem"]] == r["split"] for r in rows)
    # 64x96 OM -> 2x3 patches of 32 px; training patches are doubled by --augment 1.
    assert summary.patches["train"] == 6 * 2 * len(meta["train"]) and summary.patches["val"] == 6 * len(meta["val"])
    assert {r["aug"] for r in rows if r["split"] != "train"} == {"0"}


def test_patches_stay_aligned_under_augmentation(tmp_path):
    src = _pairs(tmp_path / "pairs", 1)
    off = AugmentConfig(brightness=0, contrast=0, gamma=0, noise=0)
    out = tmp_path / "out"
    prepare_dataset(src, out, PrepareConfig(patch=32, stride=16, split=(1, 0, 0), augment=4, augmentation=off))
    rows = _index(out)
    assert len({r["dihedral"] for r in rows}) > 2  # several geometric transforms exercised
    om_full = _read16(src / "img00_om.png")
    for r in rows:
        om_p, sem_p = _read16(out / r["om_file"]), _read16(out / r["sem_file"])
        assert om_p.shape == (32, 32) and sem_p.shape == (32 * K, 32 * K)
        np.testing.assert_array_equal(sem_p, np.kron(om_p, np.ones((K, K))))
        y, x = int(r["y"]), int(r["x"])
        np.testing.assert_array_equal(om_p, dihedral(om_full[y : y + 32, x : x + 32], int(r["dihedral"])))


def test_photometric_changes_om_only(tmp_path):
    src = _pairs(tmp_path / "pairs", 1)
    out = tmp_path / "out"
    prepare_dataset(src, out, PrepareConfig(patch=32, stride=32, split=(1, 0, 0), augment=2, seed=5))
    om_full = _read16(src / "img00_om.png")
    for r in (r for r in _index(out) if r["aug"] != "0"):
        y, x, op = int(r["y"]), int(r["x"]), int(r["dihedral"])
        expected = dihedral(om_full[y : y + 32, x : x + 32], op)
        np.testing.assert_array_equal(_read16(out / r["sem_file"]), np.kron(expected, np.ones((K, K))))
        om_p = _read16(out / r["om_file"])
        assert not np.array_equal(om_p, expected)
        assert np.corrcoef(om_p.ravel(), expected.ravel())[0, 1] > 0.8  # still the same, aligned content


def test_deterministic_for_a_seed(tmp_path):
    src = _pairs(tmp_path / "pairs", 4)
    cfg = PrepareConfig(patch=32, stride=32, split=(0.5, 0.25, 0.25), augment=2, seed=7)

    def snapshot(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    prepare_dataset(src, tmp_path / "a", cfg)
    prepare_dataset(src, tmp_path / "b", cfg)
    a = snapshot(tmp_path / "a")
    assert a == snapshot(tmp_path / "b")
    cfg.seed = 8
    prepare_dataset(src, tmp_path / "a", cfg)  # re-run into the same folder replaces the old patches
    assert snapshot(tmp_path / "a") != a
    listed = {r["om_file"] for r in _index(tmp_path / "a")} | {r["sem_file"] for r in _index(tmp_path / "a")}
    on_disk = {str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.png")}
    assert listed == on_disk


def test_split_stems_and_mask(tmp_path):
    stems = [f"s{i}" for i in range(10)]
    s = split_stems(stems, (0.8, 0.1, 0.1), seed=3)
    assert [len(s[n]) for n in ("train", "val", "test")] == [8, 1, 1]
    assert s == split_stems(list(reversed(stems)), (0.8, 0.1, 0.1), seed=3)
    src = _pairs(tmp_path / "pairs", 1)
    mask = np.full((64 * K, 96 * K), 255, np.uint8)
    mask[:10, :10] = 0  # invalidates the top-left patch only
    cv2.imwrite(str(src / "img00_mask.png"), mask)
    summary = prepare_dataset(src, tmp_path / "out", PrepareConfig(patch=32, stride=32, split=(1, 0, 0)))
    assert summary.patches["train"] == 5


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="--split"):
        parse_split("0.8,0.3,0.1")
    with pytest.raises(InputError, match="--split"):
        parse_split("a,b")
    src = _pairs(tmp_path / "pairs", 1)
    _png16(src / "odd_om.png", np.zeros((20, 30)))
    _png16(src / "odd_sem.png", np.zeros((41, 60)))
    with pytest.raises(InputError, match="integer multiple"):
        prepare_dataset(src, tmp_path / "out", PrepareConfig(patch=16, stride=16))
    (src / "odd_sem.png").unlink()
    with pytest.raises(InputError, match="no SEM partner"):
        prepare_dataset(src, tmp_path / "out")
    with pytest.raises(InputError, match="no registered pairs"):
        prepare_dataset(tmp_path, tmp_path / "out")


def test_cli(tmp_path):
    src = _pairs(tmp_path / "pairs", 3)
    app = typer.Typer()
    app.command()(command)
    args = [str(src), "--out", str(tmp_path / "out"), "--patch", "64", "--stride", "32", "--split", "0.34,0.33,0.33",
            "--augment", "1", "--resize", "0.5", "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "prepared train 1 image(s)" in result.output
    rows = _index(tmp_path / "out")
    assert _read16(tmp_path / "out" / rows[0]["om_file"]).shape == (32, 32)
    assert _read16(tmp_path / "out" / rows[0]["sem_file"]).shape == (64, 64)
