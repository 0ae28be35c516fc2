"""`srpsa finetune` (issue 15): weights folder, manifest hashes, analyze --weights, bad input, never worse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpsa.cli import main
from srpsa.inference import weights as W
from srpsa.inference.finetuned import MANIFEST, pipeline_note, preferred_pipeline
from srpsa.io.provenance import file_sha256


def _disks(folder: Path, n: int, size: int = 128, seed: int = 0, labels: bool = True) -> Path:
    """``n`` images of bright disks (r 6-10 px) on a dark background, each with ``<stem>.csv`` (x, y, r)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        img, rows = np.full((size, size), 0.2), []
        for _ in range(200):
            r = rng.uniform(6, 10)
            x, y = rng.uniform(r + 2, size - r - 2, 2)
            if len(rows) < 8 and all(np.hypot(x - a, y - b) >= r + c + 3 for a, b, c in rows):
                rows.append((x, y, r))
                img[np.hypot(xx - x, yy - y) <= r] = 0.8
        img += rng.normal(0, 0.02, img.shape)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"img{k}.png")
        if labels:
            (folder / f"img{k}.csv").write_text("x,y,r\n" + "".join(f"{x:.3f},{y:.3f},{r:.3f}\n" for x, y, r in rows))
    return folder


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> tuple[Path, Path, int, str]:
    """One CLI fine-tune on 3 tiny images (4 steps), shared by the tests below."""
    base = tmp_path_factory.mktemp("ft")
    data = _disks(base / "data", 3)
    out = base / "model"
    rc = main(["finetune", str(data), "--out", str(out), "--max-steps", "4", "--minutes", "3", "--seed", "0"])
    return data, out, rc, "ok"


def test_cli_writes_a_complete_weights_folder(tuned):
    data, out, rc, _ = tuned
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, W.DETECTOR_OM, W.DETECTOR_SEM, W.TRANSLATOR, W.SUPERRES])
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))  # the temporary folder was renamed, nothing left
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["adapted"] == W.DETECTOR_OM
    assert manifest["pipeline"] == ("detect-only" if manifest["kept"] == "finetuned" else None)
    assert len(manifest["data"]["holdout_images"]) == 1 and len(manifest["data"]["train_images"]) == 2
    assert manifest["training"]["steps"] == 4


def test_manifest_hashes_match_the_files(tuned):
    _, out, _, _ = tuned
    manifest = json.loads((out / MANIFEST).read_text())
    for name in (W.DETECTOR_OM, W.DETECTOR_SEM, W.TRANSLATOR, W.SUPERRES):
        entry = manifest["models"][name]
        assert entry["sha256"] == W.weights_hash(out / name)
        files = {f.name for f in (out / name).iterdir() if f.is_file() and not f.name.startswith(".")}
        assert set(entry["files"]) >= {f for f in files if not f.endswith(".onnx")}
        for fname, digest in entry["files"].items():
            assert file_sha256(out / name / fname) == digest
    # untouched models are byte-identical copies of the base; the adapted one is new
    for name in (W.DETECTOR_SEM, W.TRANSLATOR, W.SUPERRES):
        assert manifest["models"][name]["sha256"] == W.weights_hash(W.model_dir(name))
    if manifest["kept"] == "finetuned":
        assert manifest["models"][W.DETECTOR_OM]["sha256"] != W.weights_hash(W.model_dir(W.DETECTOR_OM))


def test_held_out_score_never_worse_than_the_start(tuned):
    from srpsa.training.finetune import selection_key

    _, out, _, _ = tuned
    hold = json.loads((out / MANIFEST).read_text())["holdout"]
    assert selection_key(hold["after"]) >= selection_key(hold["before"])


def test_analyze_uses_the_written_detector(tuned, tmp_path):
    data, out, _, _ = tuned
    manifest = json.loads((out / MANIFEST).read_text())
    res = tmp_path / "res"
    assert main(["analyze", str(data / "img0.png"), "--out", str(res), "--weights", str(out), "--bootstrap", "0",
                 "--backend", "torch", "--pipeline", "detect-only"]) == 0
    summary = json.loads((res / "img0" / "summary.json").read_text())
    assert summary["models"][W.DETECTOR_OM]["sha256"] == manifest["models"][W.DETECTOR_OM]["sha256"]
    assert summary["count"] >= 1


