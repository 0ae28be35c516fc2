"""Inference backends: ONNX Runtime gives the torch backend's circles; the export cache is reused and invalidated."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from torch import nn

from srpsa.errors import InputError
from srpsa.inference import backend as B
from srpsa.inference.detect import Detector
from srpsa.inference.weights import PACKAGE_WEIGHTS, weights_hash
from srpsa.io import read_image

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "om_example.tif"
SCALES = [1.0, 0.5]  # the example's ~23 px particles sit in the network's band at scale 1


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A private copy of the shipped OM detector: exports must never land in the package folder."""
    folder = tmp_path / "detector-om"
    shutil.copytree(PACKAGE_WEIGHTS / "detector-om", folder)
    return folder


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return read_image(EXAMPLE).data[:256, :320]


def onnx_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("detector.*.onnx"))


def test_onnx_gives_the_torch_circles(weights, crop):
    torch_c, torch_s, _ = Detector.load(weights, backend="torch").detect(crop, scales=SCALES)
    onnx_c, onnx_s, _ = Detector.load(weights, backend="onnx").detect(crop, scales=SCALES)
    assert len(torch_c) == len(onnx_c) > 20
    # Scores may tie to float32 precision, so the order can differ: compare each circle to its nearest.
    dist, idx = cKDTree(onnx_c[:, :2]).query(torch_c[:, :2])
    np.testing.assert_allclose(onnx_c[idx], torch_c, atol=1e-3, rtol=0)
    np.testing.assert_allclose(onnx_s[idx], torch_s, atol=1e-5, rtol=0)


def test_export_cache_reused_then_invalidated_by_new_weights(weights, crop):
    first = Detector.load(weights, backend="onnx")
    (path,) = onnx_files(weights)
    digest = weights_hash(weights)
    assert path.name == f"detector.{digest[:16]}.onnx"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["weights_sha256"] == digest and sidecar["opset"] == B.OPSET and sidecar["torch"] == torch.__version__
    mtime = path.stat().st_mtime_ns

    second = Detector.load(weights, backend="onnx")
    assert onnx_files(weights) == [path] and path.stat().st_mtime_ns == mtime
    assert second.runner.path == first.runner.path

    _perturb_weights(weights)
    third = Detector.load(weights, backend="onnx")
    (new,) = onnx_files(weights)
    assert new != path and not path.exists() and not path.with_suffix(".json").exists()
    assert new.name == f"detector.{weights_hash(weights)[:16]}.onnx"
    # The new export computes the new weights: the same as torch with them.
    ref_c, _, _ = Detector.load(weights, backend="torch").detect(crop, scales=[1.0])
    got_c, _, _ = third.detect(crop, scales=[1.0])
    assert len(got_c) == len(ref_c)


def _perturb_weights(folder: Path) -> None:
    """Change one tensor and keep detector.json's sha256 consistent (load_weights checks it)."""
    from safetensors.torch import load_file, save_file

    wpath = folder / "detector.safetensors"
    tensors = load_file(str(wpath))
    tensors["head.bias"] = tensors["head.bias"] + 0.01
    save_file(tensors, str(wpath), metadata={"format": "srpsa-detector/1"})
    meta_path = folder / "detector.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(wpath.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))


class Tiny(nn.Module):
    """A stride-2 conv net: cheap to export, and its output size follows the input size."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_dynamic_axes_and_torch_agreement(tmp_path):
    module = Tiny().eval()
    digest = B.module_hash(module)
    onnx = B.make_runner(module, "onnx", cache_dir=tmp_path, weights_hash=digest, example_shape=(1, 1, 16, 16))
    plain = B.make_runner(module, "torch", cache_dir=None, weights_hash="", example_shape=(1, 1, 16, 16))
    x = np.random.default_rng(0).standard_normal((3, 1, 40, 24)).astype(np.float32)  # not the traced shape
    out = onnx(x)
    assert out.shape == (3, 2, 20, 12) and out.dtype == np.float32
    np.testing.assert_allclose(out, plain(x), atol=1e-5)


def test_read_only_cache_dir_falls_back_to_user_cache(tmp_path, monkeypatch):
    weights_dir, user = tmp_path / "weights", tmp_path / "user-cache"
    weights_dir.mkdir()
    monkeypatch.setenv("SRPSA_CACHE_DIR", str(user))
    real = B._export_to_cache

    def refuse_weights_dir(ort, module, folder, *args):
        if folder == weights_dir:  # tests run as root, where chmod cannot make a folder read-only
            raise PermissionError(13, "Permission denied")
        return real(ort, module, folder, *args)

    monkeypatch.setattr(B, "_export_to_cache", refuse_weights_dir)
    module = Tiny().eval()
    runner = B.make_runner(module, "onnx", cache_dir=weights_dir, weights_hash=B.module_hash(module), example_shape=(1, 1, 16, 16))
    assert runner.path.parent.parent == user and runner.path.parent.name.startswith("weights-")
    assert not list(weights_dir.iterdir())


def test_unknown_backend_and_missing_onnxruntime_are_input_errors(weights, monkeypatch):
    with pytest.raises(InputError, match="unknown inference backend 'tensorrt'"):
        Detector.load(weights, backend="tensorrt")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(InputError, match="needs onnxruntime"):
        Detector.load(weights, backend="onnx")


def test_unreadable_cached_export_is_replaced(tmp_path):
    module = Tiny().eval()
    kwargs = dict(cache_dir=tmp_path, weights_hash=B.module_hash(module), example_shape=(1, 1, 16, 16))
    path = B.make_runner(module, "onnx", **kwargs).path
    path.write_bytes(b"not an onnx graph")  # e.g. a disk that filled up under an older srpsa
    runner = B.make_runner(module, "onnx", **kwargs)
    assert runner.path == path and path.stat().st_size > 100
    assert runner(np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 2, 4, 4)


def test_full_pipeline_onnx_gives_the_torch_circles(tmp_path, crop):
    """Guide, translation, super-resolution and SEM detector all on ONNX Runtime: the same circles."""
    from srpsa.inference.enhance import EnhanceConfig, Enhancer
    from srpsa.inference.full import FullPipeline

    root = tmp_path / "w"
    shutil.copytree(PACKAGE_WEIGHTS, root, ignore=shutil.ignore_patterns("*.onnx", "detector.*.json", "generator.*.json"))

    def pipe(backend: str) -> FullPipeline:
        enh = Enhancer.load(root / "translate", root / "superres", EnhanceConfig(sr_mode="model"), backend=backend)
        return FullPipeline(enh, Detector.load(root / "detector-sem", backend=backend), Detector.load(root / "detector-om", backend=backend))

    ref, got = pipe("torch").detect(crop), pipe("onnx").detect(crop)
    assert len(ref.circles) > 20 and len(got.circles) == len(ref.circles)
    dist, idx = cKDTree(ref.circles[:, :2]).query(got.circles[:, :2])
    assert dist.max() < 1e-3
    np.testing.assert_allclose(got.circles[:, 2], ref.circles[idx, 2], atol=1e-3)
    assert sorted(p.parent.name for p in root.glob("*/*.onnx")) == ["detector-om", "detector-sem", "superres", "translate"]
