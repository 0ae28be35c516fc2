"""srpsa review, server side: the JSON API (Starlette TestClient), saving, consistency of every file
derived from particles.csv, bad requests, two saves at once, the report's stale-table check, and the
reviewed folder as training data."""

from __future__ import annotations

import hashlib
import json
import math
import socket
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette notes that TestClient will move off httpx; not our concern here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from review_data import approx_equal as _approx_equal, check_consistent as _check_consistent, copy_analysis, make_analysis  # noqa: E402
from srpsa.cli import main  # noqa: E402
from srpsa.errors import InputError  # noqa: E402
from srpsa.review.app import create_app  # noqa: E402
from srpsa.review.folder import get_image, read_particles  # noqa: E402
from srpsa.review.save import Conflict, save_image  # noqa: E402
from srpsa.review.stats import image_statistics  # noqa: E402


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_analysis(tmp_path_factory.mktemp("review"))


@pytest.fixture
def out(template, tmp_path) -> Path:
    return copy_analysis(template, tmp_path / "out")


@pytest.fixture
def client(out) -> TestClient:
    return TestClient(create_app(out))


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def _body(meta: dict, circles: list[dict] | None = None) -> dict:
    circles = meta["circles"] if circles is None else circles
    return {"version": meta["version"], "circles": [{"id": c["id"], "x": c["x"], "y": c["y"], "r": c["r"]} for c in circles]}


def test_statistics_step_reproduces_the_pipeline(template):
    """review.stats on an unedited table gives what analyze wrote (so the two cannot drift apart)."""
    for folder in sorted(template.glob("*/summary.json")):
        summary = json.loads(folder.read_text())
        table = pd.read_csv(folder.parent / "particles.csv")
        stats = image_statistics(table, summary["pixel_size_um"], summary["settings"])
        assert (stats.count, stats.count_used, stats.count_edge) == (summary["count"], summary["count_used"], summary["count_edge"])
        assert _approx_equal(stats.statistics, summary["statistics"])
        assert set(stats.warnings) <= set(summary["warnings"])


def test_list_and_image(client, out):
    listing = client.get("/api/images").json()
    assert [im["name"] for im in listing["images"]] == ["img0", "img1"]
    assert all(im["count"] == 5 and im["image_ok"] and not im["reviewed"] for im in listing["images"])
    meta = client.get("/api/images/img0").json()
    assert (meta["width"], meta["height"]) == (128, 96) and len(meta["circles"]) == 5
    assert {c["source"] for c in meta["circles"]} == {"auto"}
    page = client.get("/")
    assert page.status_code == 200 and "review.js" in page.text and "Ctrl+Z" in page.text
    assert client.get("/static/review.js").status_code == 200
    jpeg = client.get("/api/images/img0/pixels?max=64")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"


def test_save_writes_sources_log_and_consistent_outputs(client, out):
    meta = client.get("/api/images/img0").json()
    overlay_before = (out / "img0" / "overlay.png").read_bytes()
    circles = [dict(c) for c in meta["circles"][1:]]  # first one deleted
    circles[0]["r"] += 1.0  # edited
    circles.append({"id": None, "x": 60.0, "y": 40.0, "r": 5.0})  # added
    res = client.post("/api/images/img0/save", json=_body(meta, circles))
    assert res.status_code == 200, res.text
    assert res.json()["changes"] == {"added": 1, "deleted": 1, "edited": 1}
    table = _check_consistent(out, "img0")
    assert table["source"].tolist() == ["edited", "auto", "auto", "auto", "added"]
    assert math.isnan(table["score"].iloc[-1])  # no detector score for a circle a person drew
    assert table["d_um"].iloc[-1] == pytest.approx(2 * 5.0 * 0.5)
    log = json.loads((out / "img0" / "review.json").read_text())
    assert len(log["saves"]) == 1 and log["saves"][0]["deleted"][0]["id"] == meta["circles"][0]["id"]
    assert log["saves"][0]["edited"][0]["to"]["r"] == pytest.approx(circles[0]["r"])
    assert (out / "img0" / "particles.auto.csv").is_file()
    assert (out / "img0" / "overlay.png").read_bytes() != overlay_before
    summary = json.loads((out / "img0" / "summary.json").read_text())
    assert summary["review"]["sources"] == {"auto": 3, "added": 1, "edited": 1}
    # The page reloads: new version, sources shown, and a second save from it is accepted.
    meta2 = client.get("/api/images/img0").json()
    assert meta2["version"] == res.json()["version"] != meta["version"]
    assert [c["source"] for c in meta2["circles"]] == table["source"].tolist()
    moved = [dict(c) for c in meta2["circles"]]
    moved[-1]["x"] += 2.0  # moving an added circle keeps it "added"
    assert client.post("/api/images/img0/save", json=_body(meta2, moved)).status_code == 200
    assert pd.read_csv(out / "img0" / "particles.csv")["source"].tolist()[-1] == "added"
    assert len(json.loads((out / "img0" / "review.json").read_text())["saves"]) == 2
    _check_consistent(out, "img0")
    assert client.get("/api/images").json()["images"][0]["reviewed"] is True