def test_an_om_finetune_analyses_in_detect_only_by_default(tmp_path):
    """analyze --weights without --pipeline takes the manifest's pipeline; asking for full warns."""
    from srpsa.cli.analyze import _pipeline_for_weights
    from srpsa.training.finetune_output import write_weights_folder

    def copy_detector(dest: Path) -> None:
        import shutil

        shutil.copytree(W.model_dir(W.DETECTOR_OM), dest, ignore=shutil.ignore_patterns(".*", "*.onnx"))

    out = write_weights_folder(tmp_path / "model", W.weights_root(), W.DETECTOR_OM, copy_detector,
                               {"adapted": W.DETECTOR_OM, "kept": "finetuned", "pipeline": "detect-only"})
    assert preferred_pipeline(out) == "detect-only"
    assert _pipeline_for_weights(None, "om", out) == "detect-only"
    assert _pipeline_for_weights("full", "om", out) == "full"  # an explicit --pipeline wins
    assert _pipeline_for_weights(None, "om", None) == "full"  # shipped weights: the default
    assert _pipeline_for_weights(None, "sem", out) == "full"  # (unused for SEM input)
    assert pipeline_note(out, "om", "full") is not None and pipeline_note(out, "om", "detect-only") is None


def test_a_worse_finetune_writes_the_original(tmp_path):
    """A learning rate that wrecks the network: nothing beats the start, so the original is written."""
    from srpsa.training.finetune import finetune

    data = _disks(tmp_path / "data", 2, seed=3)
    result = finetune(data, tmp_path / "model", minutes=3, max_steps=2, eval_every=1, lr=50.0)
    assert result.kept == "original" and result.after == result.before and result.warnings
    assert W.weights_hash(tmp_path / "model" / W.DETECTOR_OM) == W.weights_hash(W.model_dir(W.DETECTOR_OM))


@pytest.mark.parametrize("case", ["missing", "no_labels", "one_image", "out_not_empty", "minutes"])
def test_bad_input_is_one_line_error(case, tmp_path, capsys):
    data, out, extra = tmp_path / "data", tmp_path / "model", []
    if case == "missing":
        data = tmp_path / "nope"
    elif case == "no_labels":
        _disks(data, 2, labels=False)
    elif case == "one_image":
        _disks(data, 1)
    elif case == "out_not_empty":
        _disks(data, 2)
        out.mkdir()
        (out / "x.txt").write_text("keep me")
    else:
        _disks(data, 2)
        extra = ["--minutes", "0"]
    rc = main(["finetune", str(data), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("srpsa: error:"), err
    assert ("FOLDER" in err[0]) if case in ("missing", "no_labels", "one_image") else ("--out" in err[0] or "--minutes" in err[0])
    if case == "out_not_empty":
        assert (out / "x.txt").read_text() == "keep me"
    else:
        assert not out.exists()


def test_weights_folder_is_written_atomically(tmp_path):
    from srpsa.training.finetune_output import write_weights_folder

    def broken(dest: Path) -> None:
        dest.mkdir()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_weights_folder(tmp_path / "model", W.weights_root(), W.DETECTOR_OM, broken, {"kept": "finetuned"})
    assert list(tmp_path.iterdir()) == []


def test_pinned_scales_join_the_automatic_ones():
    from srpsa.inference.detect import _with_pinned
    from srpsa.models.detector_config import DetectorConfig, InferenceConfig
    from srpsa.training.detector_data import Sample
    from srpsa.training.finetune import label_scales

    inf = InferenceConfig(pinned_scales=(0.5, 0.26))
    # 0.5 is new; 0.26 lies within half a pyramid step (factor sqrt 2) of 0.25, so it is not added twice
    assert _with_pinned([1.0, 0.25], inf) == [1.0, 0.5, 0.25]
    assert _with_pinned([1.0], InferenceConfig()) == [1.0]
    circles = np.array([[50.0, 50.0, 20.0], [80.0, 80.0, 22.0]])
    cfg = label_scales([Sample(np.zeros((128, 128), np.float32), circles)], DetectorConfig())
    assert cfg.inference.auto_scale and cfg.inference.pinned_scales
    # the pinned scales bring the labelled radii (20-22 px) into the head's band (cells of 4 px)
    cells = [22.0 * s / 4 for s in cfg.inference.pinned_scales]
    assert any(cfg.inference.valid_band[0] <= c <= cfg.inference.valid_band[1] for c in cells)
