"""Issue 17: each defect a hostile-but-fair probe found, kept fixed by a test (docs/reliability.md).

Items 1-6 run `srpsa analyze` end to end in a temporary folder (in-process, or as a subprocess where
a process must be killed) on small images with ``--pipeline detect-only --bootstrap 0``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from disks import disk_image
from srpsa.cli import main
from srpsa.errors import InputError

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = ["--pipeline", "detect-only", "--bootstrap", "0"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("in")
    paths = []
    for seed in range(3):
        path = folder / f"img{seed}.png"
        iio.imwrite(path, disk_image(seed))
        paths.append(path)
    return paths


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["analyze", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _subprocess(args: list[str], env: dict | None = None, **kw) -> subprocess.Popen:
    environ = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "srpsa", "analyze", *args], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# ------------------------------------------------------------------ 1. size guard before decoding
def _tiled_bomb(path: Path, side: int) -> None:
    """A zlib-tiled TIFF declaring side x side px, a few hundred kB on disk (all tiles zero)."""
    import tifffile

    tile = np.zeros((256, 256), np.uint8)
    n = (-(-side // 256)) ** 2
    tifffile.imwrite(path, data=(tile for _ in range(n)), shape=(side, side), dtype=np.uint8,
                     tile=(256, 256), compression="zlib")


def _png_declaring(path: Path, width: int, height: int) -> None:
    """A valid small PNG whose IHDR is rewritten to declare width x height (CRC fixed)."""
    iio.imwrite(path, np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def test_tiff_bomb_is_refused_from_its_header(tmp_path, capsys, monkeypatch):
    import tifffile

    bomb = tmp_path / "bomb.tif"
    _tiled_bomb(bomb, 16384)  # 268 Mpx declared, ~300 kB on disk
    assert bomb.stat().st_size < 2_000_000

    def no_decoding(*a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    t0 = time.perf_counter()
    code, _, err = _run([str(bomb), "--out", str(tmp_path / "o"), *FAST, "--workers", "1"], capsys)
    assert time.perf_counter() - t0 < 20
    assert code == 1 and "Traceback" not in err
    error = pd.read_csv(tmp_path / "o" / "errors.csv").loc[0, "error"]
    assert "268,435,456 pixels" in error and "--max-pixels" in error


def test_every_format_gets_the_same_limit_and_the_flag_raises_it(tmp_path, capsys):
    big_png = tmp_path / "big.png"
    _png_declaring(big_png, 20000, 20000)
    out = tmp_path / "o"
    code, _, _ = _run([str(big_png), "--out", str(out), *FAST, "--workers", "1"], capsys)
    error = pd.read_csv(out / "errors.csv").loc[0, "error"]
    assert code == 1 and "400,000,000 pixels" in error and "--max-pixels" in error
    # Raised past the declared size, the image reaches the decoder (which finds the data missing).
    code, _, _ = _run([str(big_png), "--out", str(out), *FAST, "--workers", "1", "--max-pixels", "500000000"], capsys)
    error = pd.read_csv(out / "errors.csv").loc[0, "error"]
    assert code == 1 and "--max-pixels" not in error


def test_one_default_limit_everywhere():
    from srpsa.inference.pipeline import AnalyzeSettings
    from srpsa.io.guard import DEFAULT_MAX_PIXELS

    # Pillow's documented default MAX_IMAGE_PIXELS (its refusal threshold is twice that). The live
    # global is not compared: a caller of the library may have changed it.
    pillow_default = 1024 * 1024 * 1024 // 4 // 3
    assert AnalyzeSettings().max_pixels == DEFAULT_MAX_PIXELS == 2 * pillow_default


def test_pillow_limit_is_restored_under_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from srpsa.io.guard import pillow_limit

    before = Image.MAX_IMAGE_PIXELS

    def one(i: int) -> None:
        with pillow_limit(1000 + i):
            assert Image.MAX_IMAGE_PIXELS == 1000 + i

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    assert Image.MAX_IMAGE_PIXELS == before


# ------------------------------------------------------------------ 2. workers die with their parent
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_parent_stops_its_workers(images, tmp_path, sig):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "o"
    proc = _subprocess([str(images[0].parent), "--out", str(out), *FAST, "--workers", "2"], env={"SRPSA_TEST_FAULT": "*:sleep"})
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 60
    children: list = []
    def is_worker(child) -> bool:
        try:
            return "spawn_main" in " ".join(child.cmdline())
        except psutil.Error:  # gone or not readable yet
            return False

    while time.time() < deadline:  # two pool workers (plus the resource tracker)
        children = parent.children(recursive=True)
        workers = [c for c in children if is_worker(c)]
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    assert len(workers) >= 2, "pool workers did not start"
    time.sleep(1.0)  # let them import and reach the image
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphans left: {[p.pid for p in alive]}"


# ------------------------------------------------------------------ 3. resume only with the same settings
def test_changed_settings_are_refused_not_served_stale(images, tmp_path, capsys):
    out = tmp_path / "o"
    base = [str(images[0]), "--out", str(out), *FAST, "--workers", "1"]
    assert _run(base, capsys)[0] == 0
    summary = json.loads((out / "img0" / "summary.json").read_text())
    assert len(summary["fingerprint"]) == 64
    code, _, err = _run([*base, "--pixel-size", "0.4"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--pixel-size None -> 0.4" in err and "--force" in err
    code, _, err = _run([str(images[0]), "--out", str(out), "--bootstrap", "0", "--workers", "1"], capsys)
    assert code == 2 and "--pipeline detect-only -> full" in err
    code, _, err = _run(base, capsys)  # same settings: still a resume
    assert code == 0 and "skipped" in err
    assert _run([*base, "--pixel-size", "0.4", "--force"], capsys)[0] == 0
    assert json.loads((out / "img0" / "summary.json").read_text())["unit"] == "um"


def test_same_name_from_another_folder_is_refused(images, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    iio.imwrite(other / "img0.png", disk_image(7))
    out = tmp_path / "o"
    assert _run([str(images[0]), "--out", str(out), *FAST, "--workers", "1"], capsys)[0] == 0
    code, _, err = _run([str(other / "img0.png"), "--out", str(out), *FAST, "--workers", "1"], capsys)
    assert code == 2 and "another file" in err and "--force" in err


def test_changed_weights_are_refused(images, tmp_path, capsys):
    import shutil

    from srpsa.inference.weights import PACKAGE_WEIGHTS

    out, root = tmp_path / "o", tmp_path / "w"
    shutil.copytree(PACKAGE_WEIGHTS / "detector-om", root / "detector-om")
    base = [str(images[0]), "--out", str(out), *FAST, "--workers", "1"]
    assert _run(base, capsys)[0] == 0
    assert _run([*base, "--weights", str(root)], capsys)[0] == 0  # same content elsewhere: resume
    from safetensors.torch import load_file, save_file

    from srpsa.io.provenance import file_sha256

    wfile = root / "detector-om" / "detector.safetensors"
    tensors = load_file(str(wfile))
    first = next(iter(tensors))
    tensors[first] = tensors[first] * 1.01
    save_file(tensors, str(wfile))
    meta = json.loads((root / "detector-om" / "detector.json").read_text())
    meta["sha256"] = file_sha256(wfile)
    (root / "detector-om" / "detector.json").write_text(json.dumps(meta))
    code, _, err = _run([*base, "--weights", str(root)], capsys)
    assert code == 2 and "detector-om" in err and "--force" in err


# ------------------------------------------------------------------ 4. output names stay inside --out
def test_dot_file_names_write_inside_out(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    dots = [src / "...png", src / "..png", src / ".png.png"]
    for p in dots:
        iio.imwrite(p, disk_image(1), extension=".png")
    work = tmp_path / "work"
    out = work / "out"
    code, _, err = _run([*map(str, dots), "--out", str(out), *FAST, "--workers", "1"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # nothing beside --out
    assert not (out / "particles.csv").exists() and not (out / "summary.json").exists()
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 3 and all((f / "summary.json").is_file() for f in folders)
    assert all(not f.name.startswith(".") for f in folders)


def test_safe_output_names():
    from srpsa.inference.names import safe_output_names

    names = safe_output_names([Path("a/img.png"), Path("a/...png"), Path("a/..png"), Path("b/IMG.png"),
                               Path("a/summary.csv.png"), Path("a/x\x01y.png"), Path("a/ok.tif")])
    assert names[-1] == "ok"  # ordinary stems are kept
    assert len(set(n.lower() for n in names)) == len(names)
    assert all(n and not n.startswith(".") and "/" not in n and n.isprintable() for n in names)
    assert names[4] != "summary.csv"


# ------------------------------------------------------------------ 5. summary.csv covers the whole folder
def test_sequential_runs_keep_each_others_rows(images, tmp_path, capsys):
    out = tmp_path / "o"
    assert _run([*map(str, images[:2]), "--out", str(out), *FAST, "--workers", "1"], capsys)[0] == 0
    assert _run([str(images[2]), "--out", str(out), *FAST, "--workers", "1"], capsys)[0] == 0
    table = pd.read_csv(out / "summary.csv")
    assert list(table["image"]) == ["img2", "img0", "img1", "POOLED"]
    assert table["count"].iloc[-1] == table["count"].iloc[:-1].sum()


def test_concurrent_runs_keep_each_others_rows(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        iio.imwrite(src / f"c{i}.png", disk_image(10 + i))
    out = tmp_path / "o"
    runs = [_subprocess([str(src / "c0.png"), str(src / "c1.png"), "--out", str(out), *FAST, "--workers", "1"]),
            _subprocess([str(src / "c2.png"), str(src / "c3.png"), "--out", str(out), *FAST, "--workers", "1"])]
    for proc in runs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table["image"]) == ["POOLED", "c0", "c1", "c2", "c3"]


# ------------------------------------------------------------------ 6. a killed worker fails one image only
def test_killed_worker_fails_its_image_and_the_rest_complete(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SRPSA_TEST_FAULT", "img1.png:kill")  # as the kernel's OOM killer would
    out = tmp_path / "o"
    code, _, err = _run([*map(str, images), "--out", str(out), *FAST, "--workers", "2"], capsys)
    assert code == 1 and "Traceback" not in err
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["image"]) == [str(images[1])] and "worker process died" in errors.loc[0, "error"]
    assert list(pd.read_csv(out / "summary.csv")["image"]) == ["img0", "img2", "POOLED"]


# ------------------------------------------------------------------ 7. evaluate stays inside --pred
def test_via_filename_dotdot_does_not_escape_pred(tmp_path, capsys):
    from srpsa.evaluation.pairing import pair_annotations
    from srpsa.io import write_circle_sets, write_circles

    pred = tmp_path / "P"
    (pred / "img0").mkdir(parents=True)
    write_circles(pred / "img0" / "particles.csv", np.array([[10.0, 10.0, 5.0]]))
    write_circles(tmp_path / "particles.csv", np.array([[20.0, 20.0, 5.0]]))  # P/../particles.csv
    gt = tmp_path / "via.json"
    write_circle_sets(gt, {"img0.png": [[10, 10, 5]], "..": [[20, 20, 5]]}, fmt="via")
    with pytest.raises(InputError, match="no prediction for 1 ground-truth"):
        pair_annotations(gt, pred)


# ------------------------------------------------------------------ 8. right category, once, up front
@pytest.mark.parametrize("extra, flag", [
    (["--scheduler", "bogus"], "--scheduler"),
    (["--diameter-range", "10", "inf"], "--diameter-range"),
    (["--diameter-range", "1e-6", "2e-6"], "--diameter-range"),  # item 10: was silently clamped
])
def test_bad_options_are_usage_errors(images, tmp_path, capsys, extra, flag):
    code, _, err = _run([str(images[0]), "--out", str(tmp_path / "o"), *FAST, *extra], capsys)
    assert code == 2 and flag in err and "internal error" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_out_is_a_usage_error_before_any_work(images, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = _run([str(images[0]), "--out", str(blocker / "o"), *FAST], capsys)
    assert code == 2 and "--out" in err and "internal error" not in err
    # read-only --out (faked: the tests run as root, which may write anywhere)
    import tempfile

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    out = tmp_path / "ro"
    code, _, err = _run([str(images[0]), "--out", str(out), *FAST], capsys)
    assert code == 2 and "--out" in err and "Permission denied" in err
    assert not (out / "img0").exists()


def _torn_weights(tmp_path: Path) -> Path:
    import shutil

    from srpsa.inference.weights import PACKAGE_WEIGHTS
    from srpsa.io.provenance import file_sha256

    root = tmp_path / "w"
    shutil.copytree(PACKAGE_WEIGHTS / "detector-om", root / "detector-om")
    wfile = root / "detector-om" / "detector.safetensors"
    wfile.write_bytes(wfile.read_bytes()[:-1000])  # truncated ...
    meta = json.loads((root / "detector-om" / "detector.json").read_text())
    meta["sha256"] = file_sha256(wfile)  # ... and its hash updated to match
    (root / "detector-om" / "detector.json").write_text(json.dumps(meta))
    return root


def test_torn_weights_reported_once_up_front(images, tmp_path, capsys):
    root = _torn_weights(tmp_path)
    code, _, err = _run([*map(str, images), "--out", str(tmp_path / "o"), *FAST, "--weights", str(root)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--weights" in err and "safetensors" in err and "internal error" not in err
    from srpsa.inference.detect import Detector

    with pytest.raises(InputError, match="cannot be loaded"):  # the loader itself, too
        Detector.load(root / "detector-om")


def test_unreadable_file_is_called_unreadable(images, monkeypatch):
    import builtins

    from srpsa.io import read_image

    real_open = builtins.open

    def guarded(file, *a, **k):
        if str(file) == str(images[0]):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(InputError, match="cannot read image \\(Permission denied\\)"):
        read_image(images[0])


# ------------------------------------------------------------------ 9. one line
class NotAllowed:  # a class a weights_only unpickler refuses
    pass


def test_bad_optimizer_state_is_one_line(tmp_path):
    import pickle

    import torch

    from srpsa.training.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    sub = save_checkpoint(tmp_path, model, opt, {"step": 1})

    (sub / "optimizer.pt").write_bytes(pickle.dumps({"step": 1, "x": NotAllowed()}, protocol=2))
    with pytest.raises(InputError) as info:
        load_checkpoint(tmp_path, model, opt)
    message = str(info.value)
    assert "--resume" in message and "\n" not in message and "weights_only" not in message and "Weights only" not in message


def test_bad_gan_optimizer_state_is_one_line(tmp_path):
    import pickle

    import torch

    from srpsa.training.gan_train import load_gan_checkpoint, save_gan_checkpoint

    g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    og, od = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    sub = save_gan_checkpoint(tmp_path, 1, g, d, og, od, {"step": 1})
    (sub / "optimizer.pt").write_bytes(pickle.dumps({"step": 1, "x": NotAllowed()}, protocol=2))
    with pytest.raises(InputError) as info:
        load_gan_checkpoint(tmp_path, g, d, og, od)
    message = str(info.value)
    assert "--resume" in message and "\n" not in message and "weights_only" not in message and "Weights only" not in message


def test_progress_lines_do_not_wrap(tmp_path, capsys):
    deep = tmp_path / ("a_rather_long_folder_name_" * 4)
    deep.mkdir()
    path = deep / "img.png"
    iio.imwrite(path, disk_image(2))
    code, _, err = _run([str(path), "--out", str(tmp_path / "o"), *FAST, "--workers", "1"], capsys)
    assert code == 0
    assert any(line.startswith("[1/1] ") and f"{path}: done" in line for line in err.splitlines()), err


# ------------------------------------------------------------------ 10. not silent
@pytest.mark.parametrize("name, array", [
    ("black.png", np.zeros((64, 64), np.uint8)),
    ("white.png", np.full((64, 64), 255, np.uint8)),
    ("low16.png", (np.arange(64 * 64).reshape(64, 64) % 4).astype(np.uint16)),
])
def test_uniform_images_warn(tmp_path, capsys, name, array):
    from srpsa.io import read_image

    path = tmp_path / name
    iio.imwrite(path, array)
    assert any("nearly uniform" in w for w in read_image(path).warnings)
    code, _, err = _run([str(path), "--out", str(tmp_path / "o"), *FAST, "--workers", "1"], capsys)
    assert code == 0 and "0 particles - warning:" in err and "nearly uniform" in err


def test_normal_image_has_no_uniform_warning(images):
    from srpsa.io import read_image

    assert not any("uniform" in w for w in read_image(images[0]).warnings)


def test_folder_mode_notes_what_it_skips(images, tmp_path, caplog):
    import logging

    from srpsa.io import iter_image_files

    folder = tmp_path / "f"
    folder.mkdir()
    iio.imwrite(folder / "ok.png", disk_image(0))
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")
    (folder / "x.png").mkdir()
    with caplog.at_level(logging.WARNING, logger="srpsa.io.files"):
        found = iter_image_files([folder])
    assert found == [folder / "ok.png"]
    text = caplog.text
    assert "gone.png: skipped (broken symbolic link)" in text and "x.png: skipped (a folder)" in text


# ------------------------------------------------------------------ 11. small ones
def test_stale_temporaries_are_removed_on_resume(images, tmp_path, capsys):
    out = tmp_path / "o"
    (out / "img0").mkdir(parents=True)
    stale = out / "img0" / ".particles.abc123.tmp.csv"  # a kill during a write leaves this
    stale.write_text("half")
    assert _run([str(images[0]), "--out", str(out), *FAST, "--workers", "1"], capsys)[0] == 0
    assert not stale.exists() and (out / "img0" / "summary.json").is_file()


def test_dask_local_cluster_is_quiet_and_keeps_off_8787(images, tmp_path, capsys, caplog):
    pytest.importorskip("dask.distributed")
    import logging
    import socket

    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        busy.bind(("127.0.0.1", 8787))  # taken: a cluster that wants it logs that it is in use
    except OSError:
        pytest.skip("port 8787 is in use on this machine")
    try:
        with caplog.at_level(logging.INFO):
            code, _, err = _run([str(images[0]), "--out", str(tmp_path / "o"), *FAST, "--scheduler", "local", "--workers", "1"], capsys)
    finally:
        busy.close()
    assert code == 0, err
    chatter = [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert not chatter
    assert "8787" not in caplog.text