@pytest.mark.parametrize("body, needle", [
    ({"circles": []}, "'version'"),
    ({"version": "x"}, "'circles'"),
    ("not an object", "JSON object"),
    (None, "circles[0].x must be a finite number"),
    ("r-negative", "circles[0].r must be between"),
    ("outside", "outside the 128x96 image"),
    ("unknown-id", "is not in the loaded table"),
    ("duplicate-id", "appears twice"),
    ("bad-id", "circles[0].id must be an integer"),
])
def test_malformed_save_is_400_and_changes_nothing(client, out, body, needle):
    meta = client.get("/api/images/img0").json()
    good = _body(meta)
    c0 = good["circles"][0]
    bodies = {
        None: {**good, "circles": [{**c0, "x": "12"}]},
        "r-negative": {**good, "circles": [{**c0, "r": -3}]},
        "outside": {**good, "circles": [{**c0, "x": 500.0}]},
        "unknown-id": {**good, "circles": [{**c0, "id": 999}]},
        "duplicate-id": {**good, "circles": [c0, c0]},
        "bad-id": {**good, "circles": [{**c0, "id": "1"}]},
    }
    payload = body if isinstance(body, dict) else bodies.get(body, body)
    before = _snapshot(out)
    res = client.post("/api/images/img0/save", json=payload)
    assert res.status_code == 400 and needle in res.json()["error"], res.text
    assert _snapshot(out) == before


def test_not_json_unknown_image_and_paths_outside_dir(client, out):
    before = _snapshot(out)
    res = client.post("/api/images/img0/save", content=b"{nope", headers={"content-type": "application/json"})
    assert res.status_code == 400 and "not valid JSON" in res.json()["error"]
    res = client.post("/api/images/nope/save", json={"version": "x", "circles": []})
    assert res.status_code == 404 and "no image named 'nope'" in res.json()["error"]
    for path in ["/api/images/..%2F..%2Fetc%2Fpasswd", "/static/..%2F..%2Freview%2Fapp.py", "/api/images/img0%2F..%2F..%2Fin"]:
        res = client.get(path)
        assert res.status_code == 404 and res.json()["error"], path
    for path in ["/api/images/%2E%2E/save", "/api/images/..%2Fimg0/save", "/api/images/%2Ftmp/save"]:
        res = client.post(path, json={"version": "x", "circles": []})
        assert res.status_code == 404 and res.json()["error"], path
    assert client.get("/api/images/..").status_code == 404
    assert client.get("/api/images/img0/pixels?max=big").status_code == 400
    assert _snapshot(out) == before


def test_stale_version_is_409_and_changes_nothing(client, out):
    meta = client.get("/api/images/img0").json()
    assert client.post("/api/images/img0/save", json=_body(meta, meta["circles"][1:])).status_code == 200
    before = _snapshot(out)
    res = client.post("/api/images/img0/save", json=_body(meta, meta["circles"][2:]))  # the other tab
    assert res.status_code == 409 and "another tab" in res.json()["error"]
    assert _snapshot(out) == before


