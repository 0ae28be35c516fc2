"""srpsa review in a real headless Chromium (selenium): load a folder, add a circle, delete one, save,
resize one with the keyboard, save, reload; the change is there and summary.json / summary.csv / report agree with particles.csv.
Skipped when chromium, chromedriver or selenium is missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("uvicorn")

from review_data import check_consistent, make_analysis  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(out: Path) -> tuple[subprocess.Popen, str]:
    """`srpsa review OUT --port P --no-browser` as a subprocess, once it accepts connections."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "srpsa", "review", str(out), "--port", str(port), "--no-browser"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"srpsa review exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("srpsa review did not start listening within 60 s")


def chromium(width: int = 1280, height: int = 800):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(driver, script: str, timeout: float = 20.0):
    """Poll a JS expression until it is truthy; return its value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for: {script}; page status: {status}")


LOADED = "window.srpsaReview && srpsaReview.state.meta && srpsaReview.state.img && srpsaReview.state.circles.size"


def canvas_offset(driver, x: float, y: float) -> tuple[int, int]:
    """Offset from the canvas centre (selenium's origin for element offsets) of image point (x, y)."""
    sx, sy, w, h = driver.execute_script(
        "const r = document.getElementById('canvas').getBoundingClientRect();"
        "const p = srpsaReview.toScreen(arguments[0], arguments[1]); return [p[0], p[1], r.width, r.height];", x, y)
    return round(sx - w / 2), round(sy - h / 2)


def test_add_delete_save_reload(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out = make_analysis(tmp_path)
    before = pd.read_csv(out / "img0" / "particles.csv")
    server, url = serve(out)  # the command line itself, as a user starts it
    driver = chromium()
    try:
        driver.get(url)
        assert wait_for(driver, LOADED) == len(before)
        rows = driver.find_elements(By.CSS_SELECTOR, "#list tbody tr")
        assert [r.text.split()[0] for r in rows] == ["img0", "img1"] and "5 (5)" in rows[0].text
        assert "Ctrl+Z" in driver.find_element(By.ID, "help").text
        canvas = driver.find_element(By.ID, "canvas")
        body = driver.find_element(By.TAG_NAME, "body")

        # Add: A, then drag from a free spot's centre out 6 px (image pixels).
        body.send_keys("a")
        cx, cy = 64.0, 86.0
        start, end = canvas_offset(driver, cx, cy), canvas_offset(driver, cx + 6.0, cy)
        ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold() \
            .move_to_element_with_offset(canvas, (start[0] + end[0]) // 2, start[1]) \
            .move_to_element_with_offset(canvas, *end).release().perform()
        assert wait_for(driver, "srpsaReview.state.circles.size") == len(before) + 1

        # Delete: back to select mode, click the first detected circle, Delete.
        body.send_keys(Keys.ESCAPE)
        gone = before.iloc[0]
        ActionChains(driver).move_to_element_with_offset(canvas, *canvas_offset(driver, gone.x_px, gone.y_px)).click().perform()
        assert wait_for(driver, "srpsaReview.state.selected.size") == 1
        body.send_keys(Keys.DELETE)
        assert wait_for(driver, "srpsaReview.state.circles.size === 5 && srpsaReview.state.dirty")

        # Undo/redo round trip, then save with Ctrl+S.
        body.send_keys(Keys.CONTROL, "z")
        assert wait_for(driver, "srpsaReview.state.circles.size") == 6
        body.send_keys(Keys.CONTROL, "y")
        assert wait_for(driver, "srpsaReview.state.circles.size") == 5
        # Resize another one with the keyboard: click it, "]" grows it by 5 %.
        grown = before.iloc[1]
        ActionChains(driver).move_to_element_with_offset(canvas, *canvas_offset(driver, grown.x_px, grown.y_px)).click().perform()
        assert wait_for(driver, "srpsaReview.state.selected.size") == 1
        body.send_keys("]")
        wait_for(driver, "[...srpsaReview.state.circles.values()].some((c) => c.r > %r)" % float(grown.r_px * 1.04))
        body.send_keys(Keys.CONTROL, "s")
        wait_for(driver, "document.getElementById('status').textContent.startsWith('saved')")

        driver.refresh()
        assert wait_for(driver, LOADED) == 5
        circles = driver.execute_script("return [...srpsaReview.state.circles.values()]")
        added = [c for c in circles if c["source"] == "added"]
        assert len(added) == 1
        assert added[0]["x"] == pytest.approx(cx, abs=1.0) and added[0]["r"] == pytest.approx(6.0, abs=1.0)
        assert not any(abs(c["x"] - gone.x_px) < 1e-3 and abs(c["y"] - gone.y_px) < 1e-3 for c in circles)
        assert "reviewed" in driver.find_elements(By.CSS_SELECTOR, "#list tbody tr")[0].text
        assert "saved: 5 circles" in driver.find_element(By.ID, "stats").text
    finally:
        driver.quit()
        server.terminate()  # SIGTERM: uvicorn shuts down cleanly
        server.wait(20)

    table = check_consistent(out, "img0")
    assert sorted(table["source"]) == ["added", "auto", "auto", "auto", "edited"]
    assert table.loc[table["source"] == "edited", "r_px"].iloc[0] == pytest.approx(grown.r_px * 1.05, abs=1e-3)
    assert table.loc[table["source"] == "added", "r_px"].iloc[0] == pytest.approx(6.0, abs=1.0)