def test_two_saves_at_once_one_wins_files_stay_whole(out):
    entry = get_image(out, "img1")
    table = read_particles(entry)
    from srpsa.review.folder import version_of

    version = version_of(out / "img1" / "particles.csv")
    rows = [{"id": int(i), "x": float(x), "y": float(y), "r": float(r)} for i, x, y, r in
            zip(table["id"], table["x_px"], table["y_px"], table["r_px"])]
    bodies = [{"version": version, "circles": rows[:3]}, {"version": version, "circles": rows[1:]}]
    outcome: list[object] = [None, None]

    def run(k: int) -> None:
        try:
            outcome[k] = save_image(out, entry, bodies[k])
        except Conflict as exc:
            outcome[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wins = [o for o in outcome if isinstance(o, dict)]
    assert len(wins) == 1 and sum(isinstance(o, Conflict) for o in outcome) == 1
    kept = _check_consistent(out, "img1")
    assert len(kept) == len(next(b for b, o in zip(bodies, outcome) if isinstance(o, dict))["circles"])


def test_missing_source_image_refuses_save(client, out, tmp_path):
    summary_path = out / "img0" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["image"] = str(tmp_path / "gone.png")
    summary_path.write_text(json.dumps(summary))
    meta = client.get("/api/images/img0").json()
    assert meta["image_ok"] is False
    assert client.get("/api/images/img0/pixels").status_code == 409
    before = _snapshot(out)
    res = client.post("/api/images/img0/save", json=_body(meta))
    assert res.status_code == 409 and "missing" in res.json()["error"]
    assert _snapshot(out) == before


def test_report_recomputes_per_image_numbers_of_a_hand_edited_table(out):
    """The known inconsistency: particles.csv edited by hand, then `srpsa report`."""
    from srpsa.report.collect import load_analysis

    path = out / "img1" / "particles.csv"
    table = pd.read_csv(path)
    table.iloc[:-2].to_csv(path, index=False)
    assert main(["report", str(out)]) == 0
    image = next(im for im in load_analysis(out).images if im.name == "img1")
    assert image.count == 3 and image.count_used == 3
    assert image.statistics("Q0")["d50"] == pytest.approx(float(np.median(table["d_um"].iloc[:-2])), rel=1e-6)
    assert len(image.notes) == 1 and "count 5 -> 3" in image.notes[0]
    assert "count 5 -&gt; 3" in (out / "report.html").read_text() or "count 5 -> 3" in (out / "report.html").read_text()
    untouched = next(im for im in load_analysis(out).images if im.name == "img0")
    assert untouched.notes == []


def test_reviewed_folder_is_training_data(client, out):
    from srpsa.training.detector_data import folder_pairs, folder_source

    with pytest.raises(InputError, match="no reviewed image"):
        folder_pairs(out)
    meta = client.get("/api/images/img1").json()
    extra = {"id": None, "x": 64.0, "y": 48.0, "r": 4.0}
    assert client.post("/api/images/img1/save", json=_body(meta, meta["circles"] + [extra])).status_code == 200
    pairs = folder_pairs(out)
    assert [(img.name, ann.name) for img, ann in pairs] == [("img1.png", "particles.csv")]
    sample = next(folder_source(pairs))
    expected = pd.read_csv(out / "img1" / "particles.csv")[["x_px", "y_px", "r_px"]].to_numpy()
    np.testing.assert_allclose(sample.circles, expected)
    assert len(sample.circles) == 6


def test_cli_errors_are_one_line(tmp_path, out, capsys):
    assert main(["review", str(tmp_path / "missing"), "--no-browser"]) == 2
    assert "DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["review", str(tmp_path / "empty"), "--no-browser"]) == 2
    assert "no analysis results" in capsys.readouterr().err
    assert main(["review", str(out), "--port", "70000", "--no-browser"]) == 2
    assert "--port must be between" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["review", str(out), "--port", str(port), "--no-browser"]) == 2
        err = capsys.readouterr().err
        assert f"--port {port}" in err and "Traceback" not in err


def test_server_listens_on_loopback_only(out):
    import urllib.request

    from srpsa.review.server import HOST, make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server(out, port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert HOST == "127.0.0.1" and server.config.host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/images", timeout=5) as res:
            assert [im["name"] for im in json.loads(res.read())["images"]] == ["img0", "img1"]
    finally:
        server.should_exit = True
        thread.join(10)


def test_train_detect_runs_on_a_reviewed_folder(client, out, tmp_path):
    """`srpsa train detect --data` on the analysis folder itself: the reviewed images are its data."""
    for name in ("img0", "img1"):
        meta = client.get(f"/api/images/{name}").json()
        assert client.post(f"/api/images/{name}/save", json=_body(meta)).status_code == 200
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[model]\nchannels = [4, 4, 8, 8, 8]\n[data]\ncrop = 32\nsamples_per_epoch = 4\n[train]\nnum_workers = 0\nlr = 1e-3\n")
    run = tmp_path / "run"
    code = main(["train", "detect", "--config", str(cfg), "--data", str(out), "--out", str(run), "--epochs", "1",
                 "--no-progress", "--threads", "1"])
    assert code == 0 and (run / "weights" / "detector.safetensors").is_file()
    provenance = json.dumps(json.loads((run / "weights" / "detector.json").read_text()))
    assert "img0.png" in provenance or "img1.png" in provenance


def test_save_keeps_the_report_title(client, out):
    assert main(["report", str(out), "--title", "Batch <7> & co"]) == 0
    meta = client.get("/api/images/img0").json()
    assert client.post("/api/images/img0/save", json=_body(meta, meta["circles"][1:])).status_code == 200
    assert "<title>Batch &lt;7&gt; &amp; co</title>" in (out / "report.html").read_text()
